"""The gates (``pipelines.stages.gates``): pure judgements of predictions, explained."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gate_helpers import ROWS, random_rows, truth, wrong_on

from pipelines.core.definitions import (
    ChampionGate,
    FairnessGate,
    LatencyGate,
    SizeGate,
    load_definition,
)
from pipelines.core.errors import ExitCode, Rejected
from pipelines.core.scoring import Evaluation, Predictions
from pipelines.stages.gates import (
    GateReport,
    GateResult,
    champion_gate,
    champion_verdict,
    fairness_gate,
    latency_gate,
    size_gate,
    threshold_gates,
)

pytestmark = pytest.mark.code


def _gate(**spec) -> ChampionGate:
    return ChampionGate(**spec)


def _champion(spec: ChampionGate, metric: str, y_true, challenger, champion) -> GateResult:
    return champion_gate(spec, metric, y_true, challenger, champion, "v1")


# --- champion gate ------------------------------------------------------------------------


def test_identical_challenger_passes_the_champion_gate():
    y_true = truth()
    pred = wrong_on(y_true, random_rows(40, seed=1))

    result = _champion(_gate(), "accuracy", y_true, pred, pred)

    assert result.passed and not result.skipped
    assert "[0, 0]" in result.detail


def test_clearly_worse_challenger_is_rejected_when_it_must_not_be_worse():
    y_true = truth()
    errors = random_rows(105, seed=1)
    champion = wrong_on(y_true, errors[:15])  # 5% errors
    challenger = wrong_on(y_true, errors)  # 35% errors: 30 points more

    result = _champion(_gate(require="not_worse"), "accuracy", y_true, challenger, champion)

    assert not result.passed
    assert result.measured == pytest.approx(-0.3)
    assert "significantly worse" in result.detail


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("metric", ["accuracy", "f1_macro"])
def test_equally_good_challenger_with_errors_on_other_rows_is_not_rejected(seed, metric):
    y_true = truth(seed)
    champion = wrong_on(y_true, random_rows(45, seed=2 * seed))
    challenger = wrong_on(y_true, random_rows(45, seed=2 * seed + 1))

    result = _champion(_gate(require="not_worse"), metric, y_true, challenger, champion)

    assert result.passed, result.detail


def test_margin_tolerates_a_challenger_worse_by_less_than_the_margin():
    y_true = truth()
    errors = random_rows(60, seed=1)
    champion = wrong_on(y_true, errors[:30])
    challenger = wrong_on(y_true, errors[:45])  # 5 points worse

    strict = _champion(_gate(margin=0.0), "accuracy", y_true, challenger, champion)
    lenient = _champion(_gate(margin=0.1), "accuracy", y_true, challenger, champion)

    assert not strict.passed
    assert lenient.passed


def test_equal_challenger_is_rejected_when_it_must_be_better():
    y_true = truth()
    pred = wrong_on(y_true, random_rows(40, seed=1))

    result = _champion(_gate(require="better"), "accuracy", y_true, pred, pred)

    assert not result.passed
    assert "noise is not promoted" in result.detail


def test_equally_good_challenger_on_other_rows_is_rejected_when_it_must_be_better():
    y_true = truth()
    champion = wrong_on(y_true, random_rows(45, seed=1))
    challenger = wrong_on(y_true, random_rows(45, seed=2))

    result = _champion(_gate(require="better"), "accuracy", y_true, challenger, champion)

    assert not result.passed


def test_clearly_better_challenger_passes_when_it_must_be_better():
    y_true = truth()
    errors = random_rows(105, seed=1)
    champion = wrong_on(y_true, errors)
    challenger = wrong_on(y_true, errors[:15])

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
    y_true = truth()
    pred = wrong_on(y_true, random_rows(10, seed=1))

    result = champion_gate(_gate(), "accuracy", y_true, pred, None, None)

    assert result.passed and result.skipped
    assert "no champion" in result.detail


def test_disabled_champion_gate_is_skipped_even_for_a_worse_challenger():
    y_true = truth()
    champion = wrong_on(y_true, random_rows(5, seed=1))
    challenger = wrong_on(y_true, random_rows(200, seed=2))

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


@pytest.mark.parametrize(
    ("low", "high", "margin", "require", "passed", "says", "never"),
    [
        # The reported bug: wholly below zero, within the margin, was "not significantly worse".
        (
            -0.04,
            -0.01,
            0.05,
            "not_worse",
            True,
            "significantly worse (by 0.01 to 0.04), within the allowed margin 0.05",
            "not significantly",
        ),
        (
            -0.12,
            -0.04,
            0.0,
            "not_worse",
            False,
            "significantly worse (by 0.04 to 0.12), by more than the allowed margin 0",
            "within",
        ),
        (-0.02, 0.03, 0.0, "not_worse", True, "no significant difference", "significantly worse"),
        (0.01, 0.04, 0.0, "not_worse", True, "significantly better", "worse"),
        (
            0.01,
            0.04,
            0.0,
            "better",
            True,
            "significantly better (by 0.01 to 0.04), by more than the required margin 0",
            "not",
        ),
        (
            0.01,
            0.04,
            0.02,
            "better",
            False,
            "but not surely by more than the required margin 0.02",
            "noise",
        ),
        (-0.01, 0.02, 0.0, "better", False, "noise is not promoted", "significantly"),
        (-0.05, -0.01, 0.0, "better", False, "significantly worse", "better ("),
    ],
)
def test_the_verdict_says_what_the_interval_shows(low, high, margin, require, passed, says, never):
    verdict = champion_verdict(low, high, margin, require, passed)
    assert says in verdict
    assert never not in verdict


def test_a_significantly_worse_challenger_within_the_margin_is_called_significantly_worse():
    y_true = truth()
    errors = random_rows(60, seed=1)
    champion = wrong_on(y_true, errors[:30])
    challenger = wrong_on(y_true, errors[:45])  # 5 points worse, every difference one way

    result = _champion(_gate(margin=0.1), "accuracy", y_true, challenger, champion)

    assert result.passed
    assert (
        "significantly worse" in result.detail and "within the allowed margin 0.1" in result.detail
    )
    assert "not significantly worse" not in result.detail
