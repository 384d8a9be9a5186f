"""Every bad input gets its exit code and a message that says where the problem is.

The contract (PRODUCT.md): 1 when validation rejects the data, 2 for bad input or
configuration. Each case runs ``mlops run penguins --promote staging --promote prod`` against a
registry that already has a champion, so a wrongly accepted input would show up as a new
version or a moved alias; each test checks that the registry and every pins file are exactly as
they were.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

RUN = ("run", "penguins", "--promote", "staging", "--promote", "prod")


@pytest.fixture(scope="module")
def champion(make_workspace: Callable[[str], Any]) -> Any:
    """A registry where penguins v1 is the champion, pinned in staging and prod."""
    ws = make_workspace("champion")
    result = ws.mlops(*RUN)
    assert result.exit_code == 0, result.output
    return ws


@pytest.fixture
def ws(champion: Any, tmp_path: Path) -> Any:
    """This test's own copy of the repository, on the registry with the champion."""
    workspace = champion.fork(tmp_path / "repo")
    assert workspace.registry_state()["penguins"] == (
        [1],
        {"champion": "1", "prod": "1", "staging": "1"},
    )
    return workspace


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def edit_penguins_csv(ws: Any, change: Callable[[Any], None]) -> Path:
    """Change the data and record its new fingerprint, so only the change itself is wrong."""
    import pandas as pd

    from pipelines.core.datasets import load_dataset_by_name, update_fingerprint

    csv = ws.root / "data" / "penguins" / "penguins.csv"
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    change(frame)
    frame.to_csv(csv, index=False)
    update_fingerprint(load_dataset_by_name(ws.root / "data", "penguins"))
    return csv


def refused(ws: Any, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run a command that must be refused; check that it changed nothing."""
    before = ws.snapshot()
    result = ws.mlops(*args, env=env)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert ws.snapshot() == before
    return result


def test_malformed_model_yaml_exits_2_naming_the_file_and_the_parser_error(ws: Any) -> None:
    path = ws.model_yaml("penguins")
    edit(path, "flipper_length_mm, body_mass_g, island]", "flipper_length_mm, body_mass_g, island")

    result = refused(ws, *RUN)

    assert result.exit_code == 2
    assert f"{path}: malformed YAML" in result.stderr
    # PyYAML's own explanation, with the offending text, must reach the user verbatim.
    assert "expected ',' or ']'" in result.stderr
    assert "[bill_length_mm" in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("owner: ", "colour: blue\nowner: ", "colour"),
        ("split: {seed: 42,", "split: {seeed: 42,", "split.seeed"),
    ],
    ids=["top-level", "nested"],
)
def test_unknown_key_in_model_yaml_exits_2_naming_the_file_and_the_key(
    ws: Any, old: str, new: str, field: str
) -> None:
    path = ws.model_yaml("penguins")
    edit(path, old, new)

    result = refused(ws, *RUN)

    assert result.exit_code == 2
    assert f"{path}: {field}: unknown key" in result.stderr


def test_missing_required_key_in_model_yaml_exits_2_naming_the_key(ws: Any) -> None:
    path = ws.model_yaml("penguins")
    edit(path, "target: species\n", "")

    result = refused(ws, *RUN)

    assert result.exit_code == 2
    assert f"{path}: target: required key is missing" in result.stderr


def test_dataset_that_does_not_exist_exits_2_naming_model_yaml_and_dataset(ws: Any) -> None:
    path = ws.model_yaml("penguins")
    edit(path, "dataset: penguins", "dataset: penguinz")

    result = refused(ws, *RUN)

    assert result.exit_code == 2
    assert f"{path}: dataset: dataset 'penguinz' not found" in result.stderr
    assert "penguins, seattle_weather" in result.stderr  # the datasets that do exist


def test_value_out_of_range_in_the_data_is_rejected_with_exit_1_naming_the_column(
    ws: Any,
) -> None:
    def too_long_a_bill(frame: Any) -> None:
        frame.loc[3, "bill_length_mm"] = "700.0"

    csv = edit_penguins_csv(ws, too_long_a_bill)

    result = refused(ws, *RUN)

    assert result.exit_code == 1
    assert str(csv) in result.stderr
    assert "1 violation(s)" in result.stderr
    assert "column 'bill_length_mm': max" in result.stderr
    assert "row 4: '700.0'" in result.stderr


def test_nan_in_a_feature_column_is_rejected_with_exit_1_naming_the_column(ws: Any) -> None:
    def lose_a_measurement(frame: Any) -> None:
        frame.loc[10, "bill_depth_mm"] = "NaN"

    csv = edit_penguins_csv(ws, lose_a_measurement)

    result = refused(ws, *RUN)

    assert result.exit_code == 1
    assert str(csv) in result.stderr
    assert "column 'bill_depth_mm'" in result.stderr
    assert "missing values" in result.stderr


def test_target_with_a_single_class_is_rejected_with_exit_1_naming_the_target(ws: Any) -> None:
    def only_adelie(frame: Any) -> None:
        frame["species"] = "Adelie"

    edit_penguins_csv(ws, only_adelie)

    result = refused(ws, *RUN)

    assert result.exit_code == 1
    assert "column 'species': single_class" in result.stderr


def test_missing_data_file_exits_2_naming_the_dataset_definition_and_source(ws: Any) -> None:
    csv = ws.root / "data" / "penguins" / "penguins.csv"
    csv.unlink()

    result = refused(ws, *RUN)

    assert result.exit_code == 2
    dataset_yaml = ws.root / "data" / "penguins" / "dataset.yaml"
    assert f"{dataset_yaml}: source: data source {csv} does not exist" in result.stderr


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on once this returns."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_unreachable_registry_exits_2_quickly_saying_unreachable(ws: Any) -> None:
    uri = f"http://127.0.0.1:{free_port()}"

    start = time.perf_counter()
    result = refused(ws, *RUN, env={"MLFLOW_TRACKING_URI": uri})
    elapsed = time.perf_counter() - start

    assert result.exit_code == 2
    assert "unreachable" in result.stderr
    assert uri in result.stderr
    assert elapsed < 10, f"took {elapsed:.1f} s to give up"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("features", "--set expects dotted.key=value, got 'features'"),
        ("=island", "--set expects dotted.key=value"),
        ("features=[island", "--set features: value is not valid YAML"),
        ("split.test_fraction=2", "split.test_fraction: Input should be less than 1"),
        ("estimator.params.n_estimators=-5", "estimator.params"),
        ("colour=blue", "colour: unknown key"),
        ("features=[bill_length_mm, beak_colour]", "features[1]: column 'beak_colour'"),
    ],
    ids=[
        "no-equals",
        "no-key",
        "bad-yaml",
        "out-of-range",
        "rejected-by-estimator",
        "unknown-key",
        "unknown-column",
    ],
)
def test_bad_set_override_exits_2_naming_the_key(ws: Any, setting: str, message: str) -> None:
    result = refused(ws, *RUN, "--set", setting)

    assert result.exit_code == 2
    assert message in result.stderr


def test_unknown_model_exits_2_listing_the_known_models(ws: Any) -> None:
    result = refused(ws, "run", "pengiuns")

    assert result.exit_code == 2
    assert "model 'pengiuns' not found" in result.stderr
    assert "known models: penguins, seattle_weather" in result.stderr


def test_python_dash_m_pipelines_help_works_as_a_subprocess(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    for command in ("run", "train", "gate", "register", "promote", "rollback", "status"):
        assert f"  {command} " in result.stdout, command
