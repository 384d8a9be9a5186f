"""Pins files, reproducible splits, fingerprints and building an estimator from a definition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.core.definitions import ModelDefinition, load_definition, load_model
from pipelines.core.errors import DefinitionError, ExitCode, Rejected
from pipelines.core.estimators import build_pipeline
from pipelines.core.fingerprints import canonical_fingerprint, code_fingerprint
from pipelines.core.pins import (
    HISTORY_LIMIT,
    Environment,
    Pin,
    PinRecord,
    advance,
    load_environment,
    render,
    save_environment,
    step_back,
    with_pin,
)
from pipelines.stages.split import split_indices

pytestmark = pytest.mark.code


# --- pins ---------------------------------------------------------------------------------


def _record(version: int) -> PinRecord:
    return PinRecord(
        version=str(version),
        run_id=f"run{version}",
        model_uri=f"models:/penguins/{version}",
        fingerprint=f"sha256:{version:064x}",
        data_fingerprint=f"sha256:{0:064x}",
        git_commit=f"{version:040x}",
        promoted_at=f"2025-01-{version % 28 + 1:02d}T00:00:00+00:00",
        promoted_by="ci",
    )


def _promote(*versions: int) -> Pin:
    pin: Pin | None = None
    for version in versions:
        pin = advance(pin, _record(version))
    assert pin is not None
    return pin


def test_first_promotion_has_no_history():
    pin = advance(None, _record(1))

    assert pin.record() == _record(1)
    assert pin.history == []


def test_promotion_moves_the_current_pin_onto_the_history():
    pin = _promote(1, 2, 3)

    assert pin.version == "3"
    assert [r.version for r in pin.history] == ["1", "2"]
    assert pin.history[-1] == _record(2)


def test_step_back_restores_the_previous_pin_and_its_history():
    pin = step_back(_promote(1, 2, 3))

    assert pin.record() == _record(2)
    assert [r.version for r in pin.history] == ["1"]
    assert step_back(pin) == advance(None, _record(1))


def test_history_is_capped_at_the_limit_keeping_the_most_recent():
    total = HISTORY_LIMIT + 5
    pin = _promote(*range(1, total + 1))

    assert len(pin.history) == HISTORY_LIMIT
    assert [r.version for r in pin.history] == [str(v) for v in range(total - HISTORY_LIMIT, total)]


def _environment(name: str = "staging", **fields: Any) -> Environment:
    pin = _promote(1, 2)
    return Environment(
        environment=name,
        description="test environment",
        models={"penguins": pin},
        **fields,
    )


def test_saved_environment_loads_back_unchanged(tmp_path):
    environment = _environment("prod", promote_from="staging", champion=True)

    path = save_environment(tmp_path, environment)

    assert path == tmp_path / "prod.yaml"
    assert load_environment(tmp_path, "prod") == environment
    assert path.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../schemas/environment.schema.json"
    )


def test_rendered_environment_is_plain_yaml_with_the_pins_in_order(tmp_path):
    environment = _environment()
    environment = with_pin(environment, "alpha", advance(None, _record(7)))

    data = yaml.safe_load(render(environment))

    assert list(data["models"]) == ["alpha", "penguins"]
    assert data["models"]["penguins"]["history"][0]["version"] == "1"


def test_with_pin_none_removes_the_model(tmp_path):
    environment = with_pin(_environment(), "penguins", None)

    assert environment.models == {}


COMMITTED_ENVIRONMENTS = Path(__file__).resolve().parents[2] / "environments"


@pytest.mark.parametrize("name", sorted(p.stem for p in COMMITTED_ENVIRONMENTS.glob("*.yaml")))
def test_committed_environment_files_load(name):
    assert load_environment(COMMITTED_ENVIRONMENTS, name).environment == name


def test_committed_environments_form_one_chain_ending_in_production():
    names = sorted(p.stem for p in COMMITTED_ENVIRONMENTS.glob("*.yaml"))
    environments = [load_environment(COMMITTED_ENVIRONMENTS, n) for n in names]

    champions = [e for e in environments if e.champion]
    assert len(champions) == 1 and champions[0].requires_approval, "one production"
    assert all(e.promote_from in (None, *names) for e in environments)


def test_environment_whose_name_differs_from_its_file_is_rejected(tmp_path):
    save_environment(tmp_path, _environment("staging"))
    (tmp_path / "staging.yaml").rename(tmp_path / "qa.yaml")

    with pytest.raises(DefinitionError) as info:
        load_environment(tmp_path, "qa")

    assert info.value.field == "environment"
    assert info.value.file == str(tmp_path / "qa.yaml")


def test_environment_promoting_from_itself_is_rejected(tmp_path):
    save_environment(tmp_path, _environment("staging", promote_from="staging"))

    with pytest.raises(DefinitionError) as info:
        load_environment(tmp_path, "staging")

    assert info.value.field == "promote_from"
    assert info.value.file == str(tmp_path / "staging.yaml")


def test_unknown_environment_lists_the_known_ones(tmp_path):
    save_environment(tmp_path, _environment("staging"))

    with pytest.raises(DefinitionError) as info:
        load_environment(tmp_path, "prod")

    assert "staging" in info.value.message


def test_pin_with_a_non_numeric_version_is_rejected(tmp_path):
    path = save_environment(tmp_path, _environment("staging"))
    path.write_text(path.read_text(encoding="utf-8").replace("version: '2'", "version: latest"))

    with pytest.raises(DefinitionError) as info:
        load_environment(tmp_path, "staging")

    assert info.value.field == "models.penguins.version"


# --- split --------------------------------------------------------------------------------


def _definition(**changes: Any) -> ModelDefinition:
    data: dict[str, Any] = {
        "name": "toy",
        "description": "toy model",
        "owner": "tests",
        "dataset": "toy",
        "task": "classification",
        "target": "label",
        "features": ["x"],
        "estimator": {"path": "sklearn.tree.DecisionTreeClassifier"},
    }
    data.update(changes)
    return ModelDefinition.model_validate(data)


def _frame(labels: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=len(labels)), "label": labels})


def _labels(**counts: int) -> list[str]:
    labels = [label for label, n in counts.items() for _ in range(n)]
    return list(np.random.default_rng(1).permutation(labels))


def test_same_seed_gives_the_same_split():
    frame = _frame(_labels(a=50, b=50))

    first = split_indices(_definition(split={"seed": 3}), frame)
    again = split_indices(_definition(split={"seed": 3}), frame)
    other = split_indices(_definition(split={"seed": 4}), frame)

    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("stratify", [True, False])
def test_split_partitions_every_row_by_the_test_fraction(stratify):
    frame = _frame(_labels(a=60, b=43))

    train, test = split_indices(
        _definition(split={"test_fraction": 0.25, "stratify": stratify}), frame
    )

    assert len(test) == 26  # ceil(103 * 0.25)
    assert sorted([*train, *test]) == list(range(len(frame)))


def test_time_split_holds_out_the_latest_rows():
    days = pd.date_range("2024-01-01", periods=50, freq="D")
    order = np.random.default_rng(0).permutation(50)
    frame = pd.DataFrame({"x": np.arange(50.0), "label": ["a", "b"] * 25, "day": days[order]})
    definition = _definition(split={"time_column": "day", "test_fraction": 0.2})

    train, test = split_indices(definition, frame)

    assert len(test) == 10
    assert frame["day"].iloc[train].max() < frame["day"].iloc[test].min()
    assert set(frame["day"].iloc[test]) == set(days[-10:])


def test_stratified_split_keeps_every_class_in_proportion_in_test():
    frame = _frame(_labels(common=60, middle=30, rare=10))

    _, test = split_indices(_definition(split={"test_fraction": 0.2, "seed": 0}), frame)

    counts = frame["label"].iloc[test].value_counts().to_dict()
    assert counts == {"common": 12, "middle": 6, "rare": 2}


def test_class_with_a_single_row_cannot_be_stratified_and_says_how_to_fix_it():
    frame = _frame(_labels(a=40, b=40, lonely=1))

    with pytest.raises(Rejected) as info:
        split_indices(_definition(), frame)

    assert info.value.exit_code is ExitCode.REJECTED
    assert "lonely" in info.value.message
    assert "split.stratify: false" in info.value.message


def test_class_with_a_single_row_can_be_split_without_stratification():
    frame = _frame(_labels(a=40, b=40, lonely=1))

    train, test = split_indices(_definition(split={"stratify": False}), frame)

    assert len(train) + len(test) == len(frame)


def test_too_few_rows_to_split_is_rejected():
    with pytest.raises(Rejected):
        split_indices(_definition(split={"stratify": False}), _frame(["a", "b"]))


# --- fingerprints -------------------------------------------------------------------------


def _reformat(source: Path, target: Path, change=None) -> Path:
    """Write the same document with keys reversed at every level and in block style."""

    def reverse(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: reverse(v) for k, v in reversed(list(node.items()))}
        if isinstance(node, list):
            return [reverse(v) for v in node]
        return node

    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    if change:
        change(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        "# reformatted\n\n" + yaml.safe_dump(reverse(data), sort_keys=False, indent=4),
        encoding="utf-8",
    )
    return target


def test_reordered_and_reformatted_model_yaml_has_the_same_fingerprint(repo, tmp_path):
    original = repo / "models" / "penguins" / "model.yaml"
    copy = _reformat(original, tmp_path / "other" / "penguins" / "model.yaml")
    assert copy.read_text(encoding="utf-8") != original.read_text(encoding="utf-8")

    assert canonical_fingerprint(load_definition(copy)) == canonical_fingerprint(
        load_definition(original)
    )


def test_writing_out_a_default_does_not_change_the_fingerprint(repo, tmp_path):
    original = repo / "models" / "penguins" / "model.yaml"

    def spell_out_default(data: dict[str, Any]) -> None:
        data["monitoring"]["capture_percent"] = 100

    copy = _reformat(original, tmp_path / "other" / "penguins" / "model.yaml", spell_out_default)

    assert canonical_fingerprint(load_definition(copy)) == canonical_fingerprint(
        load_definition(original)
    )


def test_changing_a_hyperparameter_changes_the_fingerprint(repo, tmp_path):
    original = repo / "models" / "penguins" / "model.yaml"

    def deeper(data: dict[str, Any]) -> None:
        data["estimator"]["params"]["max_depth"] = 7

    copy = _reformat(original, tmp_path / "other" / "penguins" / "model.yaml", deeper)

    assert canonical_fingerprint(load_definition(copy)) != canonical_fingerprint(
        load_definition(original)
    )


def test_canonical_fingerprint_ignores_dict_key_order():
    assert canonical_fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == canonical_fingerprint(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    assert canonical_fingerprint({"a": 1}) != canonical_fingerprint({"a": 2})


def test_code_fingerprint_is_stable_across_calls():
    assert code_fingerprint() == code_fingerprint()
    assert code_fingerprint().startswith("sha256:")


def test_code_fingerprint_follows_source_files_but_not_bytecode_caches(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__pycache__").mkdir()
    (package / "a.py").write_text("A = 1\n")
    (package / "sub" / "b.py").write_text("B = 2\n")
    (package / "__pycache__" / "stale.py").write_text("junk\n")
    before = code_fingerprint(package)

    (package / "__pycache__" / "stale.py").write_text("other junk\n")
    (package / "notes.txt").write_text("not code\n")
    unchanged = code_fingerprint(package)
    (package / "sub" / "b.py").write_text("B = 3\n")
    changed = code_fingerprint(package)
    (package / "sub" / "b.py").write_text("B = 2\n")
    (package / "sub" / "b.py").rename(package / "b.py")
    moved = code_fingerprint(package)

    assert unchanged == before
    assert changed != before
    assert moved != before


# --- estimators ---------------------------------------------------------------------------


def _model(repo: Path, overrides: dict[str, Any]):
    return load_model(repo / "models", repo / "data", "penguins", overrides)


@pytest.mark.parametrize("name", ["penguins", "seattle_weather"])
def test_example_models_build_a_pipeline(repo, name):
    pipeline = build_pipeline(load_model(repo / "models", repo / "data", name))

    assert [step for step, _ in pipeline.steps] == ["preprocess", "estimator"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"estimator.path": "no_such_package.Forest"}, "estimator.path"),
        ({"estimator.path": "sklearn.ensemble.NoSuchForest"}, "estimator.path"),
        ({"estimator.path": "os.system"}, "estimator.path"),
        ({"estimator.path": "sklearn.ensemble.RandomForestRegressor"}, "estimator.path"),
        ({"estimator.params.no_such_param": 1}, "estimator.params"),
        ({"estimator.params.n_estimators": -5}, "estimator.params"),
        ({"estimator.params.criterion": "chaos"}, "estimator.params"),
    ],
    ids=[
        "unknown-module",
        "unknown-class",
        "not-an-estimator",
        "regressor-for-classification",
        "unknown-param",
        "negative-param",
        "bad-choice-param",
    ],
)
def test_unbuildable_estimator_is_a_definition_error_naming_the_field(repo, overrides, field):
    model = _model(repo, overrides)

    with pytest.raises(DefinitionError) as info:
        build_pipeline(model)

    assert info.value.field == field
    assert info.value.file == str(model.path)


def test_classifier_for_a_regression_task_is_rejected(repo):
    model = load_model(
        repo / "models",
        repo / "data",
        "seattle_weather",
        {"estimator": {"path": "sklearn.ensemble.RandomForestClassifier"}},
    )

    with pytest.raises(DefinitionError) as info:
        build_pipeline(model)

    assert info.value.field == "estimator.path"
    assert "classifier but task is regression" in info.value.message


def test_estimator_without_random_state_gets_the_split_seed(repo):
    params = {"n_estimators": 5}
    model = _model(repo, {"estimator.params": params, "split.seed": 123})

    estimator = build_pipeline(model).named_steps["estimator"]

    assert estimator.get_params()["random_state"] == 123
