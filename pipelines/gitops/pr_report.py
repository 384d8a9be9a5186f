"""The one pull-request comment: per model, metrics against the champion and every gate verdict.

Everything comes from what the gate stage recorded on the MLflow run (``gates.json``, the
``test_*`` metrics, the ``mlops.gate*`` tags) and from the champion version's lineage tags, so
the comment shows exactly what decided the check. The workflow finds its previous comment by
``MARKER`` and edits it, so a pull request carries one report however often it is pushed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.definitions import load_definition, model_path
from pipelines.core.errors import MlopsError
from pipelines.core.registry import CHAMPION, get_run, registry_errors, version_by_alias
from pipelines.core.scoring import format_value
from pipelines.core.tags import (
    GATE_STAGE_TAG,
    GATES_ARTIFACT,
    GATES_PASSED_TAG,
    METRIC_TAG_PREFIX,
    PRIMARY_METRIC_TAG,
    STAGE_DONE,
)
from pipelines.stages.run import report_dir

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.settings import Settings

MARKER = "<!-- mlops-report -->"
PREVIEW_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters
# The whole comment stays below GitHub's 65,536-character limit, with room for the cut notes.
COMMENT_LIMIT = 64_000
CUT_NOTE = "... (cut to fit GitHub's comment size limit; the full {what} is in {where})"


@dataclass
class ModelResult:
    model: str
    run_id: str
    passed: bool | None
    metrics: dict[str, float]
    champion: str | None
    champion_metrics: dict[str, float]
    gates: list[dict[str, Any]]
    primary_metric: str | None
    card: Path | None
    plots: list[str]


def collect(
    client: MlflowClient, settings: Settings, model: str, run_id: str | None = None
) -> ModelResult:
    """What the run (default: the latest) of ``model`` recorded, and its champion's metrics."""
    import mlflow

    run = get_run(client, model, run_id, settings)
    tags = run.data.tags
    gates: list[dict[str, Any]] = []
    if tags.get(GATE_STAGE_TAG) == STAGE_DONE:
        with registry_errors():
            local = mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path=GATES_ARTIFACT
            )
        gates = json.loads(Path(local).read_text(encoding="utf-8")).get("results", [])
    champion = version_by_alias(client, model, CHAMPION)
    champion_metrics = {
        k.removeprefix(METRIC_TAG_PREFIX): float(v)
        for k, v in (champion.tags if champion else {}).items()
        if k.startswith(METRIC_TAG_PREFIX)
    }
    out = report_dir(settings, model)
    card = out / "model_card.md"
    return ModelResult(
        model=model,
        run_id=run.info.run_id,
        passed={"true": True, "false": False}.get(tags.get(GATES_PASSED_TAG, "")),
        metrics={
            k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")
        },
        champion=f"v{champion.version}" if champion else None,
        champion_metrics=champion_metrics,
        gates=gates,
        primary_metric=tags.get(PRIMARY_METRIC_TAG) or _primary(settings, model),
        card=card if card.is_file() else None,
        plots=sorted(p.name for p in out.glob("*.png")),
    )


def _primary(settings: Settings, model: str) -> str | None:

    try:
        return load_definition(model_path(settings.models_dir, model)).metric
    except MlopsError:
        return None


def _fmt(value: float | None) -> str:

    return format_value(value)


def _inert(text: object) -> str:
    """User text (descriptions, gate details, file names) made unable to open or close HTML,
    hide the report marker, or start a heading: ``&``, ``<`` and ``>`` become entities."""
    value = str(text).replace(MARKER, "")
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: object) -> str:
    """One table cell of user text: inert HTML, one line, one cell, and no links or images
    (``](`` is escaped, so ``[text](url)`` stays text)."""
    value = _inert(text).replace("](", "]\\(")
    return value.replace("|", "/").replace("\r", " ").replace("\n", " ")


