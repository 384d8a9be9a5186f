"""Fingerprints (``pipelines.core.fingerprints``): what ``mlops plan`` and the lineage tags hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.core.definitions import load_definition
from pipelines.core.fingerprints import canonical_fingerprint, code_fingerprint

pytestmark = pytest.mark.code


# --- fingerprints -------------------------------------------------------------------------


def _reformat(source: Path, target: Path, change=None) -> Path:
    """Write the same document with keys reversed at every level and in block style."""

    def reverse(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: reverse(v) for k, v in reversed(list(node.items()))}
        if isinstance(node, list):
            return [reverse(v) for v in node]
        return node

    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    if change:
        change(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        "# reformatted\n\n" + yaml.safe_dump(reverse(data), sort_keys=False, indent=4),
        encoding="utf-8",
    )
    return target


def test_reordered_and_reformatted_model_yaml_has_the_same_fingerprint(repo, tmp_path):
    original = repo / "models" / "penguins" / "model.yaml"
    copy = _reformat(original, tmp_path / "other" / "penguins" / "model.yaml")
    assert copy.read_text(encoding="utf-8") != original.read_text(encoding="utf-8")

    assert canonical_fingerprint(load_definition(copy)) == canonical_fingerprint(
        load_definition(original)
    )


def test_writing_out_a_default_does_not_change_the_fingerprint(repo, tmp_path):
    original = repo / "models" / "penguins" / "model.yaml"

    def spell_out_default(data: dict[str, Any]) -> None:
        data["monitoring"]["capture_percent"] = 100

    copy = _reformat(original, tmp_path / "other" / "penguins" / "model.yaml", spell_out_default)

    assert canonical_fingerprint(load_definition(copy)) == canonical_fingerprint(
        load_definition(original)
    )


def test_changing_a_hyperparameter_changes_the_fingerprint(repo, tmp_path):
    original = repo / "models" / "penguins" / "model.yaml"

    def deeper(data: dict[str, Any]) -> None:
        data["estimator"]["params"]["max_depth"] = 7

    copy = _reformat(original, tmp_path / "other" / "penguins" / "model.yaml", deeper)

    assert canonical_fingerprint(load_definition(copy)) != canonical_fingerprint(
        load_definition(original)
    )


def test_canonical_fingerprint_ignores_dict_key_order():
    assert canonical_fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == canonical_fingerprint(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    assert canonical_fingerprint({"a": 1}) != canonical_fingerprint({"a": 2})


def test_code_fingerprint_is_stable_across_calls():
    assert code_fingerprint() == code_fingerprint()
    assert code_fingerprint().startswith("sha256:")


def test_code_fingerprint_follows_source_files_but_not_bytecode_caches(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__pycache__").mkdir()
    (package / "a.py").write_text("A = 1\n")
    (package / "sub" / "b.py").write_text("B = 2\n")
    (package / "__pycache__" / "stale.py").write_text("junk\n")
    before = code_fingerprint(package)

    (package / "__pycache__" / "stale.py").write_text("other junk\n")
    (package / "notes.txt").write_text("not code\n")
    unchanged = code_fingerprint(package)
    (package / "sub" / "b.py").write_text("B = 3\n")
    changed = code_fingerprint(package)
    (package / "sub" / "b.py").write_text("B = 2\n")
    (package / "sub" / "b.py").rename(package / "b.py")
    moved = code_fingerprint(package)

    assert unchanged == before
    assert changed != before
    assert moved != before
