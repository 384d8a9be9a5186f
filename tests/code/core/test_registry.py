"""Which training run a stage works on by default, against a real (SQLite) MLflow registry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines.core.errors import RegistryError
from pipelines.core.registry import connect, experiment_id, latest_run
from pipelines.core.settings import Settings
from pipelines.core.tags import GIT_COMMIT_TAG, MODEL_TAG, STAGE_DONE, TRAIN_STAGE_TAG

pytestmark = pytest.mark.code

THIS_PR, OTHER_PR = "a" * 40, "b" * 40


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLOPS_TRACKING_URI", raising=False)
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    settings = Settings(root=tmp_path, home=tmp_path / "state")
    client = connect(settings)
    experiment = experiment_id(client, settings, "penguins")
    runs = {}
    for commit in (THIS_PR, OTHER_PR):  # the other pull request trained last
        run = client.create_run(
            experiment,
            tags={MODEL_TAG: "penguins", TRAIN_STAGE_TAG: STAGE_DONE, GIT_COMMIT_TAG: commit},
        )
        client.set_terminated(run.info.run_id)
        runs[commit] = run.info.run_id
        time.sleep(0.01)  # distinct start times
    return client, settings, runs


def test_outside_ci_the_newest_run_is_used(registry) -> None:
    client, settings, runs = registry
    assert latest_run(client, settings, "penguins").info.run_id == runs[OTHER_PR]


def test_in_ci_only_a_run_of_this_commit_is_used(registry, monkeypatch) -> None:
    client, settings, runs = registry
    monkeypatch.setenv("GITHUB_SHA", THIS_PR)
    assert latest_run(client, settings, "penguins").info.run_id == runs[THIS_PR]


def test_in_ci_another_commits_run_is_never_taken_instead(registry, monkeypatch) -> None:
    client, settings, _ = registry
    monkeypatch.setenv("GITHUB_SHA", "c" * 40)
    with pytest.raises(RegistryError, match=r"from commit c+ .*not used"):
        latest_run(client, settings, "penguins")
