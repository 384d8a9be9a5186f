"""The metrics each task can be judged on, and which direction is better.

Kept free of heavy imports because the model definition schema checks metric names against it
while the CLI is still answering ``--help``-fast commands.
"""

from __future__ import annotations

from typing import NamedTuple


class MetricInfo(NamedTuple):
    task: str
    higher_is_better: bool
    description: str


METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo("classification", True, "share of rows predicted correctly"),
    "balanced_accuracy": MetricInfo("classification", True, "mean recall over classes"),
    "f1_macro": MetricInfo("classification", True, "unweighted mean F1 over classes"),
    "precision_macro": MetricInfo("classification", True, "unweighted mean precision"),
    "recall_macro": MetricInfo("classification", True, "unweighted mean recall"),
    "roc_auc": MetricInfo("classification", True, "ROC AUC (one-vs-rest, macro, if multiclass)"),
    "log_loss": MetricInfo("classification", False, "cross-entropy of predicted probabilities"),
    "rmse": MetricInfo("regression", False, "root mean squared error"),
    "mae": MetricInfo("regression", False, "mean absolute error"),
    "median_ae": MetricInfo("regression", False, "median absolute error"),
    "r2": MetricInfo("regression", True, "coefficient of determination"),
}

DEFAULT_PRIMARY = {"classification": "f1_macro", "regression": "rmse"}


def metrics_for(task: str) -> list[str]:
    return [name for name, info in METRICS.items() if info.task == task]
