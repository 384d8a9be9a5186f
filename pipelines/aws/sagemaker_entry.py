"""The serving image's ``train`` program: a SageMaker training job in the project's own image.

SageMaker starts a training container as ``docker run IMAGE train`` ("How Amazon SageMaker AI
Runs Your Training Image", docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-
dockerfile.html), so the image ships this module as the ``train`` console script, next to
``serve``: one image, one lock, what is trained is what is served. The container contract
("How Amazon SageMaker AI Provides Training Information" and "... Signals Algorithm Success and
Failure", same guide) is:

- hyperparameters in ``/opt/ml/input/config/hyperparameters.json``, every value a string;
- each input channel downloaded to ``/opt/ml/input/data/<channel>/``;
- whatever is left in ``/opt/ml/model`` is archived as ``<output path>/<job>/output/model.tar.gz``;
- a failed job exits non-zero and writes why to ``/opt/ml/output/failure``, which SageMaker
  returns as the job's ``FailureReason``.

The program rebuilds a checkout from two channels (``definition``: model.yaml and dataset.yaml;
``train``: the data file), trains through ``pipelines.stages.train`` so the MLflow run has exactly
the tags, split and model that ``mlops train`` would log, and leaves that MLflow model folder in
``/opt/ml/model``, the layout the serving image expects there. The run is logged to the tracking
server in ``MLFLOW_TRACKING_URI`` (the job's environment), so the gates that follow read it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# Written into the model folder, so the submitter finds the run in model.tar.gz.
RUN_FILE = "mlops_training.json"
# SageMaker's layout is fixed at /opt/ml; only a run outside a container (the local stack's
# stand-in for the job) moves it, to a folder of its own.
ML_ROOT_ENV = "MLOPS_SAGEMAKER_ML_ROOT"
HYPERPARAMETERS_FILE = Path("input/config/hyperparameters.json")
FAILURE_FILE = Path("output/failure")
CHANNELS = ("definition", "train")
# SageMaker keeps the first 1024 characters of the failure file as FailureReason.
FAILURE_REASON_CHARS = 1024


class TrainingFailure(Exception):
    """Bad job input: written to the failure file, exit code 2 (bad input), like the CLI's."""

    exit_code = 2


def ml_root() -> Path:
    return Path(os.environ.get(ML_ROOT_ENV, "/opt/ml"))


def read_hyperparameters(root: Path) -> tuple[str, dict[str, Any]]:
    """The model name and its overrides, checked where they enter, naming file and field."""
    path = root / HYPERPARAMETERS_FILE
    try:
        hyper = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingFailure(f"{path}: missing (SageMaker writes it from the job)") from None
    except ValueError as exc:
        raise TrainingFailure(f"{path}: not JSON ({exc})") from None
    model = hyper.get("model") if isinstance(hyper, dict) else None
    if not isinstance(model, str) or not model:
        raise TrainingFailure(f"{path}: field `model` must name the model (a model.yaml's name)")
    try:
        overrides = json.loads(hyper.get("overrides") or "{}")
    except (TypeError, ValueError):
        overrides = None
    if not isinstance(overrides, dict):
        raise TrainingFailure(
            f"{path}: field `overrides` must be a JSON object of model.yaml overrides, as a string"
        )
    return model, overrides


def channel(root: Path, name: str) -> Path:
    folder = root / "input" / "data" / name
    if not folder.is_dir():
        raise TrainingFailure(f"{folder}: missing; the job needs an input channel named {name!r}")
    return folder


def build_checkout(model: str, definition: Path, data: Path, root: Path) -> Path:
    """A minimal checkout (models/, data/) from the channels, as the pipeline code expects."""
    import yaml

    model_yaml = definition / "model.yaml"
    dataset_yaml = definition / "dataset.yaml"
    for path in (model_yaml, dataset_yaml):
        if not path.is_file():
            raise TrainingFailure(f"{path}: missing from the definition channel")
    dataset = (yaml.safe_load(model_yaml.read_text(encoding="utf-8")) or {}).get("dataset")
    source = (yaml.safe_load(dataset_yaml.read_text(encoding="utf-8")) or {}).get("source", "")
    if not dataset or not source or "/" in source:
        raise TrainingFailure(
            f"{definition}: model.yaml needs `dataset` and dataset.yaml a file name as `source`"
        )
    (root / "models" / model).mkdir(parents=True)
    (root / "data" / dataset).mkdir(parents=True)
    shutil.copy(model_yaml, root / "models" / model / "model.yaml")
    shutil.copy(dataset_yaml, root / "data" / dataset / "dataset.yaml")
    if not (data / source).is_file():
        raise TrainingFailure(f"{data / source}: missing from the train channel")
    shutil.copy(data / source, root / "data" / dataset / source)
    return root


def train_in_layout(root: Path) -> dict[str, str]:
    """Train from ``root``'s channels into ``root/model``; the record names the MLflow run."""
    model, overrides = read_hyperparameters(root)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise TrainingFailure("MLFLOW_TRACKING_URI must name the tracking server (job Environment)")
    definition, data = (channel(root, name) for name in CHANNELS)

    import mlflow

    from pipelines.core.definitions import load_model
    from pipelines.core.registry import connect
    from pipelines.core.settings import Settings
    from pipelines.stages.train import train

    model_dir = root / "model"
    with tempfile.TemporaryDirectory(prefix="sm-checkout-") as tmp:
        checkout = build_checkout(model, definition, data, Path(tmp) / "checkout")
        settings = Settings(root=checkout, home=Path(tmp) / "state")
        client = connect(settings)
        loaded = load_model(settings.models_dir, settings.data_dir, model, overrides)
        candidate = train(client, settings, loaded, overrides or None)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=candidate.model_uri, dst_path=str(Path(tmp) / "model")
        )
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(local, model_dir, dirs_exist_ok=True)
    record = {"model": model, "run_id": candidate.run_id, "model_uri": candidate.model_uri}
    (model_dir / RUN_FILE).write_text(json.dumps(record), encoding="utf-8")
    return record


def write_failure(root: Path, reason: str) -> None:
    failure = root / FAILURE_FILE
    failure.parent.mkdir(parents=True, exist_ok=True)
    failure.write_text(reason[:FAILURE_REASON_CHARS], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``train``: exit 0 with the model in place, else non-zero with the failure file written."""
    from pipelines.core.errors import MlopsError

    root = ml_root()
    try:
        record = train_in_layout(root)
    except TrainingFailure as exc:
        reason, code = str(exc), exc.exit_code
    except MlopsError as exc:
        reason, code = exc.render(), int(exc.exit_code)
    except Exception as exc:  # any crash must still leave SageMaker a reason
        reason, code = f"{type(exc).__name__}: {exc}", 1
    else:
        print(json.dumps(record))
        return 0
    write_failure(root, reason)
    print(f"error: {reason}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
