"""`mlops dataset-fingerprint --write` records a new dataset's fingerprint, all or nothing."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def _without_fingerprint(workspace: Any) -> Any:
    path = workspace.root / "data" / "penguins" / "dataset.yaml"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.startswith("fingerprint:")))
    return path


def test_a_new_dataset_without_a_fingerprint_line_gets_one(workspace: Any) -> None:
    path = _without_fingerprint(workspace)
    result = workspace.mlops("dataset-fingerprint", "penguins", "--write")
    assert result.exit_code == 0, result.output
    assert workspace.mlops("dataset-fingerprint", "penguins").exit_code == 0  # now it matches
    assert path.read_text().count("fingerprint: sha256:") == 1


def test_a_definition_with_another_error_is_left_exactly_as_it_was(workspace: Any) -> None:
    path = _without_fingerprint(workspace)
    path.write_text(path.read_text() + "bogus_key: 1\n")
    before = path.read_bytes()
    result = workspace.mlops("dataset-fingerprint", "penguins", "--write")
    assert result.exit_code == 2
    assert "bogus_key" in result.output
    assert path.read_bytes() == before
