"""The paired bootstrap and the gates a candidate must pass before it may be registered."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.core.definitions import (
    ChampionGate,
    FairnessGate,
    LatencyGate,
    SizeGate,
    load_definition,
)
from pipelines.core.errors import ExitCode, Rejected
from pipelines.core.scoring import Evaluation, Predictions, metric_value
from pipelines.stages.gates import (
    GateReport,
    GateResult,
    champion_gate,
    fairness_gate,
    latency_gate,
    size_gate,
    threshold_gates,
)
from pipelines.stages.stats import paired_bootstrap, resampled_metric

pytestmark = pytest.mark.code

ROWS = 300
CLASSES = np.array(["Adelie", "Chinstrap", "Gentoo"])


def _truth(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(CLASSES, size=ROWS)


def _wrong_on(y_true: np.ndarray, rows: np.ndarray) -> Predictions:
    """Predictions that are right everywhere except on ``rows``."""
    y_pred = y_true.copy()
    for row in rows:
        position = list(CLASSES).index(y_true[row])
        y_pred[row] = CLASSES[(position + 1) % len(CLASSES)]
    return Predictions(y_pred)


def _random_rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(ROWS, size=count, replace=False)


def _gate(**spec) -> ChampionGate:
    return ChampionGate(**spec)


def _champion(spec: ChampionGate, metric: str, y_true, challenger, champion) -> GateResult:
    return champion_gate(spec, metric, y_true, challenger, champion, "v1")


# --- paired bootstrap ---------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro", "balanced_accuracy"])
def test_identical_predictions_give_a_zero_interval(metric):
    y_true = _truth()
    pred = _wrong_on(y_true, _random_rows(40, seed=1))

    interval = paired_bootstrap(metric, y_true, pred, pred, resamples=200, confidence=0.95)

    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_bootstrap_is_reproducible_for_a_seed():
    y_true = _truth()
    a = _wrong_on(y_true, _random_rows(40, seed=1))
    b = _wrong_on(y_true, _random_rows(50, seed=2))

    first = paired_bootstrap("accuracy", y_true, a, b, resamples=300, confidence=0.9, seed=3)
    again = paired_bootstrap("accuracy", y_true, a, b, resamples=300, confidence=0.9, seed=3)

    assert first == again


def test_interval_is_positive_when_the_challenger_is_better():
    y_true = _truth()
    champion_errors = _random_rows(100, seed=1)
    better = _wrong_on(y_true, champion_errors[:10])
    worse = _wrong_on(y_true, champion_errors)

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


# --- champion gate ------------------------------------------------------------------------


def test_identical_challenger_passes_the_champion_gate():
    y_true = _truth()
    pred = _wrong_on(y_true, _random_rows(40, seed=1))

    result = _champion(_gate(), "accuracy", y_true, pred, pred)

    assert result.passed and not result.skipped
    assert "[0, 0]" in result.detail


def test_clearly_worse_challenger_is_rejected_when_it_must_not_be_worse():
    y_true = _truth()
    errors = _random_rows(105, seed=1)
    champion = _wrong_on(y_true, errors[:15])  # 5% errors
    challenger = _wrong_on(y_true, errors)  # 35% errors: 30 points more

    result = _champion(_gate(require="not_worse"), "accuracy", y_true, challenger, champion)

    assert not result.passed
    assert result.measured == pytest.approx(-0.3)
    assert "significantly worse" in result.detail


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("metric", ["accuracy", "f1_macro"])
def test_equally_good_challenger_with_errors_on_other_rows_is_not_rejected(seed, metric):
    y_true = _truth(seed)
    champion = _wrong_on(y_true, _random_rows(45, seed=2 * seed))
    challenger = _wrong_on(y_true, _random_rows(45, seed=2 * seed + 1))

    result = _champion(_gate(require="not_worse"), metric, y_true, challenger, champion)

    assert result.passed, result.detail


def test_margin_tolerates_a_challenger_worse_by_less_than_the_margin():
    y_true = _truth()
    errors = _random_rows(60, seed=1)
    champion = _wrong_on(y_true, errors[:30])
    challenger = _wrong_on(y_true, errors[:45])  # 5 points worse

    strict = _champion(_gate(margin=0.0), "accuracy", y_true, challenger, champion)
    lenient = _champion(_gate(margin=0.1), "accuracy", y_true, challenger, champion)

    assert not strict.passed
    assert lenient.passed


def test_equal_challenger_is_rejected_when_it_must_be_better():
    y_true = _truth()
    pred = _wrong_on(y_true, _random_rows(40, seed=1))

    result = _champion(_gate(require="better"), "accuracy", y_true, pred, pred)

    assert not result.passed
    assert "noise is not promoted" in result.detail


def test_equally_good_challenger_on_other_rows_is_rejected_when_it_must_be_better():
    y_true = _truth()
    champion = _wrong_on(y_true, _random_rows(45, seed=1))
    challenger = _wrong_on(y_true, _random_rows(45, seed=2))

    result = _champion(_gate(require="better"), "accuracy", y_true, challenger, champion)

    assert not result.passed


def test_clearly_better_challenger_passes_when_it_must_be_better():
    y_true = _truth()
    errors = _random_rows(105, seed=1)
    champion = _wrong_on(y_true, errors)
    challenger = _wrong_on(y_true, errors[:15])

    result = _champion(_gate(require="better"), "accuracy", y_true, challenger, champion)

    assert result.passed
    assert "significantly better" in result.detail


@pytest.mark.parametrize("metric", ["rmse", "mae"])
def test_champion_gate_reads_lower_error_as_better(metric):
    rng = np.random.default_rng(0)
    y_true = rng.normal(20, 5, size=ROWS)
    accurate = Predictions(y_true + rng.normal(0, 1, size=ROWS))
    sloppy = Predictions(y_true + rng.normal(0, 3, size=ROWS))

    promoted = _champion(_gate(require="better"), metric, y_true, accurate, sloppy)
    rejected = _champion(_gate(require="not_worse"), metric, y_true, sloppy, accurate)

    assert promoted.passed and promoted.measured > 0
    assert not rejected.passed and rejected.measured < 0
    assert "lower is better" in promoted.detail


def test_champion_gate_without_a_champion_is_skipped_and_passes():
    y_true = _truth()
    pred = _wrong_on(y_true, _random_rows(10, seed=1))

    result = champion_gate(_gate(), "accuracy", y_true, pred, None, None)

    assert result.passed and result.skipped
    assert "no champion" in result.detail


def test_disabled_champion_gate_is_skipped_even_for_a_worse_challenger():
    y_true = _truth()
    champion = _wrong_on(y_true, _random_rows(5, seed=1))
    challenger = _wrong_on(y_true, _random_rows(200, seed=2))

    result = _champion(_gate(enabled=False), "accuracy", y_true, challenger, champion)

    assert result.passed and result.skipped


def test_champion_gate_fails_when_the_metric_is_undefined():
    y_true = np.full(ROWS, 5.0)
    pred = Predictions(y_true + 1)

    result = _champion(_gate(), "r2", y_true, pred, pred)

    assert not result.passed
    assert "undefined" in result.detail


# --- threshold gates ----------------------------------------------------------------------


@pytest.fixture
def definition_with(repo):
    def make(thresholds):
        return load_definition(
            repo / "models" / "penguins" / "model.yaml", {"gates.thresholds": thresholds}
        )

    return make


@pytest.mark.parametrize(
    ("bound", "value", "passes"),
    [
        ({"min": 0.9}, 0.95, True),
        ({"min": 0.9}, 0.9, True),
        ({"min": 0.9}, 0.89, False),
        ({"max": 0.5}, 0.4, True),
        ({"max": 0.5}, 0.51, False),
        ({"min": 0.8, "max": 0.99}, 0.9, True),
        ({"min": 0.8, "max": 0.99}, 0.7, False),
        ({"min": 0.8, "max": 0.99}, 1.0, False),
        ({"min": 0.0}, math.nan, False),
        ({"max": 1.0}, math.inf, False),
    ],
)
def test_threshold_gate_holds_the_metric_to_its_bounds(definition_with, bound, value, passes):
    definition = definition_with({"accuracy": bound})

    [result] = threshold_gates(definition, {"accuracy": value, "f1_macro": 0.0})

    assert result.gate == "threshold:accuracy"
    assert result.passed is passes
    assert not result.skipped


def test_threshold_on_a_metric_that_was_not_computed_fails(definition_with):
    definition = definition_with({"roc_auc": {"min": 0.5}})

    [result] = threshold_gates(definition, {"accuracy": 1.0})

    assert not result.passed
    assert "undefined" in result.detail


def test_every_threshold_gets_its_own_result(definition_with):
    definition = definition_with({"accuracy": {"min": 0.9}, "log_loss": {"max": 0.3}})

    results = threshold_gates(definition, {"accuracy": 0.95, "log_loss": 0.4})

    assert [(r.gate, r.passed) for r in results] == [
        ("threshold:accuracy", True),
        ("threshold:log_loss", False),
    ]


# --- fairness gate ------------------------------------------------------------------------


def _evaluation(groups: dict[str, tuple[int, float]]) -> Evaluation:
    return Evaluation(
        metrics={"accuracy": 0.9},
        groups={"sex": {g: {"rows": float(n), "accuracy": v} for g, (n, v) in groups.items()}},
        rows=sum(n for n, _ in groups.values()),
    )


def _fairness(max_gap: float = 0.1, min_group_size: int = 20) -> FairnessGate:
    return FairnessGate(
        group_column="sex", metric="accuracy", max_gap=max_gap, min_group_size=min_group_size
    )


def test_fairness_gap_is_measured_over_groups_with_enough_rows():
    evaluation = _evaluation({"female": (40, 0.95), "male": (40, 0.80), "unknown": (3, 0.0)})

    result = fairness_gate(_fairness(max_gap=0.1), evaluation)

    assert not result.passed and not result.skipped
    assert result.measured == pytest.approx(0.15)  # not 0.95, which the tiny group would give
    assert "left out" in result.detail and "unknown" in result.detail


def test_fairness_gap_within_the_limit_passes():
    evaluation = _evaluation({"female": (40, 0.95), "male": (40, 0.90), "unknown": (3, 0.0)})

    result = fairness_gate(_fairness(max_gap=0.1), evaluation)

    assert result.passed and not result.skipped
    assert result.measured == pytest.approx(0.05)


def test_fairness_leaves_out_groups_with_an_undefined_metric():
    evaluation = _evaluation({"female": (40, 0.95), "male": (40, 0.90), "other": (40, math.nan)})

    result = fairness_gate(_fairness(max_gap=0.1), evaluation)

    assert result.passed
    assert result.measured == pytest.approx(0.05)
    assert "other" in result.detail


@pytest.mark.parametrize(
    "groups",
    [{"female": (40, 0.95), "male": (5, 0.10)}, {"female": (40, 0.95)}, {}],
    ids=["one-large-one-small", "one-group", "no-groups"],
)
def test_fairness_with_fewer_than_two_eligible_groups_is_skipped_and_passes(groups):
    result = fairness_gate(_fairness(), _evaluation(groups))

    assert result.passed and result.skipped
    assert result.measured is None


# --- size and latency gates ---------------------------------------------------------------


def test_size_gate_measures_every_file_under_the_model_folder(tmp_path: Path):
    (tmp_path / "model.pkl").write_bytes(b"x" * 1_000_000)
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "nested" / "deeper" / "weights.bin").write_bytes(b"x" * 500_000)

    small = size_gate(SizeGate(max_mb=1.5), tmp_path)
    tight = size_gate(SizeGate(max_mb=1.4), tmp_path)

    assert small.measured == pytest.approx(1.5)
    assert small.passed
    assert not tight.passed


class _FakeEstimator:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        self.batches.append(len(x))
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.zeros(len(x))


def test_latency_gate_passes_a_fast_estimator_and_uses_the_batch_size():
    estimator = _FakeEstimator()
    x = pd.DataFrame({"a": [1.0, 2.0]})

    result = latency_gate(LatencyGate(p99_ms=1000, batch_size=5, repeats=20), estimator, x)

    assert result.passed
    assert result.measured is not None and 0 <= result.measured < 1000
    assert set(estimator.batches) == {5}  # rows are cycled to fill a batch larger than x
    assert len(estimator.batches) >= 20


def test_latency_gate_rejects_an_estimator_slower_than_its_p99():
    estimator = _FakeEstimator(delay_s=0.003)
    x = pd.DataFrame({"a": [1.0]})

    result = latency_gate(LatencyGate(p99_ms=1, repeats=20), estimator, x)

    assert not result.passed
    assert result.measured is not None and result.measured >= 3


# --- the report ---------------------------------------------------------------------------


def test_report_raises_listing_every_failed_gate_and_no_passed_one():
    report = GateReport(
        [
            GateResult("threshold:accuracy", False, 0.5, ">= 0.9", "accuracy too low"),
            GateResult("champion", True, 0.0, "not worse", "fine"),
            GateResult("size", False, 30.0, "<= 25 MB", "model artifact = 30 MB"),
            GateResult("fairness", True, None, "gap <= 0.1", "skipped", skipped=True),
        ]
    )

    with pytest.raises(Rejected) as info:
        report.raise_if_failed("penguins")

    message = info.value.message
    assert info.value.exit_code is ExitCode.REJECTED
    assert "2 gate(s)" in message
    assert "threshold:accuracy: accuracy too low" in message
    assert "size: model artifact = 30 MB" in message
    assert "champion" not in message and "fairness" not in message
    assert not report.passed


def test_report_with_only_passed_and_skipped_gates_does_not_raise():
    report = GateReport(
        [
            GateResult("champion", True, None, "not worse", "no champion yet", skipped=True),
            GateResult("size", True, 1.0, "<= 25 MB", "ok"),
        ]
    )

    report.raise_if_failed("penguins")

    assert report.passed


def test_report_as_dict_turns_nan_into_null():
    report = GateReport([GateResult("threshold:roc_auc", False, math.nan, ">= 0.5", "nan")])

    assert report.as_dict()["results"][0]["measured"] is None
