"""Training: validated data in, a fitted pipeline logged to an MLflow run with its lineage.

Three steps kept apart: ``prepare`` (validate, build, split), ``fit``, and the MLflow logging in
``train``; the tags and parameters a run carries are plain functions of the definition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from pipelines import __version__
from pipelines.core import model_metadata
from pipelines.core.errors import DefinitionError
from pipelines.core.estimators import build_pipeline
from pipelines.core.fingerprints import git_commit, model_fingerprints
from pipelines.core.registry import experiment_id, registry_errors
from pipelines.core.tags import (
    DATASET_DEFINITION_ARTIFACT,
    DATASET_TAG,
    GIT_COMMIT_TAG,
    MODEL_ARTIFACT,
    MODEL_DEFINITION_ARTIFACT,
    MODEL_TAG,
    MODEL_URI_TAG,
    OVERRIDES_TAG,
    OWNER_TAG,
    PIPELINE_VERSION_TAG,
    SPLIT_ARTIFACT,
    STAGE_DONE,
    TASK_TAG,
    TRAIN_STAGE_TAG,
    VALIDATION_ARTIFACT,
)
from pipelines.stages.candidate import Candidate
from pipelines.stages.split import split_indices
from pipelines.stages.validate import validate_for_model

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

    from pipelines.core.definitions import Model, ModelDefinition
    from pipelines.core.fingerprints import Fingerprints
    from pipelines.core.settings import Settings
    from pipelines.stages.validate import ValidationReport

# The logged model's serving environment. Listing it avoids MLflow's slow requirement
# inference (it imports the model in a subprocess) and pins what the server must install.
_RUNTIME_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "cloudpickle")


def runtime_requirements() -> list[str]:
    requirements = []
    for package in _RUNTIME_PACKAGES:
        try:
            requirements.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return requirements


@dataclass(frozen=True)
class TrainingSet:
    """What is about to be fitted: the unfitted pipeline and the rows of each side of the split."""

    frame: pd.DataFrame
    report: ValidationReport
    pipeline: Pipeline
    train_rows: np.ndarray
    test_rows: np.ndarray
    fingerprints: Fingerprints

    def x_train(self, definition: ModelDefinition) -> pd.DataFrame:
        return self.frame.iloc[self.train_rows][definition.features]

    def y_train(self, definition: ModelDefinition) -> pd.Series:
        return self.frame.iloc[self.train_rows][definition.target]


def prepare(
    model: Model, validated: tuple[pd.DataFrame, ValidationReport] | None = None
) -> TrainingSet:
    """Validate the data (refusing a dataset that fails), build the pipeline and split the rows."""

    frame, report = validated or validate_for_model(model)
    report.raise_if_failed(str(model.dataset.path))
    pipeline = build_pipeline(model)
    train_rows, test_rows = split_indices(model.definition, frame)
    prints = model_fingerprints(model, report.fingerprint)
    return TrainingSet(frame, report, pipeline, train_rows, test_rows, prints)


def fit(model: Model, training: TrainingSet) -> Pipeline:
    """Fit the pipeline on the training rows; an estimator that cannot fit is a definition error."""
    definition = model.definition
    try:
        return training.pipeline.fit(training.x_train(definition), training.y_train(definition))
    except (ValueError, TypeError) as exc:
        raise DefinitionError(
            f"{definition.estimator.path} failed to fit: {exc}",
            file=model.path,
            field="estimator",
        ) from exc


def run_tags(
    model: Model, training: TrainingSet, git_commit: str, overrides: dict[str, Any] | None
) -> dict[str, str]:
    """The lineage a training run carries: what it was trained from, by whom, with what."""
    definition = model.definition
    return {
        MODEL_TAG: model.name,
        DATASET_TAG: model.dataset.name,
        TASK_TAG: definition.task.value,
        GIT_COMMIT_TAG: git_commit,
        PIPELINE_VERSION_TAG: __version__,
        OWNER_TAG: definition.owner,
        OVERRIDES_TAG: json.dumps(overrides or {}, sort_keys=True),
        **training.fingerprints.as_tags(),
    }


def run_params(definition: ModelDefinition, training: TrainingSet) -> dict[str, str]:
    """The run's parameters (MLflow keeps at most 500 characters of each)."""
    params: dict[str, Any] = {
        "estimator": definition.estimator.path,
        **{f"estimator.{k}": v for k, v in definition.estimator.params.items()},
        "features": ",".join(definition.features),
        "target": definition.target,
        "split.seed": definition.split.seed,
        "split.test_fraction": definition.split.test_fraction,
        "split.time_column": definition.split.time_column or "",
        "rows.train": len(training.train_rows),
        "rows.test": len(training.test_rows),
    }
    return {key: str(value)[:500] for key, value in params.items()}


def train(
    client: MlflowClient,
    settings: Settings,
    model: Model,
    overrides: dict[str, Any] | None = None,
    validated: tuple[pd.DataFrame, ValidationReport] | None = None,
) -> Candidate:
    """Validate the data, fit the pipeline on the training rows and log it to a new run.

    Nothing is registered here: registration waits for the gates.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    training = prepare(model, validated)
    definition = model.definition
    tags = run_tags(model, training, git_commit(settings.root), overrides)
    with registry_errors():
        experiment = experiment_id(client, settings, model.name)
        run = mlflow.start_run(experiment_id=experiment, tags=tags)
    with registry_errors(), run:
        mlflow.log_params(run_params(definition, training))
        pipeline = fit(model, training)
        x_train = training.x_train(definition)
        signature = infer_signature(x_train, pipeline.predict(x_train.head(50)))
        info = mlflow.sklearn.log_model(
            pipeline,
            name=MODEL_ARTIFACT,
            # cloudpickle, not MLflow's skops default: skops needs every type trusted one by
            # one and gives no real protection, because MLflow reads that list from the model
            # itself. The registry is the trust boundary (README, "Model format").
            serialization_format="cloudpickle",
            signature=signature,
            input_example=x_train.head(3),
            pip_requirements=runtime_requirements(),
            metadata=model_metadata.build(model, training.report.fingerprint),
        )
        split = {"train": training.train_rows.tolist(), "test": training.test_rows.tolist()}
        mlflow.log_dict(split, SPLIT_ARTIFACT)
        mlflow.log_dict(training.report.as_dict(), VALIDATION_ARTIFACT)
        mlflow.log_text(model.path.read_text(encoding="utf-8"), MODEL_DEFINITION_ARTIFACT)
        dataset_definition = model.dataset.path.read_text(encoding="utf-8")
        mlflow.log_text(dataset_definition, DATASET_DEFINITION_ARTIFACT)
        mlflow.set_tags({MODEL_URI_TAG: info.model_uri, TRAIN_STAGE_TAG: STAGE_DONE})
    return Candidate(
        model=model,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        frame=training.frame,
        train_rows=training.train_rows,
        test_rows=training.test_rows,
        fingerprints=training.fingerprints,
        git_commit=tags[GIT_COMMIT_TAG],
        estimator=pipeline,
    )
