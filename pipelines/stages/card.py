"""The model card: what the model is, how it was judged, and where it came from.

Written as Markdown with PNG plots into the report folder (where CI picks it up to post on the
pull request) and logged to the candidate's MLflow run, so the registered version carries it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.core.scoring import format_value

if TYPE_CHECKING:
    from pipelines.core.scoring import Evaluation
    from pipelines.stages.candidate import Candidate
    from pipelines.stages.gates import GateReport


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
