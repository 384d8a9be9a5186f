"""Statistics for the champion gate (``pipelines.stages.stats``): the paired bootstrap and the
vectorised resampled metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gate_helpers import CLASSES, ROWS, random_rows, truth, wrong_on

from pipelines.core.scoring import Predictions, metric_value
from pipelines.stages.stats import paired_bootstrap, resampled_metric

pytestmark = pytest.mark.code

# --- paired bootstrap ---------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro", "balanced_accuracy"])
def test_identical_predictions_give_a_zero_interval(metric):
    y_true = truth()
    pred = wrong_on(y_true, random_rows(40, seed=1))

    interval = paired_bootstrap(metric, y_true, pred, pred, resamples=200, confidence=0.95)

    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_bootstrap_is_reproducible_for_a_seed():
    y_true = truth()
    a = wrong_on(y_true, random_rows(40, seed=1))
    b = wrong_on(y_true, random_rows(50, seed=2))

    first = paired_bootstrap("accuracy", y_true, a, b, resamples=300, confidence=0.9, seed=3)
    again = paired_bootstrap("accuracy", y_true, a, b, resamples=300, confidence=0.9, seed=3)

    assert first == again


def test_interval_is_positive_when_the_challenger_is_better():
    y_true = truth()
    champion_errors = random_rows(100, seed=1)
    better = wrong_on(y_true, champion_errors[:10])
    worse = wrong_on(y_true, champion_errors)

    interval = paired_bootstrap("accuracy", y_true, better, worse, resamples=500, confidence=0.95)

    assert interval.estimate == pytest.approx(90 / ROWS)
    assert 0 < interval.low <= interval.estimate <= interval.high


@pytest.mark.parametrize("metric", ["rmse", "mae", "median_ae"])
def test_lower_is_better_metrics_count_a_smaller_error_as_an_improvement(metric):
    rng = np.random.default_rng(0)
    y_true = rng.normal(20, 5, size=ROWS)
    small = Predictions(y_true + rng.normal(0, 1, size=ROWS))
    large = Predictions(y_true + rng.normal(0, 3, size=ROWS))

    interval = paired_bootstrap(metric, y_true, small, large, resamples=500, confidence=0.95)
    reverse = paired_bootstrap(metric, y_true, large, small, resamples=500, confidence=0.95)

    assert interval.estimate > 0 and interval.low > 0
    assert reverse.estimate < 0 and reverse.high < 0


def test_metric_that_is_undefined_on_every_resample_gives_a_nan_interval():
    y_true = np.full(ROWS, 5.0)  # r2 is undefined with a constant truth
    pred = Predictions(y_true + 1)

    interval = paired_bootstrap("r2", y_true, pred, pred, resamples=100, confidence=0.95)

    assert math.isnan(interval.low) and math.isnan(interval.high)


# --- the vectorised resampled metrics agree with metric_value ----------------------------


def _classification_case(seed: int) -> tuple[np.ndarray, Predictions]:
    rng = np.random.default_rng(seed)
    # An imbalanced fourth class makes some resamples lack it in truth or predictions.
    labels = np.array([*CLASSES, "Rare"])
    y_true = rng.choice(labels, size=60, p=[0.4, 0.3, 0.27, 0.03])
    y_pred = np.where(rng.random(60) < 0.3, rng.choice(labels, size=60), y_true)
    return y_true, Predictions(y_pred)


def _regression_case(seed: int) -> tuple[np.ndarray, Predictions]:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(10, 4, size=60)
    return y_true, Predictions(y_true + rng.normal(0, 2, size=60))


@pytest.mark.parametrize(
    ("metric", "case"),
    [
        ("accuracy", _classification_case),
        ("f1_macro", _classification_case),
        ("precision_macro", _classification_case),
        ("recall_macro", _classification_case),
        ("rmse", _regression_case),
        ("mae", _regression_case),
        ("median_ae", _regression_case),
        ("r2", _regression_case),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resampled_metric_agrees_with_metric_value_on_each_resample(metric, case, seed):
    y_true, pred = case(seed)
    idx = np.random.default_rng(seed + 100).integers(0, len(y_true), size=(8, len(y_true)))

    vectorised = resampled_metric(metric, y_true, pred, idx)
    looped = [metric_value(metric, y_true[rows], pred.take(rows)) for rows in idx]

    np.testing.assert_allclose(vectorised, looped, rtol=1e-12, atol=1e-12)


def test_resampled_macro_metrics_skip_classes_absent_from_a_resample():
    y_true = np.array(["a", "a", "b", "b", "c"])
    pred = Predictions(np.array(["a", "b", "b", "b", "c"]))
    idx = np.array([[0, 1, 2, 3, 0], [4, 4, 4, 4, 4]])

    for metric in ("f1_macro", "precision_macro", "recall_macro"):
        looped = [metric_value(metric, y_true[rows], pred.take(rows)) for rows in idx]
        np.testing.assert_allclose(resampled_metric(metric, y_true, pred, idx), looped)
    assert resampled_metric("recall_macro", y_true, pred, idx)[1] == 1.0
