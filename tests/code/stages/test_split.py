"""The train/test split (``pipelines.stages.split``): reproducible, stratified or by time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.core.definitions import ModelDefinition
from pipelines.core.errors import ExitCode, Rejected
from pipelines.stages.split import split_indices

pytestmark = pytest.mark.code


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
