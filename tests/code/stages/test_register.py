"""Finding the run a pull request gated, so a merge registers it instead of retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.core.registry import connect, experiment_id
from pipelines.core.settings import Settings
from pipelines.core.tags import (
    FINGERPRINT_TAG,
    GATES_PASSED_TAG,
    GIT_COMMIT_TAG,
    MODEL_TAG,
    STAGE_DONE,
    TRAIN_STAGE_TAG,
)
from pipelines.stages.register import find_gated_run

pytestmark = pytest.mark.code

PRINT = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Any]:
    for key in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING_URI", "GITHUB_SHA"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings(root=tmp_path, home=tmp_path / "state")
    return settings, connect(settings)


def _run(settings: Settings, client: Any, fingerprint: str, passed: str | None) -> str:
    tags = {MODEL_TAG: "penguins", FINGERPRINT_TAG: fingerprint, TRAIN_STAGE_TAG: STAGE_DONE,
            GIT_COMMIT_TAG: "c0ffee"}  # fmt: skip
    if passed is not None:
        tags[GATES_PASSED_TAG] = passed
    run = client.create_run(experiment_id(client, settings, "penguins"), tags=tags)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def test_the_passed_run_of_the_same_inputs_is_found(registry: tuple[Settings, Any]) -> None:
    settings, client = registry
    run_id = _run(settings, client, PRINT, "true")
    found = find_gated_run(client, settings, "penguins", PRINT)
    assert found.run_id == run_id
    assert found.describe().startswith(f"registered from PR run {run_id}")


def test_no_run_of_these_inputs_says_so(registry: tuple[Settings, Any]) -> None:
    settings, client = registry
    _run(settings, client, OTHER, "true")  # a run of a different fingerprint is ignored
    found = find_gated_run(client, settings, "penguins", PRINT)
    assert found.run_id is None
    assert "no run was trained and gated from these inputs" in found.reason


def test_a_failed_gate_is_never_registered(registry: tuple[Settings, Any]) -> None:
    settings, client = registry
    failed = _run(settings, client, PRINT, "false")
    found = find_gated_run(client, settings, "penguins", PRINT)
    assert found.run_id is None
    assert f"none passed its gates (the newest, {failed}, failed its gates)" in found.reason


def test_of_two_candidates_the_newest_passed_one_wins(registry: tuple[Settings, Any]) -> None:
    settings, client = registry
    _run(settings, client, PRINT, "true")
    newer = _run(settings, client, PRINT, "true")
    _run(settings, client, PRINT, "false")  # newest of all, but rejected
    _run(settings, client, PRINT, None)  # never gated
    assert find_gated_run(client, settings, "penguins", PRINT).run_id == newer


def test_the_plan_and_a_training_run_hash_the_same_code() -> None:
    from pipelines.core.fingerprints import code_fingerprint

    root = Path(__file__).resolve().parents[3]
    assert code_fingerprint() == code_fingerprint(root / "pipelines")
