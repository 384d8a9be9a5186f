"""A newly trained version is refused, up front, where it could never be promoted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.core.errors import PromotionError
from pipelines.core.pins import Environment, save_environment
from pipelines.core.settings import Settings
from pipelines.stages.promote import check_new_version_targets
from pipelines.stages.run import run_model

pytestmark = pytest.mark.code


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    root = tmp_path / "repo"
    (root / "environments").mkdir(parents=True)
    for name, after, champion in [("dev", None, False), ("staging", None, False),
                                  ("prod", "staging", True)]:  # fmt: skip
        save_environment(
            root / "environments",
            Environment(environment=name, promote_from=after, champion=champion),
        )
    monkeypatch.setenv("MLOPS_ROOT", str(root))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "state"))
    return Settings(root=root, home=tmp_path / "state")


def test_a_new_version_may_enter_environments_that_take_new_versions(settings: Settings) -> None:
    check_new_version_targets(settings, ["staging"])
    check_new_version_targets(settings, ["dev", "staging"])


def test_a_new_version_may_reach_production_through_its_upstream(settings: Settings) -> None:
    check_new_version_targets(settings, ["staging", "prod"])


def test_retraining_straight_to_production_is_refused_naming_the_way(settings: Settings) -> None:
    with pytest.raises(PromotionError, match="takes only the version pinned in 'staging'") as err:
        check_new_version_targets(settings, ["prod"])
    assert "--promote staging --promote prod" in err.value.message
    with pytest.raises(PromotionError):
        check_new_version_targets(settings, ["prod", "staging"])  # order matters


def test_run_refuses_before_anything_is_trained_or_registered(settings: Settings) -> None:
    class NoRegistry:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"the registry was used ({name}) before the refusal")

    # The model does not even exist: the check comes before the definition is read.
    with pytest.raises(PromotionError):
        run_model(NoRegistry(), settings, "penguins", promote_to=["prod"])  # type: ignore[arg-type]


def test_check_promote_is_exit_2_for_production_and_0_for_staging(settings: Settings) -> None:
    refused = CliRunner().invoke(app, ["check-promote", "--to", "prod"])
    assert refused.exit_code == 2
    assert "takes only the version pinned in 'staging'" in refused.output
    allowed = CliRunner().invoke(app, ["check-promote", "--to", "staging"])
    assert allowed.exit_code == 0, allowed.output
