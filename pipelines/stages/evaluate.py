"""Evaluation on the held-out rows: the task's standard metrics, overall and per group."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.core.registry import registry_errors
from pipelines.core.scoring import Evaluation, Predictions, compute_metrics, json_safe, predict
from pipelines.core.tags import (
    CARD_ARTIFACT_DIR,
    EVALUATE_STAGE_TAG,
    EVALUATION_ARTIFACT,
    STAGE_DONE,
)
from pipelines.stages.plots import write_plots

if TYPE_CHECKING:
    from pipelines.stages.candidate import Candidate


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

    task = candidate.model.definition.task.value
    pred = predict(candidate.fitted(), candidate.x_test, task)
    evaluation = evaluate_predictions(candidate, pred)
    with registry_errors(), mlflow.start_run(run_id=candidate.run_id):
        finite = {f"test_{k}": v for k, v in evaluation.metrics.items() if math.isfinite(v)}
        mlflow.log_metrics(finite)
        mlflow.log_dict(json_safe(evaluation.as_dict()), EVALUATION_ARTIFACT)
        for plot in write_plots(candidate, pred, evaluation, report_dir):
            mlflow.log_artifact(str(plot), CARD_ARTIFACT_DIR)
        mlflow.set_tag(EVALUATE_STAGE_TAG, STAGE_DONE)
    return evaluation, pred
