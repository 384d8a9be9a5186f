"""Behaviour of the example models: invariances and directional expectations.

Each example is trained once per module exactly as ``mlops train`` would (validated data,
the definition's split, the pipeline built from model.yaml), without MLflow. The expectations
come from the domain (bigger penguins are more likely Gentoo; a warmer night means a warmer
day), never from numbers copied from a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from examples_root import EXAMPLE_DATA, EXAMPLE_MODELS

from pipelines.core.definitions import Model, load_model
from pipelines.core.estimators import build_pipeline
from pipelines.stages.split import split_indices
from pipelines.stages.validate import validate_for_model

pytestmark = pytest.mark.model

EXAMPLES = ("penguins", "seattle_weather")


@dataclass
class Trained:
    model: Model
    frame: pd.DataFrame
    train_rows: np.ndarray
    test_rows: np.ndarray
    pipeline: Any

    @property
    def features(self) -> list[str]:
        return self.model.definition.features

    @property
    def target(self) -> str:
        return self.model.definition.target

    @property
    def train(self) -> pd.DataFrame:
        return self.frame.iloc[self.train_rows]

    @property
    def test(self) -> pd.DataFrame:
        """Held-out rows with every column of the dataset, not only the features."""
        return self.frame.iloc[self.test_rows]


def fit(name: str) -> Trained:
    model = load_model(EXAMPLE_MODELS, EXAMPLE_DATA, name)
    frame, report = validate_for_model(model)
    assert report.ok, [v.render() for v in report.violations]
    train_rows, test_rows = split_indices(model.definition, frame)
    pipeline = build_pipeline(model)
    train = frame.iloc[train_rows]
    pipeline.fit(train[model.definition.features], train[model.definition.target])
    return Trained(model, frame, train_rows, test_rows, pipeline)


@pytest.fixture(scope="module", autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """Single-threaded OpenMP: same results, and no thread contention on a busy 2-core box."""
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime so that it can be limited)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def penguins() -> Trained:
    return fit("penguins")


@pytest.fixture(scope="module")
def seattle_weather() -> Trained:
    return fit("seattle_weather")


@pytest.fixture(params=EXAMPLES)
def trained(request: pytest.FixtureRequest) -> Trained:
    return request.getfixturevalue(request.param)


def outputs(trained: Trained, x: pd.DataFrame) -> np.ndarray:
    """Probabilities for a classifier (stricter than labels), predictions for a regressor."""
    if hasattr(trained.pipeline, "predict_proba"):
        return np.asarray(trained.pipeline.predict_proba(x))
    return np.asarray(trained.pipeline.predict(x))


def test_predictions_ignore_every_column_that_is_not_a_feature(trained: Trained) -> None:
    x = trained.test.copy()
    others = [c for c in x.columns if c not in trained.features]
    assert trained.target in others  # the target itself must never leak into a prediction
    rng = np.random.default_rng(0)
    scrambled = x.copy()
    for column in others:
        scrambled[column] = rng.permutation(x[column].to_numpy())
        assert not scrambled[column].equals(x[column]), column

    np.testing.assert_array_equal(outputs(trained, x), outputs(trained, scrambled))


def test_penguin_predictions_ignore_sex_and_year(penguins: Trained) -> None:
    x = penguins.test.copy()
    assert {"sex", "year"}.isdisjoint(penguins.features)
    changed = x.copy()
    changed["sex"] = x["sex"].map({"female": "male", "male": "female"})
    changed["year"] = x["year"] + 5

    np.testing.assert_array_equal(penguins.pipeline.predict(x), penguins.pipeline.predict(changed))
    np.testing.assert_array_equal(outputs(penguins, x), outputs(penguins, changed))


def test_predictions_do_not_depend_on_row_order_or_column_order(trained: Trained) -> None:
    x = trained.test[trained.features]
    order = np.random.default_rng(1).permutation(len(x))
    shuffled = x.iloc[order][list(reversed(trained.features))]

    np.testing.assert_array_equal(outputs(trained, shuffled), outputs(trained, x)[order])


def test_a_row_is_predicted_the_same_alone_as_in_a_batch(trained: Trained) -> None:
    x = trained.test[trained.features]
    batch = outputs(trained, x)
    for i in np.random.default_rng(2).choice(len(x), size=10, replace=False):
        np.testing.assert_array_equal(outputs(trained, x.iloc[[i]])[0], batch[i])


def test_penguins_beat_the_majority_class_baseline_clearly(penguins: Trained) -> None:
    y_test = penguins.test[penguins.target]
    majority = penguins.train[penguins.target].mode()[0]
    baseline = float((y_test == majority).mean())

    accuracy = float((penguins.pipeline.predict(penguins.test[penguins.features]) == y_test).mean())

    # "Clearly": the model closes at least half of the gap between the baseline and perfection.
    assert accuracy >= baseline + (1 - baseline) / 2, (accuracy, baseline)


def test_seattle_weather_beats_predicting_the_training_mean_clearly(
    seattle_weather: Trained,
) -> None:
    y_test = seattle_weather.test[seattle_weather.target].to_numpy(dtype=float)
    training_mean = seattle_weather.train[seattle_weather.target].mean()
    baseline = np.sqrt(np.mean((y_test - training_mean) ** 2))

    predicted = seattle_weather.pipeline.predict(seattle_weather.test[seattle_weather.features])
    rmse = np.sqrt(np.mean((y_test - predicted) ** 2))

    assert rmse <= baseline / 2, (rmse, baseline)


def test_a_warmer_night_raises_the_predicted_maximum_temperature(
    seattle_weather: Trained,
) -> None:
    x = seattle_weather.test[seattle_weather.features]
    warmer = x.copy()
    warmer["temp_min"] = x["temp_min"] + 5

    before = seattle_weather.pipeline.predict(x)
    after = seattle_weather.pipeline.predict(warmer)

    assert after.mean() > before.mean(), (before.mean(), after.mean())
    assert (after > before).mean() > 0.5, "most days should be predicted warmer"


def test_bigger_penguins_are_more_likely_gentoo(penguins: Trained) -> None:
    x = penguins.test[penguins.features]
    bigger = x.copy()
    bigger["flipper_length_mm"] = x["flipper_length_mm"] + 15
    bigger["body_mass_g"] = x["body_mass_g"] + 800
    gentoo = list(penguins.pipeline.classes_).index("Gentoo")

    before = penguins.pipeline.predict_proba(x)[:, gentoo].mean()
    after = penguins.pipeline.predict_proba(bigger)[:, gentoo].mean()

    assert after > before, (before, after)


def test_an_island_never_seen_in_the_schema_does_not_break_prediction(penguins: Trained) -> None:
    x = penguins.test[penguins.features].head(5).copy()
    x["island"] = "Anvers"

    predicted = penguins.pipeline.predict(x)

    assert set(predicted) <= set(penguins.pipeline.classes_)


def test_retraining_with_the_same_seed_gives_identical_predictions(trained: Trained) -> None:
    again = fit(trained.model.name)
    np.testing.assert_array_equal(again.train_rows, trained.train_rows)
    np.testing.assert_array_equal(again.test_rows, trained.test_rows)
    x = trained.test[trained.features]

    np.testing.assert_array_equal(again.pipeline.predict(x), trained.pipeline.predict(x))
    np.testing.assert_array_equal(outputs(again, x), outputs(trained, x))
