"""Evaluation on the held-out rows: the task's standard metrics, overall and per group."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.metric_catalog import metrics_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pipelines.candidate import Candidate

EVALUATION_ARTIFACT = "evaluation.json"


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


def evaluate_predictions(candidate: Candidate, pred: Predictions) -> Evaluation:
    import numpy as np

    definition = candidate.model.definition
    task = definition.task.value
    test = candidate.test_frame
    y_true = np.asarray(candidate.y_test)
    evaluation = Evaluation(compute_metrics(task, y_true, pred), rows=len(test))
    group_columns = list(definition.groups)
    if definition.gates.fairness and definition.gates.fairness.group_column not in group_columns:
        group_columns.append(definition.gates.fairness.group_column)
    for column in group_columns:
        values = test[column].astype("object").where(test[column].notna(), "<missing>").to_numpy()
        per_group: dict[str, dict[str, float]] = {}
        for group in sorted(set(values), key=str):
            rows = np.flatnonzero(values == group)
            with warnings.catch_warnings():
                # A small group often holds a single class; scikit-learn warns, we report it.
                warnings.simplefilter("ignore", UserWarning)
                scores = compute_metrics(task, y_true[rows], pred.take(rows))
            per_group[str(group)] = {"rows": float(len(rows)), **scores}
        evaluation.groups[column] = per_group
    return evaluation


def evaluate(candidate: Candidate, report_dir: Path) -> tuple[Evaluation, Predictions]:
    """Score the candidate on its held-out rows; log metrics and plots to its run and report."""
    import mlflow

    from pipelines.card import write_plots
    from pipelines.registry import registry_errors

    task = candidate.model.definition.task.value
    pred = predict(candidate.fitted(), candidate.x_test, task)
    evaluation = evaluate_predictions(candidate, pred)
    with registry_errors(), mlflow.start_run(run_id=candidate.run_id):
        finite = {f"test_{k}": v for k, v in evaluation.metrics.items() if math.isfinite(v)}
        mlflow.log_metrics(finite)
        mlflow.log_dict(json_safe(evaluation.as_dict()), EVALUATION_ARTIFACT)
        for plot in write_plots(candidate, pred, evaluation, report_dir):
            mlflow.log_artifact(str(plot), "card")
        mlflow.set_tag("mlops.stage.evaluate", "done")
    return evaluation, pred


def json_safe(value: Any) -> Any:
    """JSON has no NaN: undefined metrics become null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
