"""Fixtures for the end-to-end suite: scratch workspaces driven through the real ``mlops`` CLI.

A workspace is a copy of models/, data/ and environments/ plus a state folder holding its own
MLflow registry on SQLite. Commands run in-process through Typer's CliRunner with the
workspace's environment passed explicitly, so module-scoped workspaces (trained once to save
time) work the same way as the per-test one built on the shared ``cli_env`` fixture.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from examples_root import copy_examples
from typer.testing import CliRunner, Result

from pipelines.cli.main import app
from pipelines.core.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

# What CI would export; the registered version must carry it as its lineage.
GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
FOLDERS = ("models", "data", "environments")


@dataclass
class Workspace:
    root: Path
    home: Path

    @property
    def env(self) -> dict[str, str | None]:
        return {
            "MLOPS_ROOT": str(self.root),
            # Unset: MLflow exports the URI of the last registry it connected to in this
            # process, which would otherwise redirect this workspace to another's registry.
            "MLFLOW_TRACKING_URI": None,
            "MLOPS_TRACKING_URI": None,
            "MLOPS_HOME": str(self.home),
            "GITHUB_SHA": GIT_SHA,
            # Wide enough that rich never wraps a message the tests look for.
            "COLUMNS": "250",
        }

    @property
    def settings(self) -> Settings:
        return Settings(root=self.root, home=self.home, tracking_uri=None)

    def mlops(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        """Run one CLI command; an unexpected exception is raised, never read as exit 1."""
        result = CliRunner().invoke(app, list(args), env={**self.env, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def client(self) -> MlflowClient:
        from pipelines.core.registry import connect

        return connect(self.settings)

    def model_yaml(self, name: str) -> Path:
        return self.root / "models" / name / "model.yaml"

    def report_dir(self, name: str) -> Path:
        return self.settings.reports_dir / name

    def registry_state(self) -> dict[str, tuple[list[int], dict[str, str]]]:
        """Every registered model's versions and aliases."""
        from pipelines.core.registry import aliases_of

        client = self.client()
        state = {}
        for registered in client.search_registered_models():
            versions = client.search_model_versions(f"name = '{registered.name}'")
            state[registered.name] = (
                sorted(int(v.version) for v in versions),
                aliases_of(client, registered.name),
            )
        return state

    def pins_files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.root / "environments").glob("*"))}

    def snapshot(self) -> dict[str, Any]:
        """What a refused command must leave exactly as it was."""
        return {"registry": self.registry_state(), "pins": self.pins_files()}

    def fork(self, root: Path) -> Workspace:
        """A copy of this workspace's repository at ``root`` that shares its registry."""
        return Workspace(copy_repo(self.root, root), self.home)

    def pinned(self, environment: str, name: str) -> Any:
        from pipelines.core.pins import load_environment, pinned

        return pinned(load_environment(self.root / "environments", environment), name)


@pytest.fixture(scope="session", autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """Keep OpenMP estimators single-threaded while the e2e suite runs.

    On a 2-core machine shared with other work, HistGradientBoosting's OpenMP threads wait on
    each other and single-row predictions spike to seconds, so seattle_weather's latency gate
    (p99 <= 100 ms) fails at random. These tests check the CLI's contract, not how fast an
    estimator is under contention; the spikes are reported separately.
    """
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime so that it can be limited)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def copy_repo(source: Path, destination: Path) -> Path:
    for folder in FOLDERS:
        shutil.copytree(source / folder, destination / folder)
    return destination


def clear_pins(root: Path) -> None:
    """Start from environments that pin nothing, whatever the checkout's pins say.

    A workspace's registry starts empty, so pins copied from the checkout would name versions
    it does not have.
    """
    from pipelines.core.pins import environment_path, list_environments, load_environment, render

    environments = root / "environments"
    for name in list_environments(environments):
        environment = load_environment(environments, name)
        if environment.models:
            empty = environment.model_copy(update={"models": {}})
            environment_path(environments, name).write_text(render(empty), encoding="utf-8")


@pytest.fixture(scope="session")
def make_workspace(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Workspace]:
    """``make_workspace(label)``: a fresh workspace, for fixtures wider than one test."""

    def make(label: str) -> Workspace:
        base = tmp_path_factory.mktemp(label)
        root = copy_examples(base / "repo")
        clear_pins(root)
        return Workspace(root=root, home=base / "state")

    return make


@pytest.fixture
def workspace(repo: Path, cli_env: dict[str, str]) -> Workspace:
    """A per-test workspace on the shared scratch repository and an empty registry."""
    clear_pins(repo)
    return Workspace(root=repo, home=Path(cli_env["MLOPS_HOME"]))
