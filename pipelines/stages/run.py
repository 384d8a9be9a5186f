"""All stages for one model, in order: validate, train, evaluate, gate, register, promote.

This is what ``mlops run`` and the demo call, and what a CI job runs per affected model. Each
stage is timed, and the first one that rejects stops the run before anything is registered.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.definitions import load_model
from pipelines.core.errors import Rejected
from pipelines.core.registry import registry_errors
from pipelines.core.scoring import json_safe
from pipelines.core.tags import CARD_ARTIFACT_DIR, CARD_FILE
from pipelines.stages.card import render_card
from pipelines.stages.evaluate import evaluate
from pipelines.stages.gating import record, run_gates
from pipelines.stages.promote import check_new_version_targets, promote
from pipelines.stages.register import register
from pipelines.stages.train import train
from pipelines.stages.validate import validate_for_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.scoring import Evaluation, Predictions
    from pipelines.core.settings import Settings
    from pipelines.stages.candidate import Candidate
    from pipelines.stages.gates import GateReport
    from pipelines.stages.promote import Move

Progress = Callable[[str], None]


@dataclass
class Outcome:
    model: str
    primary_metric: str = ""
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    gates: GateReport | None = None
    version: str | None = None
    promotions: list[Move] = field(default_factory=list)
    card: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    rejected: str | None = None

    @contextmanager
    def timed(self, stage: str, progress: Progress) -> Iterator[None]:
        progress(f"{self.model}: {stage} ...")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = time.perf_counter() - start
            progress(f"{self.model}: {stage} done in {self.timings[stage]:.2f} s")


def report_dir(settings: Settings, model: str) -> Path:
    return settings.reports_dir / model


def evaluate_stage(candidate: Candidate, settings: Settings) -> tuple[Evaluation, Predictions]:

    out = report_dir(settings, candidate.name)
    shutil.rmtree(out, ignore_errors=True)  # the report describes one candidate, never a mix
    return evaluate(candidate, out)


def gate_stage(
    client: MlflowClient,
    settings: Settings,
    candidate: Candidate,
    evaluation: Evaluation,
    pred: Predictions,
) -> GateReport:
    """Run the gates, record them on the run, and write the model card and verdicts."""
    import mlflow

    report = run_gates(client, candidate, evaluation, pred)
    record(candidate, report)
    out = report_dir(settings, candidate.name)
    out.mkdir(parents=True, exist_ok=True)
    plots = sorted(p.name for p in out.glob("*.png"))
    (out / CARD_FILE).write_text(
        render_card(candidate, evaluation, report, plots), encoding="utf-8"
    )
    (out / "gates.json").write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")
    (out / "metrics.json").write_text(
        json.dumps(
            {"model": candidate.name, "run_id": candidate.run_id, **json_safe(evaluation.metrics)},
            indent=2,
        ),
        encoding="utf-8",
    )
    with registry_errors(), mlflow.start_run(run_id=candidate.run_id):
        mlflow.log_artifact(str(out / CARD_FILE), CARD_ARTIFACT_DIR)
    return report


def run_model(
    client: MlflowClient,
    settings: Settings,
    name: str,
    *,
    overrides: dict[str, Any] | None = None,
    promote_to: list[str] | None = None,
    pins_only: bool = False,
    progress: Progress = lambda _: None,
) -> Outcome:
    """Run every stage; a rejection is recorded in the outcome instead of raised."""
    check_new_version_targets(settings, promote_to or [])
    model = load_model(settings.models_dir, settings.data_dir, name, overrides)
    outcome = Outcome(name, primary_metric=model.definition.metric)
    try:
        with outcome.timed("validate", progress):
            frame, report = validate_for_model(model)
            report.raise_if_failed(str(model.dataset.path))
        with outcome.timed("train", progress):
            candidate = train(client, settings, model, overrides, validated=(frame, report))
            outcome.run_id = candidate.run_id
        with outcome.timed("evaluate", progress):
            evaluation, pred = evaluate_stage(candidate, settings)
            outcome.metrics = evaluation.metrics
        with outcome.timed("gate", progress):
            outcome.gates = gate_stage(client, settings, candidate, evaluation, pred)
            outcome.card = report_dir(settings, name) / "model_card.md"
        outcome.gates.raise_if_failed(name)
    except Rejected as exc:
        outcome.rejected = exc.message
        return outcome
    with outcome.timed("register", progress):
        outcome.version = register(client, settings, name, candidate.run_id)
    for environment in promote_to or []:
        with outcome.timed(f"promote:{environment}", progress):
            outcome.promotions.append(
                promote(client, settings, name, environment, outcome.version, pins_only=pins_only)
            )
    return outcome
