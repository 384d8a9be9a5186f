"""The evaluation plots of the model card: confusion matrix and ROC, or residuals, and per-group
bars, written as PNG into the report folder and logged with the run's evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.core.scoring import Evaluation, Predictions
    from pipelines.stages.candidate import Candidate


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display here or in CI
    import matplotlib.pyplot as plt

    return plt


def write_plots(
    candidate: Candidate, pred: Predictions, evaluation: Evaluation, out: Path
) -> list[Path]:
    """Confusion matrix and ROC (classification) or residuals (regression), plus per-group bars."""
    import numpy as np

    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    definition = candidate.model.definition
    y_true = candidate.y_test.to_numpy()
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        written.append(out / name)

    if definition.task.value == "classification":
        from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

        fig, ax = plt.subplots(figsize=(5, 4))
        ConfusionMatrixDisplay.from_predictions(
            y_true, pred.y_pred, labels=pred.classes, ax=ax, colorbar=False
        )
        ax.set_title(f"{candidate.name}: confusion matrix (held-out rows)")
        save(fig, "confusion_matrix.png")
        if pred.proba is not None and pred.classes:
            fig, ax = plt.subplots(figsize=(5, 4))
            for i, label in enumerate(pred.classes):
                positives = y_true == label
                if 0 < positives.sum() < len(y_true):
                    RocCurveDisplay.from_predictions(
                        positives, pred.proba[:, i], name=str(label), ax=ax
                    )
            ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
            ax.set_title(f"{candidate.name}: ROC, one class vs rest")
            save(fig, "roc.png")
    else:
        y = y_true.astype(float)
        residuals = y - pred.y_pred.astype(float)
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
        left.scatter(pred.y_pred, residuals, s=8, alpha=0.6)
        left.axhline(0, color="grey", linestyle=":")
        left.set_xlabel("predicted")
        left.set_ylabel("actual - predicted")
        left.set_title("residuals")
        right.hist(residuals, bins=30)
        right.set_title("residual distribution")
        fig.suptitle(f"{candidate.name}: held-out residuals")
        save(fig, "residuals.png")

    metric = definition.metric
    for column, groups in evaluation.groups.items():
        names = list(groups)
        values = [groups[g].get(metric, math.nan) for g in names]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(names, np.nan_to_num(values), color="tab:blue")
        for i, g in enumerate(names):
            ax.annotate(
                f"n={int(groups[g]['rows'])}",
                (i, 0),
                ha="center",
                va="bottom",
                fontsize=8,
                color="white",
            )
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by {column}")
        save(fig, f"groups_{column}.png")
    return written
