"""The model card: what the model is, how it was judged, and where it came from.

Written as Markdown with PNG plots into the report folder (where CI picks it up to post on the
pull request) and logged to the candidate's MLflow run, so the registered version carries it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.gates import format_value

if TYPE_CHECKING:
    from pipelines.candidate import Candidate
    from pipelines.evaluate import Evaluation, Predictions
    from pipelines.gates import GateReport

CARD_FILE = "model_card.md"


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


def render_card(
    candidate: Candidate,
    evaluation: Evaluation,
    report: GateReport,
    plots: list[str],
    version: str | None = None,
) -> str:
    definition = candidate.model.definition
    dataset = candidate.model.dataset.definition
    verdict = "PASSED" if report.passed else "REJECTED"
    lines = [
        f"# Model card: {candidate.name}" + (f" v{version}" if version else ""),
        "",
        f"{definition.description}",
        "",
        f"- **Verdict:** {verdict}",
        f"- **Owner:** {definition.owner}",
        f"- **Task:** {definition.task.value}, target `{definition.target}`",
        f"- **Estimator:** `{definition.estimator.path}` {definition.estimator.params or ''}",
        f"- **Features:** {', '.join(f'`{f}`' for f in definition.features)}",
        f"- **Dataset:** `{dataset.name}` ({len(candidate.frame)} rows; "
        f"{len(candidate.train_rows)} training, {evaluation.rows} held out"
        + (f", split by `{definition.split.time_column}`" if definition.split.time_column else "")
        + ")",
        "",
        "## Metrics on held-out rows",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(
            f"| {k}{' (primary)' if k == definition.metric else ''} | {format_value(v)} |"
            for k, v in evaluation.metrics.items()
        ),
        "",
        "## Gates",
        "",
        "| gate | verdict | measured | threshold | detail |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r.gate} | {r.verdict} | {format_value(r.measured)} | {r.threshold} "
            f"| {_cell(r.detail)} |"
            for r in report.results
        ),
        "",
    ]
    for column, groups in evaluation.groups.items():
        lines += [
            f"## Metrics by `{column}`",
            "",
            "| group | rows | " + " | ".join(evaluation.metrics) + " |",
        ]
        lines.append("| --- " * (len(evaluation.metrics) + 2) + "|")
        for group, scores in groups.items():
            cells = " | ".join(format_value(scores.get(m)) for m in evaluation.metrics)
            lines.append(f"| {group} | {int(scores['rows'])} | {cells} |")
        lines.append("")
    prints = candidate.fingerprints
    lines += [
        "## Lineage",
        "",
        f"- Git commit: `{candidate.git_commit}`",
        f"- MLflow run: `{candidate.run_id}`",
        f"- Model URI: `{candidate.model_uri}`",
        f"- Definition fingerprint: `{prints.definition}`",
        f"- Data fingerprint: `{prints.data}`",
        f"- Code fingerprint: `{prints.code}`",
        f"- Compared against champion: {report.champion_version or 'none'}",
        "",
    ]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "/").replace("\n", " ")