def _card(text: str) -> str:
    """A model card (markdown ``pipelines.stages.card`` wrote, with the definition's description in
    it) as inert text: no HTML, and headings become bold lines so nothing in it looks like a
    section of the report."""
    lines = []
    for line in _inert(text).splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            title = stripped.lstrip("#").strip()
            line = f"**{title}**" if title else ""
        lines.append(line)
    return "\n".join(lines)


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text``, so the text cannot end it."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _run_link() -> str | None:
    server, repo, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def render_model(result: ModelResult) -> str:
    """One model's section: verdict, metrics against the champion, gates, card and plots."""
    verdict = {True: "passed", False: "**rejected**", None: "not gated"}[result.passed]
    icon = {True: "✅", False: "❌", None: "⚠️"}[result.passed]
    champion_gate = next((g for g in result.gates if g.get("gate") == "champion"), None)
    uncompared = champion_gate is not None and bool(champion_gate.get("skipped"))
    if uncompared and result.passed:
        verdict, icon = "passed, **not compared with a champion**", "⚠️"
    lines = [f"### {icon} `{result.model}`: {verdict}", "", f"MLflow run `{result.run_id}`."]
    if uncompared and champion_gate is not None:
        # A skipped champion gate passes; a reviewer must not read that as "beat the champion".
        lines += [
            "",
            "> [!WARNING]",
            f"> **Not compared with a champion**: {_cell(champion_gate.get('detail', ''))}. "
            "Only the absolute gates judged this candidate.",
        ]
    champion = result.champion or "none yet"
    lines += [
        "",
        f"| metric | candidate | champion ({champion}) | change |",
        "| --- | --- | --- | --- |",
    ]
    for name, value in result.metrics.items():
        old = result.champion_metrics.get(name)
        change = _fmt(value - old) if old is not None and math.isfinite(value) else "-"
        label = f"{_cell(name)} (primary)" if name == result.primary_metric else _cell(name)
        lines.append(
            f"| {label} | {_cell(_fmt(value))} | {_cell(_fmt(old)) if old is not None else '-'} "
            f"| {_cell(change)} |"
        )
    if champion_gate and not uncompared:
        # The confidence interval of the improvement is in the champion gate's own words.
        lines += ["", f"Champion comparison: {_cell(champion_gate.get('detail', ''))}"]
    lines += [
        "",
        "| gate | verdict | measured | threshold | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for gate in result.gates:
        verdict_text = (
            "skipped" if gate.get("skipped") else "pass" if gate.get("passed") else "**FAIL**"
        )
        lines.append(
            f"| {_cell(gate.get('gate'))} | {verdict_text} | {_cell(_measured(gate))} "
            f"| {_cell(gate.get('threshold', ''))} | {_cell(gate.get('detail', ''))} |"
        )
    if not result.gates:
        lines.append("| - | not gated | - | - | the run has no gates.json |")
    link = _run_link()
    where = f"the [workflow run]({link})'s" if link else "the workflow run's"
    lines += [
        "",
        f"Model card and plots ({', '.join(result.plots) or 'none'}): artifact "
        f"`report-{result.model}` of {where} artifacts.",
    ]
    if result.card:
        card = result.card.read_text(encoding="utf-8")
        lines += ["", "<details><summary>Model card</summary>", "", _card(card), "", "</details>"]
    return "\n".join(lines) + "\n"


def _measured(gate: dict[str, Any]) -> str:
    """A gate's measured value; gates.json is a file, so a string there is shown, not trusted."""
    value = gate.get("measured")
    if value is None or isinstance(value, int | float):
        return _fmt(value)
    return str(value)


def _where() -> str:
    link = _run_link()
    return f"the [workflow run]({link})'s log and artifacts" if link else "the workflow run"


def render_preview(path: Path, limit: int = PREVIEW_LIMIT) -> str:
    """An infrastructure preview file (``pulumi preview`` output), folded and size-capped."""
    if not path.is_file():
        raise MlopsError("no such file", file=path, field="--infra-preview")
    text = path.read_text(encoding="utf-8", errors="replace")
    if len(text) > limit:
        cut = CUT_NOTE.format(what="preview", where="the workflow run's log")
        text = text[: max(0, limit)] + "\n" + cut
    fence = _fence(text)
    return "\n".join(
        [
            f"<details><summary>Infrastructure preview: <code>{_inert(path.stem)}</code></summary>",
            "",
            fence,
            text.rstrip(),
            fence,
            "",
            "</details>",
            "",
        ]
    )


def _fit_section(section: str, budget: int) -> str:
    """A model section cut to ``budget`` characters: the folded model card goes first, then
    whole lines from the end; never inside an open ``<details>``."""
    note = CUT_NOTE.format(what="model card and report", where=_where())
    if len(section) <= budget:
        return section
    start = section.find("<details><summary>Model card</summary>")
    if start >= 0:
        section = section[:start].rstrip() + "\n\n" + note + "\n"
        if len(section) <= budget:
            return section
    keep = max(0, budget - len(note) - 2)
    head = section[:keep]
    head = head[: head.rfind("\n") + 1] if "\n" in head else ""
    return head + "\n" + note + "\n" if budget > len(note) + 2 else ""


# A fork's pull request gets no secrets and no OIDC token, so the jobs that need them are skipped
# (pull-request.yml); the report must not read as if the models had passed.
FORK_NOTE = (
    "> [!WARNING]\n"
    "> **Skipped: this pull request comes from a fork.** Jobs that need credentials did not run: "
    "no model was trained, gated or compared with a champion, and no stack was previewed. "
    "A maintainer can push the branch to this repository to run them.\n"
)


def compose(
    sections: list[str],
    previews: list[Path],
    *,
    title: str = "MLOps report",
    limit: int = COMMENT_LIMIT,
    fork: bool = False,
) -> str:
    """The whole comment body, starting with the marker the workflow looks for, cut so that it
    stays under ``limit`` characters (GitHub refuses longer comments). With ``fork``, it opens
    with the note that the credentialed jobs were skipped."""
    body = [MARKER, f"## {title}", ""]
    if fork:
        body.append(FORK_NOTE)
        if not sections:
            sections = ["No model was trained: the change comes from a fork.\n"]
    used = sum(len(part) + 1 for part in body)
    reserve = 400 * len(previews) + (200 if previews else 0)  # every preview gets its summary
    texts = [s.replace(MARKER, "").rstrip() + "\n" for s in sections]
    for text in texts or ["No model was affected by this change.\n"]:
        fitted = _fit_section(text, limit - used - reserve)
        if fitted:
            body.append(fitted)
            used += len(fitted) + 1
    if previews:
        body += ["### Infrastructure", ""]
        used += len(body[-2]) + 2
        for index, path in enumerate(previews):
            left = len(previews) - index - 1
            room = min(PREVIEW_LIMIT, limit - used - 400 * left - 300)
            rendered = render_preview(path, room)
            body.append(rendered)
            used += len(rendered) + 1
    return "\n".join(body)
