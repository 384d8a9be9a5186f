"""pipelines/core/deploy_limits.py: the configurations AWS would refuse, as pure checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.definitions import ModelDefinition, load_model
from pipelines.core.deploy_limits import (
    IAM_ROLE_NAME_MAX,
    MAX_ROLLOUT_MINUTES,
    SAGEMAKER_NAME_MAX,
    check_cloud_names,
    check_rollout_time,
    check_traffic_shifting,
    cloud_names,
    fleet,
    has_instance_storage,
    rollout_minutes,
    sagemaker_variant,
)
from pipelines.core.errors import DefinitionError

pytestmark = pytest.mark.code


def definition(repo: Path, name: str = "seattle_weather", **deployment: object) -> ModelDefinition:
    loaded = load_model(repo / "models", repo / "data", name).definition
    data = loaded.model_dump()
    data["deployment"] = {**data["deployment"], **deployment}
    return ModelDefinition.model_validate(data)


def test_every_sagemaker_name_is_checked_against_its_services_limit() -> None:
    names = {n.what: n for n in cloud_names("penguins", "staging", "sagemaker", "12")}
    assert names["endpoint"].name == "penguins-staging"
    assert names["model"].name == "penguins-staging-model-v12-xxxxxxx"
    assert names["endpoint execution role"].limit == IAM_ROLE_NAME_MAX
    assert names["monitor schedule role"].limit == IAM_ROLE_NAME_MAX
    assert names["endpoint configuration"].limit == SAGEMAKER_NAME_MAX
    assert "namespace" not in names and "model package group" in names


def test_kubernetes_and_local_models_are_held_only_to_the_names_they_get() -> None:
    kubernetes = {n.what for n in cloud_names("penguins", "dev", "kubernetes")}
    assert kubernetes == {"model package group", "namespace", "pod role", "monitor pod role"}
    assert {n.what for n in cloud_names("penguins", "dev", "local")} == {"model package group"}


def test_a_name_that_fits_passes_and_one_more_character_is_refused(repo: Path) -> None:
    model = definition(repo)
    check_cloud_names(model, "m.yaml", "staging")
    long = model.model_copy(update={"name": "s" * 35})
    with pytest.raises(DefinitionError) as error:
        check_cloud_names(long, "m.yaml", "staging")
    assert (error.value.file, error.value.field) == ("m.yaml", "name")
    assert "at most 34 characters" in error.value.message
    check_cloud_names(long.model_copy(update={"name": "s" * 34}), "m.yaml", "staging")


def test_a_longer_version_shortens_what_fits(repo: Path) -> None:
    model = definition(repo).model_copy(update={"name": "s" * 34})
    check_cloud_names(model, "m.yaml", "staging", "9999")
    with pytest.raises(DefinitionError, match="version 99999 assumed"):
        check_cloud_names(model, "m.yaml", "staging", "99999")


@pytest.mark.parametrize(
    "instance_type",
    ["ml.g4dn.xlarge", "ml.g5.2xlarge", "ml.m5d.large", "ml.c5d.xlarge", "ml.r5d.large",
     "ml.p3dn.24xlarge", "ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge",
     "ml.g6e.xlarge", "ml.trn1.32xlarge", "ml.m6id.large"],
)  # fmt: skip
def test_instance_types_with_local_storage_are_known(instance_type: str) -> None:
    assert has_instance_storage(instance_type)


@pytest.mark.parametrize(
    "instance_type",
    ["ml.m5.large", "ml.t2.medium", "ml.c5.xlarge", "ml.c5n.xlarge", "ml.p3.2xlarge",
     "ml.inf2.xlarge", "ml.c7i.large", "ml.r5.large"],
)  # fmt: skip
def test_ebs_only_instance_types_take_a_volume_key(instance_type: str) -> None:
    assert not has_instance_storage(instance_type)


@pytest.mark.parametrize("strategy", ["canary", "linear"])
def test_shifting_traffic_on_a_fleet_that_can_be_one_instance_is_refused(
    repo: Path, strategy: str
) -> None:
    model = definition(
        repo,
        instance_count=3,
        strategy={"type": strategy},
        autoscaling={"min_instances": 1, "max_instances": 3},
    )
    with pytest.raises(DefinitionError) as error:
        check_traffic_shifting(model, "m.yaml")
    assert (error.value.file, error.value.field) == (
        "m.yaml",
        "deployment.autoscaling.min_instances",
    )
    assert f"{strategy} traffic shifting needs at least 2 instances" in error.value.message


def test_shifting_traffic_needs_two_instances_only_on_sagemaker(repo: Path) -> None:
    one = {"instance_count": 1, "autoscaling": {"min_instances": 1, "max_instances": 1}}
    check_traffic_shifting(definition(repo, strategy={"type": "all_at_once"}, **one), "m.yaml")
    for target in ("kubernetes", "local"):
        check_traffic_shifting(
            definition(repo, target=target, strategy={"type": "canary"}, **one), "m.yaml"
        )
    two = {"instance_count": 2, "autoscaling": {"min_instances": 2, "max_instances": 4}}
    check_traffic_shifting(definition(repo, strategy={"type": "canary"}, **two), "m.yaml")


def test_the_fleet_is_model_yamls_count_within_its_autoscaling_bounds(repo: Path) -> None:
    scaled = {"autoscaling": {"min_instances": 0, "max_instances": 3}}
    assert fleet(definition(repo, instance_count=5, **scaled).deployment) == (1, 3, 3)


def test_a_scaled_down_stack_runs_one_small_instance_whatever_model_yaml_asks(
    repo: Path,
) -> None:
    deployment = definition(repo, instance_type="ml.c5.xlarge", **TWO).deployment
    full = sagemaker_variant(deployment, scaled_down=False, scaled_down_instance_type="ml.t2.small")
    assert full == ("ml.c5.xlarge", fleet(deployment))
    small = sagemaker_variant(deployment, scaled_down=True, scaled_down_instance_type="ml.t2.small")
    assert small == ("ml.t2.small", (1, 1, 1))


TWO = {"instance_count": 2, "autoscaling": {"min_instances": 2, "max_instances": 4}}


@pytest.mark.parametrize(
    ("strategy", "minutes"),
    [
        ({"type": "all_at_once", "bake_minutes": 10}, 10 + 5),
        ({"type": "canary", "canary_percent": 10, "bake_minutes": 10}, 2 * 10 + 5),
        ({"type": "linear", "step_percent": 25, "bake_minutes": 5}, 4 * 5 + 5),
        ({"type": "linear", "step_percent": 5, "bake_minutes": 1}, 10 * 1 + 5),  # 10 % at least
    ],
)
def test_rollout_time_counts_every_bake_and_the_termination_wait(
    repo: Path, strategy: dict[str, object], minutes: int
) -> None:
    assert rollout_minutes(definition(repo, strategy=strategy, **TWO).deployment) == minutes


def test_a_rollout_longer_than_a_deploy_waits_is_refused_naming_the_bake(repo: Path) -> None:
    fits = definition(
        repo, strategy={"type": "linear", "step_percent": 25, "bake_minutes": 8}, **TWO
    )
    assert rollout_minutes(fits.deployment) <= MAX_ROLLOUT_MINUTES
    check_rollout_time(fits, "m.yaml")
    longer = definition(
        repo, strategy={"type": "linear", "step_percent": 25, "bake_minutes": 9}, **TWO
    )
    with pytest.raises(DefinitionError) as error:
        check_rollout_time(longer, "m.yaml")
    assert (error.value.file, error.value.field) == ("m.yaml", "deployment.strategy.bake_minutes")
    assert "= 41 minutes; a deploy waits at most 40" in error.value.message
    assert "Bake at most 8 minutes" in error.value.message


def test_kubernetes_rollouts_are_not_held_to_the_sagemaker_wait(repo: Path) -> None:
    day = {"type": "canary", "bake_minutes": 1440}
    check_rollout_time(definition(repo, target="kubernetes", strategy=day, **TWO), "m.yaml")
