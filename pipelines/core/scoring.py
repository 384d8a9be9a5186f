"""Scoring a model's predictions: the metric catalogue's formulas, shared by every stage that
judges a model (evaluation, the gates' bootstrap) and by the monitor (concept drift on labels).

Pure functions of predictions and labels; scikit-learn is imported inside them so that modules
importing this one stay fast to load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.core.metric_catalog import metrics_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class Predictions:
    y_pred: np.ndarray
    proba: np.ndarray | None = None
    classes: list[Any] | None = None

    def take(self, rows: np.ndarray) -> Predictions:
        proba = self.proba[rows] if self.proba is not None else None
        return Predictions(self.y_pred[rows], proba, self.classes)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    groups: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "metrics": self.metrics, "groups": self.groups}


def predict(estimator: Any, x: pd.DataFrame, task: str) -> Predictions:
    import numpy as np

    y_pred = np.asarray(estimator.predict(x))
    if task == "classification" and hasattr(estimator, "predict_proba"):
        return Predictions(y_pred, np.asarray(estimator.predict_proba(x)), list(estimator.classes_))
    return Predictions(y_pred)


def metric_value(name: str, y_true: np.ndarray, pred: Predictions) -> float:
    """One metric; NaN where it is undefined on these rows (say, AUC with a single class)."""
    import numpy as np
    from sklearn import metrics as m

    y_pred = pred.y_pred
    try:
        if name == "accuracy":
            return float(np.mean(y_true == y_pred))
        if name == "balanced_accuracy":
            return float(m.balanced_accuracy_score(y_true, y_pred))
        if name in ("f1_macro", "precision_macro", "recall_macro"):
            scorer = {
                "f1_macro": m.f1_score,
                "precision_macro": m.precision_score,
                "recall_macro": m.recall_score,
            }[name]
            # Averaged over the classes present in these rows (truth or prediction), as
            # scikit-learn does by default, so a group that lacks a class is not penalised.
            return float(scorer(y_true, y_pred, average="macro", zero_division=0))
        if name == "roc_auc":
            if pred.proba is None or len(np.unique(y_true)) < 2:
                return math.nan
            if len(pred.classes or []) == 2:
                return float(m.roc_auc_score(y_true == pred.classes[1], pred.proba[:, 1]))  # type: ignore[index]
            present = np.isin(np.asarray(pred.classes), np.unique(y_true))
            if present.sum() < len(pred.classes or []):
                return math.nan  # one-vs-rest AUC needs every class among these rows
            return float(
                m.roc_auc_score(y_true, pred.proba, multi_class="ovr", labels=pred.classes)
            )
        if name == "log_loss":
            if pred.proba is None:
                return math.nan
            return float(m.log_loss(y_true, pred.proba, labels=pred.classes))
        errors = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
        if name == "rmse":
            return float(np.sqrt(np.mean(errors**2)))
        if name == "mae":
            return float(np.mean(np.abs(errors)))
        if name == "median_ae":
            return float(np.median(np.abs(errors)))
        if name == "r2":
            total = np.sum((np.asarray(y_true, dtype=float) - np.mean(y_true)) ** 2)
            return float(1 - np.sum(errors**2) / total) if total > 0 else math.nan
    except ValueError:
        return math.nan
    raise KeyError(f"unknown metric {name!r}")


def compute_metrics(task: str, y_true: np.ndarray, pred: Predictions) -> dict[str, float]:
    return {name: metric_value(name, y_true, pred) for name in metrics_for(task)}


def json_safe(value: Any) -> Any:
    """JSON has no NaN: undefined metrics become null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_value(value: float | None) -> str:
    """A measured value for people: four significant digits, n/a when undefined."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"
