"""Registration: a gated candidate becomes a model version with full lineage, or nothing does."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.core.errors import PromotionError, Rejected
from pipelines.core.registry import CHALLENGER, experiment_id, get_run, registry_errors
from pipelines.core.tags import (
    DATASET_TAG,
    FINGERPRINT_TAG,
    GATE_TAG_PREFIX,
    GATES_PASSED_TAG,
    GIT_COMMIT_TAG,
    METRIC_TAG_PREFIX,
    MODEL_TAG,
    MODEL_URI_TAG,
    OVERRIDES_TAG,
    OWNER_TAG,
    PIPELINE_VERSION_TAG,
    REGISTERED_VERSION_TAG,
    RUN_ID_TAG,
    STAGE_DONE,
    TRAIN_STAGE_TAG,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from pipelines.core.settings import Settings

_LINEAGE_PREFIXES = (
    FINGERPRINT_TAG,
    GIT_COMMIT_TAG,
    PIPELINE_VERSION_TAG,
    DATASET_TAG,
)


def lineage_tags(run: Run) -> dict[str, str]:
    tags = {k: v for k, v in run.data.tags.items() if k.startswith(_LINEAGE_PREFIXES)}
    tags |= {
        k: v for k, v in run.data.tags.items() if k.startswith((GATE_TAG_PREFIX, OVERRIDES_TAG))
    }
    tags |= {
        METRIC_TAG_PREFIX + k.removeprefix("test_"): f"{v:.6g}"
        for k, v in run.data.metrics.items()
        if k.startswith("test_") and math.isfinite(v)
    }
    tags[RUN_ID_TAG] = run.info.run_id
    return tags


def register(client: MlflowClient, settings: Settings, name: str, run_id: str | None) -> str:
    """Register the run's model as a new version with the ``challenger`` alias; return the version.

    Refuses a run whose gates did not pass. Registering the same run twice returns the version
    it already has. If any step after creating the version fails, the version is deleted.
    """
    run = get_run(client, name, run_id, settings)
    tags = run.data.tags
    if tags.get(REGISTERED_VERSION_TAG):
        return tags[REGISTERED_VERSION_TAG]
    if GATES_PASSED_TAG not in tags:
        raise PromotionError(
            f"run {run.info.run_id} has not been gated yet; run `mlops gate {name}`"
        )
    if tags[GATES_PASSED_TAG] != "true":
        raise Rejected(f"run {run.info.run_id} failed its gates; it cannot be registered")
    model_uri = tags[MODEL_URI_TAG]
    with registry_errors():
        try:
            client.get_registered_model(name)
        except Exception:  # MLflow reports a missing model with a generic exception
            client.create_registered_model(
                name,
                tags={MODEL_TAG: name, OWNER_TAG: tags.get(OWNER_TAG, "")},
                description=f"Managed by the MLOps template from models/{name}/model.yaml.",
            )
        version = client.create_model_version(
            name,
            source=model_uri,
            run_id=run.info.run_id,
            tags=lineage_tags(run),
            description=(
                f"Trained in run {run.info.run_id} from commit {tags.get(GIT_COMMIT_TAG)}."
            ),
            model_id=model_uri.removeprefix("models:/")
            if model_uri.startswith("models:/m-")
            else None,
        )
    try:
        with registry_errors():
            client.set_registered_model_alias(name, CHALLENGER, version.version)
            client.set_tag(run.info.run_id, REGISTERED_VERSION_TAG, str(version.version))
    except BaseException:
        _undo_registration(client, name, str(version.version))
        raise
    return str(version.version)


def _undo_registration(client: MlflowClient, name: str, version: str) -> None:
    # Best effort while the original error propagates.
    with contextlib.suppress(Exception):
        client.delete_model_version(name, version)


# How many runs from the same inputs are looked at: re-runs of one pull request, not history.
_GATED_CANDIDATES = 50


@dataclass(frozen=True)
class GatedRun:
    """What the registry holds for one model's inputs: the run to register, or why there is none.

    ``run_id`` is the newest run trained from exactly ``fingerprint`` whose gates passed (the
    run a pull request gated); ``None`` with ``reason`` saying plainly why not.
    """

    model: str
    fingerprint: str
    run_id: str | None
    git_commit: str | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.run_id:
            return f"registered from PR run {self.run_id} (gated on commit {self.git_commit})"
        return f"retrain: {self.reason}"


def find_gated_run(
    client: MlflowClient, settings: Settings, name: str, fingerprint: str
) -> GatedRun:
    """The run a pull request gated for these exact inputs, so a merge registers it (build once,
    promote many) instead of training again.

    Runs are matched on the combined fingerprint (``mlops.fingerprint``: definition, dataset
    definition, data and training code), which a squash or merge commit leaves unchanged while
    any change to what is trained changes it. A run that failed or never finished its gates is
    never chosen; among passed runs the newest wins.
    """
    with registry_errors():
        experiment = experiment_id(client, settings, name)
        runs = client.search_runs(
            [experiment],
            filter_string=(
                f"tags.`{MODEL_TAG}` = '{name}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'"
                f" and tags.`{TRAIN_STAGE_TAG}` = '{STAGE_DONE}'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=_GATED_CANDIDATES,
        )
    for run in runs:
        if run.data.tags.get(GATES_PASSED_TAG) == "true":
            return GatedRun(
                name, fingerprint, run.info.run_id, run.data.tags.get(GIT_COMMIT_TAG, "unknown")
            )
    if runs:
        newest = runs[0]
        verdict = (
            "failed its gates"
            if newest.data.tags.get(GATES_PASSED_TAG) == "false"
            else "was never gated"
        )
        reason = (
            f"{len(runs)} run(s) trained from these inputs, none passed its gates"
            f" (the newest, {newest.info.run_id}, {verdict})"
        )
    else:
        reason = (
            f"no run was trained and gated from these inputs ({fingerprint[:19]}...): the pull"
            " request was not gated against this registry, or what is trained changed after"
        )
    return GatedRun(name, fingerprint, None, reason=reason)
