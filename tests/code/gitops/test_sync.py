"""`mlops sync`: the registry's aliases follow the pins, against a real (SQLite) registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.core.pins import Environment, Pin, load_environment, save_environment, with_pin
from pipelines.core.registry import CHALLENGER, aliases_of, connect
from pipelines.core.settings import Settings

pytestmark = pytest.mark.code

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Any]:
    root = tmp_path / "repo"
    # The environments this suite is about, not the repository's (a team may have renamed them).
    (root / "environments").mkdir(parents=True)
    for name, after, champion in [("dev", None, False), ("staging", "dev", False),
                                  ("prod", "staging", True)]:  # fmt: skip
        save_environment(
            root / "environments",
            Environment(environment=name, promote_from=after, champion=champion),
        )
    (root / "models" / "penguins").mkdir(parents=True)
    (root / "models" / "penguins" / "model.yaml").write_text("name: penguins\n")
    for key in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING_URI", "GITHUB_SHA"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLOPS_ROOT", str(root))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "state"))
    settings = Settings(root=root, home=tmp_path / "state")
    client = connect(settings)
    client.create_registered_model("penguins")
    source = tmp_path / "artifact"
    source.mkdir()
    for _ in range(3):
        client.create_model_version("penguins", source.as_uri())
    return settings, client


def _pin(settings: Settings, env: str, version: str) -> None:
    environment = load_environment(settings.environments_dir, env)
    pin = Pin(
        version=version,
        run_id="r",
        model_uri=f"models:/penguins/{version}",
        fingerprint="f",
        data_fingerprint="d",
        git_commit="c",
        promoted_at="2026-12-06T00:00:00Z",
    )
    save_environment(settings.environments_dir, with_pin(environment, "penguins", pin))


def _sync(*args: str) -> Any:
    return CliRunner().invoke(app, ["sync", *args])


def test_check_names_every_difference_and_changes_nothing(repo: tuple[Settings, Any]) -> None:
    settings, client = repo
    _pin(settings, "staging", "2")
    _pin(settings, "prod", "1")
    client.set_registered_model_alias("penguins", "dev", "3")  # a closed pins PR moved it
    before = aliases_of(client, "penguins")

    result = _sync("--check")

    assert result.exit_code == 1, result.output
    assert "alias 'staging' is unset in the registry; the pins say v2" in result.output
    assert "alias 'prod' is unset" in result.output and "alias 'champion' is unset" in result.output
    assert "alias 'dev' is v3 in the registry; the pins say unset" in result.output
    assert aliases_of(client, "penguins") == before


def test_sync_fixes_them_and_a_second_run_changes_nothing(repo: tuple[Settings, Any]) -> None:
    settings, client = repo
    _pin(settings, "staging", "2")
    _pin(settings, "prod", "1")
    client.set_registered_model_alias("penguins", "dev", "3")
    client.set_registered_model_alias("penguins", CHALLENGER, "3")

    assert _sync().exit_code == 0
    assert aliases_of(client, "penguins") == {
        "staging": "2",
        "prod": "1",
        "champion": "1",
        CHALLENGER: "3",  # the registry's own: never touched
    }
    again = _sync()
    assert again.exit_code == 0 and "match the pins" in again.output
    assert _sync("--check").exit_code == 0


def test_a_pin_the_registry_lacks_stops_before_any_alias_moves(
    repo: tuple[Settings, Any],
) -> None:
    settings, client = repo
    _pin(settings, "staging", "2")
    _pin(settings, "prod", "9")  # pinned with another registry
    client.set_registered_model_alias("penguins", "dev", "3")

    result = _sync()

    assert result.exit_code == 2
    assert "penguins v9 (alias 'prod')" in result.output and "no alias" in result.output
    assert aliases_of(client, "penguins") == {"dev": "3"}


def test_once_the_pins_make_the_challenger_champion_sync_retires_it(
    repo: tuple[Settings, Any],
) -> None:
    """A pins-only promotion to the champion's environment leaves `challenger` on the version it
    promoted; after the merge, sync unsets it, as a direct promotion would have."""
    settings, client = repo
    _pin(settings, "staging", "2")
    _pin(settings, "prod", "2")
    client.set_registered_model_alias("penguins", CHALLENGER, "2")

    check = _sync("--check")
    assert check.exit_code == 1
    assert "alias 'challenger' is v2 in the registry; the pins make v2 the champion" in check.output

    assert _sync().exit_code == 0
    assert aliases_of(client, "penguins") == {"staging": "2", "prod": "2", "champion": "2"}
    assert _sync("--check").exit_code == 0
