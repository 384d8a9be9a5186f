"""The candidate: one trained model version on its way through evaluation, gates and registry.

Stages hand work to each other through the MLflow run, never through local files, so that
``mlops train``, ``evaluate``, ``gate`` and ``register`` can run as separate CI jobs. A candidate
is rebuilt from a run by re-reading the data (checked against the fingerprint the run recorded)
and the held-out row positions the run logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.core.definitions import load_model
from pipelines.core.errors import DefinitionError, RegistryError
from pipelines.core.fingerprints import model_fingerprints
from pipelines.core.registry import get_run, load_sklearn_model, registry_errors
from pipelines.core.tags import (
    DATA_FINGERPRINT_TAG,
    DEFINITION_FINGERPRINT_TAG,
    GIT_COMMIT_TAG,
    MODEL_URI_TAG,
    OVERRIDES_TAG,
    SPLIT_ARTIFACT,
)
from pipelines.stages.validate import validate_for_model

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from pipelines.core.definitions import Model
    from pipelines.core.fingerprints import Fingerprints
    from pipelines.core.settings import Settings


@dataclass
class Candidate:
    model: Model
    run_id: str
    model_uri: str
    frame: pd.DataFrame
    train_rows: np.ndarray
    test_rows: np.ndarray
    fingerprints: Fingerprints
    git_commit: str = "unknown"
    estimator: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def test_frame(self) -> pd.DataFrame:
        return self.frame.iloc[self.test_rows]

    @property
    def x_test(self) -> pd.DataFrame:
        return self.test_frame[self.model.definition.features]

    @property
    def y_test(self) -> pd.Series:
        return self.test_frame[self.model.definition.target]

    def fitted(self) -> Any:
        if self.estimator is None:
            self.estimator = load_sklearn_model(self.model_uri)
        return self.estimator


def load_candidate(
    client: MlflowClient, settings: Settings, name: str, run_id: str | None
) -> Candidate:
    """Rebuild the candidate trained in ``run_id`` (default: the model's latest training run)."""
    import numpy as np

    run = get_run(client, name, run_id, settings)
    tags = run.data.tags
    overrides = json.loads(tags.get(OVERRIDES_TAG, "{}"))
    model = load_model(settings.models_dir, settings.data_dir, name, overrides or None)
    prints = model_fingerprints(model)
    trained_with = tags.get(DEFINITION_FINGERPRINT_TAG)
    if trained_with != prints.definition:
        raise DefinitionError(
            f"the definition changed since run {run.info.run_id} was trained; train again",
            file=model.path,
        )
    frame, report = validate_for_model(model)
    report.raise_if_failed(str(model.dataset.path))
    if report.fingerprint != tags.get(DATA_FINGERPRINT_TAG):
        raise DefinitionError(
            f"the data changed since run {run.info.run_id} was trained "
            f"({tags.get(DATA_FINGERPRINT_TAG)} then, {report.fingerprint} now); train again",
            file=model.dataset.path,
        )
    with registry_errors():
        split = client.download_artifacts(run.info.run_id, SPLIT_ARTIFACT)
    with open(split, encoding="utf-8") as handle:
        rows = json.load(handle)
    if MODEL_URI_TAG not in tags:
        raise RegistryError(f"run {run.info.run_id} has no logged model")
    return Candidate(
        model=model,
        run_id=run.info.run_id,
        model_uri=tags[MODEL_URI_TAG],
        frame=frame,
        train_rows=np.asarray(rows["train"], dtype=int),
        test_rows=np.asarray(rows["test"], dtype=int),
        fingerprints=model_fingerprints(model, report.fingerprint),
        git_commit=tags.get(GIT_COMMIT_TAG, "unknown"),
    )
