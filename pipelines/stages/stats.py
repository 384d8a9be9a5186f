"""Paired bootstrap of a metric difference between two models scored on the same rows.

Resampling the rows (not each model separately) keeps the pairing: both models are judged on
the same resample each time, so the interval reflects the difference, not each model's noise.
The common metrics are computed for all resamples at once from per-row quantities; the others
fall back to a loop over resamples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.core.definitions import higher_is_better
from pipelines.core.scoring import metric_value

if TYPE_CHECKING:
    import numpy as np

    from pipelines.core.scoring import Predictions


@dataclass(frozen=True)
class Interval:
    """Improvement of the challenger over the champion, positive when the challenger is better."""

    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int


def resampled_metric(
    name: str, y_true: np.ndarray, pred: Predictions, idx: np.ndarray
) -> np.ndarray:
    """The metric on each row of ``idx`` (one bootstrap resample of row positions per row)."""
    import numpy as np

    y_pred = pred.y_pred
    if name == "accuracy":
        return (y_true == y_pred).astype(float)[idx].mean(axis=1)
    if name in ("f1_macro", "precision_macro", "recall_macro"):
        totals = np.zeros(len(idx))
        present = np.zeros(len(idx))
        for label in np.unique(np.concatenate([y_true, y_pred])):
            true_c, pred_c = (y_true == label), (y_pred == label)
            tp = (true_c & pred_c).astype(float)[idx].sum(axis=1)
            fp = (~true_c & pred_c).astype(float)[idx].sum(axis=1)
            fn = (true_c & ~pred_c).astype(float)[idx].sum(axis=1)
            if name == "f1_macro":
                num, den = 2 * tp, 2 * tp + fp + fn
            elif name == "precision_macro":
                num, den = tp, tp + fp
            else:
                num, den = tp, tp + fn
            totals += np.divide(num, den, out=np.zeros_like(num), where=den > 0)
            # Like scikit-learn: average over classes that occur in this resample's truth or
            # predictions.
            present += (tp + fp + fn) > 0
        return totals / np.maximum(present, 1)
    if name in ("rmse", "mae", "median_ae", "r2"):
        truth = np.asarray(y_true, dtype=float)
        errors = truth - np.asarray(y_pred, dtype=float)
        if name == "rmse":
            return np.sqrt((errors**2)[idx].mean(axis=1))
        if name == "mae":
            return np.abs(errors)[idx].mean(axis=1)
        if name == "median_ae":
            return np.median(np.abs(errors)[idx], axis=1)
        sampled = truth[idx]
        total = ((sampled - sampled.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        residual = (errors**2)[idx].sum(axis=1)
        return np.divide(total - residual, total, out=np.full_like(total, np.nan), where=total > 0)
    return np.array([metric_value(name, y_true[rows], pred.take(rows)) for rows in idx])


def paired_bootstrap(
    metric: str,
    y_true: np.ndarray,
    challenger: Predictions,
    champion: Predictions,
    *,
    resamples: int,
    confidence: float,
    seed: int = 0,
) -> Interval:
    import numpy as np

    sign = 1.0 if higher_is_better(metric) else -1.0
    estimate = sign * (
        metric_value(metric, y_true, challenger) - metric_value(metric, y_true, champion)
    )
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(resamples, len(y_true)))
    diffs = sign * (
        resampled_metric(metric, y_true, challenger, idx)
        - resampled_metric(metric, y_true, champion, idx)
    )
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return Interval(estimate, float("nan"), float("nan"), confidence, resamples)
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), confidence, resamples)
