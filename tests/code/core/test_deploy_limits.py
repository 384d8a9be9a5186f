"""pipelines/core/deploy_limits.py: the configurations AWS would refuse, as pure checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.definitions import ModelDefinition, load_model
from pipelines.core.deploy_limits import (
    IAM_ROLE_NAME_MAX,
    SAGEMAKER_NAME_MAX,
    check_cloud_names,
    cloud_names,
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
    assert names["monitoring schedule"].limit == SAGEMAKER_NAME_MAX
    assert "namespace" not in names and "model package group" in names


def test_kubernetes_and_local_models_are_held_only_to_the_names_they_get() -> None:
    kubernetes = {n.what for n in cloud_names("penguins", "dev", "kubernetes")}
    assert kubernetes == {"model package group", "namespace", "pod role"}
    assert {n.what for n in cloud_names("penguins", "dev", "local")} == {"model package group"}


def test_a_name_that_fits_passes_and_one_more_character_is_refused(repo: Path) -> None:
    model = definition(repo)
    check_cloud_names(model, "m.yaml", "staging")
    long = model.model_copy(update={"name": "s" * 30})
    with pytest.raises(DefinitionError) as error:
        check_cloud_names(long, "m.yaml", "staging")
    assert (error.value.file, error.value.field) == ("m.yaml", "name")
    assert "at most 29 characters" in error.value.message
    check_cloud_names(long.model_copy(update={"name": "s" * 29}), "m.yaml", "staging")


def test_a_longer_version_shortens_what_fits(repo: Path) -> None:
    model = definition(repo).model_copy(update={"name": "s" * 29})
    check_cloud_names(model, "m.yaml", "staging", "9999")
    with pytest.raises(DefinitionError, match="version 99999 assumed"):
        check_cloud_names(model, "m.yaml", "staging", "99999")
