"""Find the model, load it once, and say what its input must look like.

A model comes from an MLflow model folder (SageMaker mounts it at ``/opt/ml/model``), a
registry URI (``models:/penguins@champion``) or a local path. The raw scikit-learn estimator is
loaded, not the pyfunc wrapper: the server checks input itself, so MLflow's per-call schema
enforcement would only repeat that work on every request. Where ``serving.fast_path`` reproduces
the estimator exactly, requests are predicted through it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.datasets import ColumnSpec, ColumnType
from serving.fast_path import ColumnPredict, verified
from serving.schema import Columns, estimator_frame
from serving.settings import SAGEMAKER_MODEL_DIR

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger("serving.model")

REGISTRY_SCHEMES = ("models:/", "runs:/", "s3://", "mlflow-artifacts:/")

# MLflow signature types -> our column types, for a model that carries no mlops metadata.
_SIGNATURE_TYPES = {
    "double": ColumnType.FLOAT,
    "float": ColumnType.FLOAT,
    "long": ColumnType.INT,
    "integer": ColumnType.INT,
    "boolean": ColumnType.BOOL,
    "string": ColumnType.STRING,
    "datetime": ColumnType.DATETIME,
}


class ModelLoadError(Exception):
    """The model cannot be found or loaded; the message says where it was looked for."""


@dataclass(frozen=True)
class LoadedModel:
    """An estimator with everything the server needs to check input and describe output."""

    estimator: Any
    name: str
    task: str  # "classification" or "regression"
    columns: list[str]  # input columns, in the order the model was trained on
    schema: dict[str, ColumnSpec]
    source: str
    version: str = ""
    fast: ColumnPredict | None = None  # serving.fast_path, proven equal to estimator.predict

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if self.fast is not None:
            return self.fast({c: frame[c].to_numpy() for c in self.columns})
        return self.estimator.predict(frame)

    def predict_columns(self, data: Columns) -> np.ndarray:
        """Predictions for checked column arrays (``InputSchema.parse_columns``)."""
        if self.fast is not None:
            return self.fast(data)
        return self.estimator.predict(estimator_frame(data))

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in getattr(self.estimator, "classes_", [])]


def default_location() -> str:
    """Where SageMaker puts the model: $SM_MODEL_DIR, else /opt/ml/model."""
    return os.environ.get("SM_MODEL_DIR") or SAGEMAKER_MODEL_DIR


def resolve(uri: str | None, download_to: Path | None = None) -> Path:
    """A local MLflow model folder for ``uri``, downloading it from the registry if needed."""
    location = uri or default_location()
    if location.startswith("file://"):
        location = location.removeprefix("file://")
    if location.startswith(REGISTRY_SCHEMES):
        return _download(location, download_to)
    path = Path(location).expanduser()
    if not (path / "MLmodel").is_file():
        raise ModelLoadError(f"no MLflow model at {path} (no MLmodel file there)")
    return path.resolve()


def _download(uri: str, download_to: Path | None) -> Path:
    from pipelines.core.errors import MlopsError
    from pipelines.core.registry import connect
    from pipelines.core.settings import Settings

    try:
        connect(Settings())
        import mlflow

        target = download_to or Path(tempfile.mkdtemp(prefix="mlops-model-"))
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target))
    except MlopsError as exc:
        raise ModelLoadError(f"cannot reach the registry for {uri}: {exc.render()}") from exc
    except Exception as exc:
        raise ModelLoadError(f"cannot download {uri}: {exc}") from exc
    path = Path(local)
    if not (path / "MLmodel").is_file():
        raise ModelLoadError(f"{uri} is not an MLflow model (no MLmodel file in it)")
    return path


def load(path: Path, fast_path: bool = True) -> LoadedModel:
    """Load the estimator and its input schema from a local MLflow model folder."""
    # The registry is the trust boundary for pickled models (README, "Model format").
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    import mlflow.sklearn
    from mlflow.models import Model

    from pipelines.core import model_metadata

    for noisy in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        mlmodel = Model.load(str(path / "MLmodel"))
        estimator = mlflow.sklearn.load_model(str(path))
    except Exception as exc:
        raise ModelLoadError(f"cannot load the model at {path}: {exc}") from exc
    meta = model_metadata.read(mlmodel.metadata)
    if meta is not None:
        columns, schema = list(meta.features), dict(meta.input_schema)
        name, task = meta.model, meta.task
    else:
        columns, schema = _schema_from_signature(mlmodel, path)
        name = path.name
        task = "classification" if hasattr(estimator, "classes_") else "regression"
    version = ""
    registered = path / "registered_model_meta"
    if registered.is_file():
        import yaml

        found = (yaml.safe_load(registered.read_text()) or {}).get("model_version")
        version = "" if found is None else str(found)
    fast = verified(estimator, columns, schema, _example(path)) if fast_path else None
    return LoadedModel(estimator, name, task, columns, schema, str(path), version, fast)


def _example(path: Path) -> dict[str, list[Any]] | None:
    """The input example MLflow saved with the model, by column (probe rows for the fast path)."""
    try:
        saved = json.loads((path / "input_example.json").read_text())
        return {str(c): [row[i] for row in saved["data"]] for i, c in enumerate(saved["columns"])}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def _schema_from_signature(mlmodel: Any, path: Path) -> tuple[list[str], dict[str, ColumnSpec]]:
    signature = mlmodel.signature
    if signature is None or not signature.inputs.has_input_names():
        raise ModelLoadError(
            f"the model at {path} has neither mlops metadata nor a signature naming its columns"
        )
    schema: dict[str, ColumnSpec] = {}
    for spec in signature.inputs.inputs:
        kind = _SIGNATURE_TYPES.get(str(getattr(spec.type, "name", spec.type)), ColumnType.STRING)
        schema[spec.name] = ColumnSpec(type=kind, nullable=not spec.required)
    return list(schema), schema
