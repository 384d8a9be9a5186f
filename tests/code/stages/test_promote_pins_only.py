"""`mlops promote --pins-only`: the pins pull request changes the file and nothing else.

Git is the source of truth (issue 15, item 12): the registry's aliases must not move before the
pins pull request is reviewed and merged; `mlops sync` moves them afterwards. Against a real
SQLite registry and the example models.
"""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.core.pins import in_promotion_order, list_environments, load_environment
from pipelines.core.registry import aliases_of
from pipelines.core.settings import Settings
from pipelines.core.tags import GATES_PASSED_TAG

pytestmark = pytest.mark.code

MODEL = "penguins"


def _first_environment(settings: Settings) -> str:
    folder = settings.environments_dir
    ordered = in_promotion_order([load_environment(folder, n) for n in list_environments(folder)])
    return ordered[0].environment


def _gated_versions(client: MlflowClient, settings: Settings, count: int) -> None:
    client.create_registered_model(MODEL)
    source = settings.home / "artifact"
    source.mkdir(parents=True)
    for _ in range(count):
        version = client.create_model_version(MODEL, source.as_uri())
        client.set_model_version_tag(MODEL, version.version, GATES_PASSED_TAG, "true")


def _mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_pins_only_writes_the_pin_and_leaves_every_alias(
    settings: Settings, client: MlflowClient, cli_env: dict[str, str]
) -> None:
    _gated_versions(client, settings, 2)
    target = _first_environment(settings)
    client.set_registered_model_alias(MODEL, target, "1")
    before = aliases_of(client, MODEL)

    done = _mlops("promote", MODEL, "--to", target, "--version", "2", "--pins-only")

    assert done.exit_code == 0, done.output
    assert f"pinned {target} " in done.output
    assert "mlops sync" in done.output, "the output says when the aliases will follow"
    pin = load_environment(settings.environments_dir, target).models[MODEL]
    assert pin.version == "2"
    assert aliases_of(client, MODEL) == before, "no alias may move before the pins are merged"


def test_after_the_merge_sync_moves_the_aliases_to_the_pin(
    settings: Settings, client: MlflowClient, cli_env: dict[str, str]
) -> None:
    _gated_versions(client, settings, 2)
    target = _first_environment(settings)
    assert _mlops("promote", MODEL, "--to", target, "--version", "2", "--pins-only").exit_code == 0

    check = _mlops("sync", "--check")
    assert check.exit_code == 1, check.output
    assert target in check.output
    assert _mlops("sync").exit_code == 0
    assert aliases_of(client, MODEL)[target] == "2"
    again = _mlops("sync", "--check")
    assert again.exit_code == 0, again.output


def test_a_closed_pins_pull_request_leaves_the_registry_as_it_was(
    settings: Settings, client: MlflowClient, cli_env: dict[str, str]
) -> None:
    # The pins PR is closed unmerged: the checkout that opened it is thrown away, so all that
    # remains is the registry, which pins-only promotion never touched.
    _gated_versions(client, settings, 1)
    target = _first_environment(settings)
    before = aliases_of(client, MODEL)
    done = _mlops("run", MODEL, "--promote", target, "--pins-only")
    assert done.exit_code == 0, done.output
    after = aliases_of(client, MODEL)
    moved = {alias for alias in after if after.get(alias) != before.get(alias)}
    assert target not in moved and "champion" not in moved, after
