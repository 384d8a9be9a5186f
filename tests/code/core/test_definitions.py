"""The model.yaml contract: what loads, and how each kind of mistake is reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from examples_root import EXAMPLE_MODELS

from pipelines.core.definitions import (
    AllAtOnce,
    Canary,
    Linear,
    discover_models,
    load_definition,
    load_model,
)
from pipelines.core.errors import DefinitionError, ExitCode
from pipelines.core.schemas import all_schemas, write_schemas

pytestmark = pytest.mark.code

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = discover_models(EXAMPLE_MODELS)


def _model_file(repo: Path, name: str = "penguins") -> Path:
    return repo / "models" / name / "model.yaml"


def _read(repo: Path, name: str = "penguins") -> dict[str, Any]:
    return yaml.safe_load(_model_file(repo, name).read_text(encoding="utf-8"))


def _write(repo: Path, data: dict[str, Any], name: str = "penguins") -> Path:
    path = _model_file(repo, name)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


def _definition_error(path: Path, overrides: dict[str, Any] | None = None) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        load_definition(path, overrides)
    assert info.value.exit_code is ExitCode.BAD_INPUT
    return info.value


def _model_error(repo: Path, name: str = "penguins") -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        load_model(repo / "models", repo / "data", name)
    return info.value


# --- the examples -------------------------------------------------------------------------


def test_both_example_models_are_discovered():
    assert {"penguins", "seattle_weather"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_model_loads_with_its_dataset(repo, name):
    model = load_model(repo / "models", repo / "data", name)

    assert model.name == name
    assert model.dataset.name == model.definition.dataset
    assert set(model.definition.columns_used()) <= set(model.dataset.definition.columns)


def test_example_strategies_are_parsed_into_their_own_types(repo):
    penguins = load_definition(_model_file(repo, "penguins"))
    weather = load_definition(_model_file(repo, "seattle_weather"))

    assert isinstance(penguins.deployment.strategy, Canary)
    assert isinstance(weather.deployment.strategy, Linear)
    assert weather.deployment.strategy.step_percent == 25


# --- schema errors name the file and the dotted field -------------------------------------


def test_unknown_nested_key_is_rejected_with_its_dotted_field(repo):
    path = _write(repo, _set(_read(repo), "gates.champion.marginn", 0.1))

    error = _definition_error(path)

    assert error.file == str(path)
    assert error.field == "gates.champion.marginn"
    assert "unknown key" in error.message


def test_unknown_top_level_key_is_rejected(repo):
    path = _write(repo, {**_read(repo), "ownr": "someone"})

    error = _definition_error(path)

    assert (error.file, error.field) == (str(path), "ownr")


def test_missing_required_key_is_named(repo):
    data = _read(repo)
    del data["owner"]
    path = _write(repo, data)

    error = _definition_error(path)

    assert (error.file, error.field) == (str(path), "owner")
    assert "required key is missing" in error.message


def test_several_problems_are_all_listed(repo):
    data = _read(repo)
    del data["owner"]
    data["ownr"] = "someone"
    path = _write(repo, data)

    error = _definition_error(path)

    assert error.file == str(path)
    assert "2 problems" in error.message
    assert "owner: required key is missing" in error.message
    assert "ownr: unknown key" in error.message


def test_malformed_yaml_is_a_definition_error_naming_the_file(repo):
    path = _model_file(repo)
    path.write_text("name: penguins\nfeatures: [a, b\n", encoding="utf-8")

    error = _definition_error(path)

    assert error.file == str(path)
    assert "malformed YAML" in error.message


def test_duplicate_yaml_keys_are_rejected_not_silently_overwritten(repo):
    path = _model_file(repo)
    path.write_text(path.read_text(encoding="utf-8") + "owner: someone-else@example.com\n")

    error = _definition_error(path)

    assert error.file == str(path)
    assert "duplicate key 'owner'" in error.message


@pytest.mark.parametrize("text", ["- name: penguins\n- task: regression\n", "just text\n", ""])
def test_top_level_that_is_not_a_mapping_is_rejected(repo, text):
    path = _model_file(repo)
    path.write_text(text, encoding="utf-8")

    error = _definition_error(path)

    assert error.file == str(path)
    assert "expected a mapping" in error.message


def test_missing_model_file_is_a_definition_error(repo):
    error = _definition_error(repo / "models" / "nope" / "model.yaml")

    assert "file not found" in error.message


def test_unknown_model_name_lists_the_known_models(repo):
    error = _model_error(repo, "nope")

    assert "penguins" in error.message
    assert "seattle_weather" in error.message


def test_name_must_match_its_folder(repo):
    path = _write(repo, {**_read(repo), "name": "pinguins"})

    error = _definition_error(path)

    assert (error.file, error.field) == (str(path), "name")
    assert "'pinguins'" in error.message


@pytest.mark.parametrize(
    ("dotted", "metric"),
    [
        ("gates.thresholds", {"rmse": {"max": 1.0}}),
        ("primary_metric", "r2"),
        ("gates.champion.metric", "mae"),
        ("gates.fairness.metric", "median_ae"),
    ],
)
def test_regression_metric_in_a_classification_model_is_rejected(repo, dotted, metric):
    path = _write(repo, _set(_read(repo), dotted, metric))
    named = f"{dotted}.rmse" if dotted == "gates.thresholds" else dotted

    error = _definition_error(path)

    assert error.file == str(path)
    assert named in str(error)
    assert "unknown metric" in error.message
    assert "accuracy" in error.message  # the allowed choices are listed


def test_classification_metric_in_a_regression_model_is_rejected(repo):
    path = _write(
        repo, _set(_read(repo, "seattle_weather"), "primary_metric", "accuracy"), "seattle_weather"
    )

    error = _definition_error(path)

    assert error.field == "primary_metric"
    assert "'accuracy'" in error.message


def test_target_listed_among_features_is_rejected(repo):
    data = _read(repo)
    data["features"] = [*data["features"], "species"]
    path = _write(repo, data)

    error = _definition_error(path)

    assert error.file == str(path)
    assert "target 'species' is also listed in features" in error.message


def test_feature_listed_twice_is_rejected(repo):
    data = _read(repo)
    data["features"] = [*data["features"], "island"]
    path = _write(repo, data)

    error = _definition_error(path)

    assert error.field == "features"
    assert "listed more than once: island" in error.message


@pytest.mark.parametrize(
    ("dotted", "schedule"),
    [
        ("retraining.schedule", "0 3 * *"),
        ("retraining.schedule", "0 3 * * 1 2026"),
        ("monitoring.schedule", "every hour"),
        ("monitoring.schedule", "0 * * * $"),
        ("monitoring.schedule", "99 * * * *"),
        ("retraining.schedule", "0 24 * * *"),
        ("retraining.schedule", "0 3 0 * *"),
        ("retraining.schedule", "0 3 * 13 *"),
    ],
)
def test_schedule_that_is_not_a_five_field_cron_is_rejected(repo, dotted, schedule):
    path = _write(repo, _set(_read(repo), dotted, schedule))

    error = _definition_error(path)

    assert (error.file, error.field) == (str(path), dotted)
    assert "cron" in error.message


@pytest.mark.parametrize(
    ("strategy", "expected_type"),
    [
        ({"type": "canary", "canary_percent": 5}, Canary),
        ({"type": "linear", "step_percent": 50}, Linear),
        ({"type": "all_at_once"}, AllAtOnce),
    ],
)
def test_deployment_strategy_is_chosen_by_its_type(repo, strategy, expected_type):
    path = _write(repo, _set(_read(repo), "deployment.strategy", strategy))

    parsed = load_definition(path).deployment.strategy

    assert type(parsed) is expected_type
    assert parsed.model_dump(include=set(strategy)) == strategy


def test_deployment_strategy_defaults_to_all_at_once(repo):
    data = _read(repo)
    del data["deployment"]["strategy"]
    path = _write(repo, data)

    assert isinstance(load_definition(path).deployment.strategy, AllAtOnce)


def test_unknown_deployment_strategy_type_lists_the_known_ones(repo):
    path = _write(repo, _set(_read(repo), "deployment.strategy", {"type": "blue_green"}))

    error = _definition_error(path)

    assert (error.file, error.field) == (str(path), "deployment.strategy")
    for known in ("all_at_once", "canary", "linear"):
        assert known in error.message


def test_field_of_another_strategy_is_an_unknown_key(repo):
    strategy = {"type": "canary", "step_percent": 20}
    path = _write(repo, _set(_read(repo), "deployment.strategy", strategy))

    error = _definition_error(path)

    assert error.field is not None
    assert error.field.startswith("deployment.strategy")
    assert error.field.endswith("step_percent")
    assert "unknown key" in error.message


def test_canary_percent_out_of_range_is_rejected(repo):
    strategy = {"type": "canary", "canary_percent": 0}
    path = _write(repo, _set(_read(repo), "deployment.strategy", strategy))

    error = _definition_error(path)

    assert error.field is not None
    assert error.field.endswith("canary_percent")


def test_autoscaling_max_below_min_is_rejected(repo):
    autoscaling = {"min_instances": 3, "max_instances": 2}
    path = _write(repo, _set(_read(repo), "deployment.autoscaling", autoscaling))

    error = _definition_error(path)

    assert (error.file, error.field) == (str(path), "deployment.autoscaling")
    assert "max_instances (2) is below min_instances (3)" in error.message


# --- agreement with the dataset -----------------------------------------------------------


@pytest.mark.parametrize(
    ("dotted", "value", "field"),
    [
        ("features", ["bill_length_mm", "beak_mm", "island"], "features[1]"),
        ("target", "colour", "target"),
        ("groups", ["sex", "colour"], "groups[1]"),
        ("split.time_column", "observed_at", "split.time_column"),
        ("gates.fairness.group_column", "colour", "gates.fairness.group_column"),
    ],
)
def test_column_missing_from_the_dataset_is_named_with_its_field(repo, dotted, value, field):
    path = _write(repo, _set(_read(repo), dotted, value))

    error = _model_error(repo)

    assert (error.file, error.field) == (str(path), field)
    missing = value[1] if isinstance(value, list) else value
    assert f"column {missing!r} is not in dataset 'penguins'" in error.message


def test_regression_on_a_category_target_is_rejected(repo):
    data = _read(repo)
    data.update(task="regression", primary_metric="rmse")
    data["gates"]["thresholds"] = {"rmse": {"max": 1.0}}
    data["gates"]["fairness"]["metric"] = "mae"
    path = _write(repo, data)

    error = _model_error(repo)

    assert (error.file, error.field) == (str(path), "target")
    assert "regression target must be an int or float column" in error.message


def test_classification_on_a_float_target_is_rejected(repo):
    data = _read(repo, "seattle_weather")
    data.update(task="classification", primary_metric="accuracy")
    data["gates"]["thresholds"] = {"accuracy": {"min": 0.5}}
    data["gates"]["fairness"]["metric"] = "accuracy"
    path = _write(repo, data, "seattle_weather")

    error = _model_error(repo, "seattle_weather")

    assert (error.file, error.field) == (str(path), "target")


def test_datetime_column_as_a_feature_is_rejected(repo):
    data = _read(repo, "seattle_weather")
    data["features"] = [*data["features"], "date"]
    path = _write(repo, data, "seattle_weather")

    error = _model_error(repo, "seattle_weather")

    assert (error.file, error.field) == (str(path), "features[4]")


def test_unknown_dataset_is_reported_against_the_model_file(repo):
    path = _write(repo, {**_read(repo), "dataset": "krill"})

    error = _model_error(repo)

    assert (error.file, error.field) == (str(path), "dataset")
    assert "krill" in error.message


# --- --set overrides ----------------------------------------------------------------------


def test_set_overrides_change_nested_values_and_keep_the_rest(repo):
    path = _model_file(repo)
    original = load_definition(path)

    changed = load_definition(
        path, {"split.seed": 1, "estimator.params.n_estimators": 10, "gates.size": None}
    )

    assert changed.split.seed == 1
    assert changed.estimator.params["n_estimators"] == 10
    assert changed.estimator.params["max_depth"] == original.estimator.params["max_depth"]
    assert changed.gates.size is None
    assert changed.split.test_fraction == original.split.test_fraction
    assert load_definition(path) == original  # the file itself is not changed


def test_set_override_can_create_a_missing_section(repo):
    data = _read(repo)
    del data["retraining"]
    path = _write(repo, data)

    changed = load_definition(path, {"retraining.schedule": "0 5 * * *"})

    assert changed.retraining.schedule == "0 5 * * *"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"split.test_fraction": 1.5}, "split.test_fraction"),
        ({"split.sead": 1}, "split.sead"),
        ({"deployment.strategy.type": "blue_green"}, "deployment.strategy"),
        ({"task": "clustering"}, "task"),
    ],
)
def test_invalid_set_override_names_the_file_and_field(repo, overrides, field):
    path = _model_file(repo)

    error = _definition_error(path, overrides)

    assert error.file is not None
    assert str(path) in error.file
    assert "--set" in error.file
    assert error.field == field


def test_set_override_through_a_non_mapping_names_the_file_and_field(repo):
    path = _model_file(repo)

    error = _definition_error(path, {"name.first": "x"})

    assert error.field == "name.first"
    assert "not a mapping" in error.message
    assert error.file is not None, "the error must say which model.yaml the --set applied to"
    assert str(path) in error.file


def test_set_override_on_a_file_that_is_not_a_mapping_is_rejected(repo):
    path = _model_file(repo)
    path.write_text("- a\n- b\n", encoding="utf-8")

    error = _definition_error(path, {"split.seed": 1})

    assert error.file == str(path)


def test_set_override_still_checks_the_name_against_the_folder(repo):
    error = _definition_error(_model_file(repo), {"name": "other"})

    assert error.field == "name"


# --- JSON Schema export -------------------------------------------------------------------


def _objects(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every sub-schema that declares properties, with where it is."""
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((where, node))
        for key, child in node.items():
            found += _objects(child, f"{where}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _objects(child, f"{where}/{i}")
    return found


@pytest.mark.parametrize("name", sorted(all_schemas()))
def test_exported_schema_forbids_additional_properties_everywhere(name):
    objects = _objects(all_schemas()[name])

    assert objects, "the schema declares no objects at all"
    loose = [where for where, node in objects if node.get("additionalProperties") is not False]
    assert loose == []


def test_model_schema_describes_the_strategy_union_and_required_keys():
    schema = all_schemas()["model.schema.json"]

    assert {"name", "description", "owner", "dataset", "task", "target", "features"} <= set(
        schema["required"]
    )
    text = json.dumps(schema)
    for strategy in ("Canary", "Linear", "AllAtOnce"):
        assert strategy in text


def test_committed_schema_files_are_up_to_date():
    stale = write_schemas(REPO_ROOT / "schemas", check_only=True)

    assert stale == [], "run `mlops schema` and commit schemas/"


def test_schema_check_reports_a_stale_file_without_writing_it(tmp_path):
    write_schemas(tmp_path)
    stale_file = tmp_path / "model.schema.json"
    stale_file.write_text("{}\n", encoding="utf-8")

    assert write_schemas(tmp_path, check_only=True) == ["model.schema.json"]
    assert stale_file.read_text(encoding="utf-8") == "{}\n"
