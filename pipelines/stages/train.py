"""Training: validated data in, a fitted pipeline logged to an MLflow run with its lineage."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from pipelines import __version__
from pipelines.core import model_metadata
from pipelines.core.errors import DefinitionError
from pipelines.core.registry import experiment_id, registry_errors
from pipelines.core.tags import (
    DATASET_TAG,
    GIT_COMMIT_TAG,
    MODEL_TAG,
    MODEL_URI_TAG,
    OVERRIDES_TAG,
    OWNER_TAG,
    PIPELINE_VERSION_TAG,
    SPLIT_ARTIFACT,
    STAGE_DONE,
    TASK_TAG,
    TRAIN_STAGE_TAG,
)
from pipelines.stages.candidate import Candidate

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from pipelines.core.definitions import Model
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


def train(
    client: MlflowClient,
    settings: Settings,
    model: Model,
    overrides: dict[str, Any] | None = None,
    validated: tuple[pd.DataFrame, ValidationReport] | None = None,
) -> Candidate:
    """Validate the data, fit the pipeline on the training rows and log it.

    Nothing is registered here: registration waits for the gates.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from pipelines.core.estimators import build_pipeline
    from pipelines.core.fingerprints import git_commit, model_fingerprints
    from pipelines.stages.split import split_indices
    from pipelines.stages.validate import validate_for_model

    frame, report = validated or validate_for_model(model)
    report.raise_if_failed(str(model.dataset.path))
    definition = model.definition
    pipeline = build_pipeline(model)
    train_rows, test_rows = split_indices(definition, frame)
    x_train = frame.iloc[train_rows][definition.features]
    y_train = frame.iloc[train_rows][definition.target]
    prints = model_fingerprints(model, report.fingerprint)

    tags = {
        MODEL_TAG: model.name,
        DATASET_TAG: model.dataset.name,
        TASK_TAG: definition.task.value,
        GIT_COMMIT_TAG: git_commit(settings.root),
        PIPELINE_VERSION_TAG: __version__,
        OWNER_TAG: definition.owner,
        OVERRIDES_TAG: json.dumps(overrides or {}, sort_keys=True),
        **prints.as_tags(),
    }
    params = {
        "estimator": definition.estimator.path,
        **{f"estimator.{k}": v for k, v in definition.estimator.params.items()},
        "features": ",".join(definition.features),
        "target": definition.target,
        "split.seed": definition.split.seed,
        "split.test_fraction": definition.split.test_fraction,
        "split.time_column": definition.split.time_column or "",
        "rows.train": len(train_rows),
        "rows.test": len(test_rows),
    }
    with registry_errors():
        experiment = experiment_id(client, settings, model.name)
        run = mlflow.start_run(experiment_id=experiment, tags=tags)
    with registry_errors(), run:
        mlflow.log_params({key: str(value)[:500] for key, value in params.items()})
        try:
            pipeline.fit(x_train, y_train)
        except (ValueError, TypeError) as exc:
            raise DefinitionError(
                f"{definition.estimator.path} failed to fit: {exc}",
                file=model.path,
                field="estimator",
            ) from exc
        signature = infer_signature(x_train, pipeline.predict(x_train.head(50)))
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            # cloudpickle, not MLflow's skops default: skops needs every type trusted one by
            # one and gives no real protection, because MLflow reads that list from the model
            # itself. The registry is the trust boundary (README, "Model format").
            serialization_format="cloudpickle",
            signature=signature,
            input_example=x_train.head(3),
            pip_requirements=runtime_requirements(),
            metadata=model_metadata.build(model, report.fingerprint),
        )
        mlflow.log_dict({"train": train_rows.tolist(), "test": test_rows.tolist()}, SPLIT_ARTIFACT)
        mlflow.log_dict(report.as_dict(), "validation.json")
        mlflow.log_text(model.path.read_text(encoding="utf-8"), "definition/model.yaml")
        mlflow.log_text(model.dataset.path.read_text(encoding="utf-8"), "definition/dataset.yaml")
        mlflow.set_tags({MODEL_URI_TAG: info.model_uri, TRAIN_STAGE_TAG: STAGE_DONE})
    return Candidate(
        model=model,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        frame=frame,
        train_rows=train_rows,
        test_rows=test_rows,
        fingerprints=prints,
        git_commit=tags[GIT_COMMIT_TAG],
        estimator=pipeline,
    )
