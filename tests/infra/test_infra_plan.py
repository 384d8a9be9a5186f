"""What git says runs where: model definitions and pins turned into a deployment plan, and the
cloud naming conventions other parts rely on."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from examples_root import EXAMPLE_MODELS
from pulumi_mocks import REPO_ROOT

from infra.model_plan import canary_weight, plan, rollout_steps
from pipelines.core import conventions
from pipelines.core.definitions import Deployment, discover_models, load_definition
from pipelines.core.errors import DefinitionError
from pipelines.core.pins import list_environments

pytestmark = pytest.mark.infra


def test_conventions_import_without_pulumi() -> None:
    """The packaging code imports the S3 layout without pulling in Pulumi."""
    code = "import sys, pipelines.core.conventions; assert 'pulumi' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)


def test_model_archive_and_capture_layout() -> None:
    assert (
        conventions.model_data_key("seattle_weather", "3")
        == "models/seattle_weather/3/model.tar.gz"
    )
    assert conventions.model_data_url("b", "m", "1") == "s3://b/models/m/1/model.tar.gz"
    assert conventions.capture_uri("b", "prod") == "s3://b/captures/prod"
    assert conventions.endpoint_name("seattle_weather", "prod") == "seattle-weather-prod"
    assert conventions.slug("Some_Model") == "some-model"
    assert conventions.package_group_name("seattle_weather", "prod") == "seattle-weather-prod"


def test_the_repository_as_committed_plans_registry_only(tmp_path: Path) -> None:
    environment = list_environments(REPO_ROOT / "environments")[0]  # whichever it has
    plans = {p.name: p for p in plan(REPO_ROOT, environment)}
    assert set(plans) == set(discover_models(REPO_ROOT / "models"))
    assert all(p.version is None and not p.has_endpoint for p in plans.values())


def test_pins_decide_versions_and_local_models_get_no_endpoint(repo_factory: Any) -> None:
    repo = repo_factory(pins={"staging": {"penguins": ["2"], "seattle_weather": ["1", "4"]}})
    plans = {p.name: p for p in plan(repo, "staging")}
    assert plans["penguins"].version == "2" and not plans["penguins"].has_endpoint, "target local"
    weather = plans["seattle_weather"]
    assert (weather.version, weather.previous_version, weather.has_endpoint) == ("4", "1", True)


def test_a_pin_for_an_unknown_model_is_an_error_naming_the_file(repo_factory: Any) -> None:
    repo = repo_factory(pins={"dev": {"penguins": ["1"]}})
    path = repo / "environments" / "dev.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["ghost"] = copy.deepcopy(data["models"]["penguins"])  # no YAML alias
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError) as error:
        plan(repo, "dev")
    assert "ghost" in str(error.value) and error.value.file == str(path)


def test_an_unknown_environment_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="not found"):
        plan(REPO_ROOT, "no-such-environment")


@pytest.mark.parametrize(
    ("strategy", "steps"),
    [
        ({"type": "all_at_once"}, [100]),
        ({"type": "canary", "canary_percent": 10}, [10, 100]),
        ({"type": "linear", "step_percent": 25}, [25, 50, 75, 100]),
        ({"type": "linear", "step_percent": 30}, [30, 60, 90, 100]),
    ],
)
def test_rollout_steps_follow_model_yaml(strategy: dict[str, Any], steps: list[int]) -> None:
    assert rollout_steps(Deployment.model_validate({"strategy": strategy})) == steps


def canary_definition(kind: str = "canary") -> Any:
    definition = load_definition(EXAMPLE_MODELS / "penguins" / "model.yaml")
    strategy = {"type": kind} if kind != "canary" else {"type": "canary", "canary_percent": 10}
    return definition.model_copy(
        update={"deployment": Deployment.model_validate({"strategy": strategy})}
    )


def test_a_canary_runs_only_while_an_earlier_version_exists() -> None:
    definition = canary_definition()
    assert canary_weight(definition, "5", "4", []) == 10
    assert canary_weight(definition, "5", None, []) is None, "first version: nothing to compare"
    assert canary_weight(canary_definition("all_at_once"), "5", "4", []) is None


def test_rollouts_config_moves_and_completes_only_the_named_version() -> None:
    definition = canary_definition()
    assert canary_weight(definition, "5", "4", ["penguins@5=50"]) == 50
    assert canary_weight(definition, "5", "4", ["penguins@5"]) is None, "complete"
    assert canary_weight(definition, "5", "4", ["penguins@4"]) == 10, "stale entry ignored"
    assert canary_weight(definition, "5", "4", ["other@5"]) == 10
    with pytest.raises(DefinitionError, match="rollouts"):
        canary_weight(definition, "5", "4", ["penguins=5"])
    with pytest.raises(DefinitionError, match="outside"):
        canary_weight(definition, "5", "4", ["penguins@5=0"])
