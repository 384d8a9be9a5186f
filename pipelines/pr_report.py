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

from pipelines.errors import MlopsError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.settings import Settings

MARKER = "<!-- mlops-report -->"
PREVIEW_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters


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


def collect(client: MlflowClient, settings: Settings, model: str) -> ModelResult:
    """What the latest run of ``model`` recorded, and its champion's metrics for comparison."""
    import mlflow

    from pipelines.gates import GATES_ARTIFACT, PASSED_TAG
    from pipelines.registry import CHAMPION, get_run, registry_errors, version_by_alias
    from pipelines.run import report_dir

    run = get_run(client, model, None, settings)
    tags = run.data.tags
    gates: list[dict[str, Any]] = []
    if tags.get("mlops.stage.gate") == "done":
        with registry_errors():
            local = mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path=GATES_ARTIFACT
            )
        gates = json.loads(Path(local).read_text(encoding="utf-8")).get("results", [])
    champion = version_by_alias(client, model, CHAMPION)
    champion_metrics = {
        k.removeprefix("mlops.metric."): float(v)
        for k, v in (champion.tags if champion else {}).items()
        if k.startswith("mlops.metric.")
    }
    out = report_dir(settings, model)
    card = out / "model_card.md"
    return ModelResult(
        model=model,
        run_id=run.info.run_id,
        passed={"true": True, "false": False}.get(tags.get(PASSED_TAG, "")),
        metrics={
            k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")
        },
        champion=f"v{champion.version}" if champion else None,
        champion_metrics=champion_metrics,
        gates=gates,
        primary_metric=tags.get("mlops.primary_metric") or _primary(settings, model),
        card=card if card.is_file() else None,
        plots=sorted(p.name for p in out.glob("*.png")),
    )


def _primary(settings: Settings, model: str) -> str | None:
    from pipelines.definitions import load_definition, model_path

    try:
        return load_definition(model_path(settings.models_dir, model)).metric
    except MlopsError:
        return None


def _fmt(value: float | None) -> str:
    from pipelines.gates import format_value

    return format_value(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def _run_link() -> str | None:
    server, repo, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def render_model(result: ModelResult) -> str:
    """One model's section: verdict, metrics against the champion, gates, card and plots."""
    verdict = {True: "passed", False: "**rejected**", None: "not gated"}[result.passed]
    icon = {True: "✅", False: "❌", None: "⚠️"}[result.passed]
    lines = [f"### {icon} `{result.model}`: {verdict}", "", f"MLflow run `{result.run_id}`."]
    champion = result.champion or "none yet"
    lines += [
        "",
        f"| metric | candidate | champion ({champion}) | change |",
        "| --- | --- | --- | --- |",
    ]
    for name, value in result.metrics.items():
        old = result.champion_metrics.get(name)
        change = _fmt(value - old) if old is not None and math.isfinite(value) else "-"
        label = f"{name} (primary)" if name == result.primary_metric else name
        lines.append(
            f"| {label} | {_fmt(value)} | {_fmt(old) if old is not None else '-'} | {change} |"
        )
    champion_gate = next((g for g in result.gates if g.get("gate") == "champion"), None)
    if champion_gate:
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
            f"| {gate.get('gate')} | {verdict_text} | {_fmt(gate.get('measured'))} "
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
        lines += ["", "<details><summary>Model card</summary>", "", card, "", "</details>"]
    return "\n".join(lines) + "\n"


def render_preview(path: Path) -> str:
    """An infrastructure preview file (``pulumi preview`` output), folded and size-capped."""
    if not path.is_file():
        raise MlopsError("no such file", file=path, field="--infra-preview")
    text = path.read_text(encoding="utf-8", errors="replace")
    if len(text) > PREVIEW_LIMIT:
        text = text[:PREVIEW_LIMIT] + "\n... (cut; the full preview is in the workflow log)"
    fence = "````" if "```" in text else "```"
    return "\n".join(
        [
            f"<details><summary>Infrastructure preview: <code>{path.stem}</code></summary>",
            "",
            fence,
            text.rstrip(),
            fence,
            "",
            "</details>",
            "",
        ]
    )


def compose(sections: list[str], previews: list[Path], *, title: str = "MLOps report") -> str:
    """The whole comment body, starting with the marker the workflow looks for."""
    body = [MARKER, f"## {title}", ""]
    body += [s.rstrip() + "\n" for s in sections] or ["No model was affected by this change.\n"]
    if previews:
        body += ["### Infrastructure", ""] + [render_preview(p) for p in previews]
    return "\n".join(body)
