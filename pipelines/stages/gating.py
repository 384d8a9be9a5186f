"""Running the gates against the registry: the I/O around the pure judging in ``gates``.

Fetches the current champion and scores it on the candidate's held-out rows, downloads the
model artifact for the size gate, hands everything to the gates, and records the verdicts on
the candidate's run (``register`` refuses a run without a recorded pass).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.core.registry import (
    CHAMPION,
    load_sklearn_model,
    registry_errors,
    version_by_alias,
)
from pipelines.core.scoring import predict
from pipelines.core.tags import (
    CHAMPION_VERSION_TAG,
    GATE_STAGE_TAG,
    GATES_ARTIFACT,
    GATES_PASSED_TAG,
    STAGE_DONE,
    TASK_TAG,
    gate_tag,
)
from pipelines.stages.gates import (
    GateReport,
    champion_gate,
    fairness_gate,
    latency_gate,
    size_gate,
    threshold_gates,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.scoring import Evaluation, Predictions
    from pipelines.stages.candidate import Candidate


def champion_predictions(
    client: MlflowClient, candidate: Candidate
) -> tuple[Predictions | None, str | None, str]:
    """The current champion scored on the candidate's held-out rows, or why there is none."""
    from mlflow.models import get_model_info

    champion = version_by_alias(client, candidate.name, CHAMPION)
    if champion is None:
        return None, None, "no champion yet: this candidate would be the first"
    label = f"v{champion.version}"
    uri = f"models:/{candidate.name}/{champion.version}"
    definition = candidate.model.definition
    with registry_errors():
        run_tags = client.get_run(champion.run_id).data.tags if champion.run_id else {}
        info = get_model_info(uri)
    if run_tags.get(TASK_TAG, definition.task.value) != definition.task.value:
        return None, label, f"champion {label} solves a different task; not comparable"
    inputs = info.signature.inputs.input_names() if info.signature else definition.features
    missing = [c for c in inputs if c not in candidate.test_frame.columns]
    if missing:
        return (
            None,
            label,
            f"champion {label} needs columns the data lacks ({', '.join(map(str, missing))})",
        )
    estimator = load_sklearn_model(uri)
    pred = predict(estimator, candidate.test_frame[list(inputs)], definition.task.value)
    return pred, label, ""


def run_gates(
    client: MlflowClient, candidate: Candidate, evaluation: Evaluation, pred: Predictions
) -> GateReport:
    """Run every gate the definition declares, in a fixed order."""
    import mlflow

    definition = candidate.model.definition
    gates = definition.gates
    report = GateReport(threshold_gates(definition, evaluation.metrics))
    champion, label, why = (None, None, "disabled")
    if gates.champion.enabled:
        champion, label, why = champion_predictions(client, candidate)
    report.champion_version = label
    report.results.append(
        champion_gate(
            gates.champion,
            definition.champion_metric,
            candidate.y_test.to_numpy(),
            pred,
            champion,
            label,
            why,
        )
    )
    if gates.fairness:
        report.results.append(fairness_gate(gates.fairness, evaluation))
    if gates.latency:
        report.results.append(latency_gate(gates.latency, candidate.fitted(), candidate.x_test))
    if gates.size:
        with registry_errors():
            local = mlflow.artifacts.download_artifacts(candidate.model_uri)
        report.results.append(size_gate(gates.size, Path(local)))
    return report


def record(candidate: Candidate, report: GateReport) -> None:
    """Log the verdicts to the candidate's run; ``register`` refuses a run without a pass."""
    import mlflow

    with registry_errors(), mlflow.start_run(run_id=candidate.run_id):
        mlflow.log_dict(report.as_dict(), GATES_ARTIFACT)
        tags = {gate_tag(r.gate): r.verdict for r in report.results}
        tags[GATES_PASSED_TAG] = "true" if report.passed else "false"
        if report.champion_version:
            tags[CHAMPION_VERSION_TAG] = report.champion_version
        mlflow.set_tags(tags)
        mlflow.set_tag(GATE_STAGE_TAG, STAGE_DONE)
