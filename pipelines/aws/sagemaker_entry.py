"""SageMaker script-mode entry point: the same training code, in a training job's layout.

SageMaker's prebuilt scikit-learn image runs ``python sagemaker_entry.py --model NAME ...``
(hyperparameters become arguments) with the input channels under ``SM_CHANNEL_<NAME>``, and
archives whatever is left in ``SM_MODEL_DIR`` as ``model.tar.gz``. This script rebuilds a
checkout from two channels (``definition``: model.yaml and dataset.yaml; ``train``: the data
file), trains through ``pipelines.stages.train`` so the MLflow run has exactly the tags, split and
model that ``mlops train`` would log, and writes that MLflow model folder to ``SM_MODEL_DIR``,
which is the layout the serving image expects at ``/opt/ml/model``.

The run is logged to the tracking server in ``MLFLOW_TRACKING_URI`` (passed as the job's
environment), so the gates that follow read the same run and model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

RUN_FILE = "mlops_training.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sagemaker_entry", description=__doc__)
    parser.add_argument("--model", required=True, help="Model name (its model.yaml's name).")
    parser.add_argument("--overrides", default="{}", help="JSON object of model.yaml overrides.")
    # SageMaker may add hyperparameters of its own (sagemaker_program ...): ignore them.
    args, _ = parser.parse_known_args(argv)
    return args


def _channel(name: str) -> Path:
    value = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    if not value or not Path(value).is_dir():
        raise SystemExit(f"error: SM_CHANNEL_{name.upper()} is not set to a folder")
    return Path(value)


def build_checkout(model: str, definition: Path, data: Path, root: Path) -> Path:
    """A minimal checkout (models/, data/) from the channels, as the pipeline code expects."""
    import yaml

    model_yaml = definition / "model.yaml"
    dataset_yaml = definition / "dataset.yaml"
    for path in (model_yaml, dataset_yaml):
        if not path.is_file():
            raise SystemExit(f"error: the definition channel has no {path.name}")
    dataset = (yaml.safe_load(model_yaml.read_text(encoding="utf-8")) or {}).get("dataset")
    source = (yaml.safe_load(dataset_yaml.read_text(encoding="utf-8")) or {}).get("source", "")
    if not dataset or not source or "/" in source:
        raise SystemExit("error: model.yaml needs `dataset` and dataset.yaml a local `source`")
    (root / "models" / model).mkdir(parents=True)
    (root / "data" / dataset).mkdir(parents=True)
    shutil.copy(model_yaml, root / "models" / model / "model.yaml")
    shutil.copy(dataset_yaml, root / "data" / dataset / "dataset.yaml")
    if not (data / source).is_file():
        raise SystemExit(f"error: the train channel has no {source}")
    shutil.copy(data / source, root / "data" / dataset / source)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        print("error: MLFLOW_TRACKING_URI must name the tracking server", file=sys.stderr)
        return 2
    try:
        overrides = json.loads(args.overrides)
    except ValueError as exc:
        print(f"error: --overrides is not JSON ({exc})", file=sys.stderr)
        return 2

    import mlflow

    from pipelines.core.definitions import load_model
    from pipelines.core.errors import MlopsError
    from pipelines.core.registry import connect
    from pipelines.core.settings import Settings
    from pipelines.stages.train import train

    with tempfile.TemporaryDirectory(prefix="sm-checkout-") as tmp:
        root = build_checkout(args.model, _channel("definition"), _channel("train"), Path(tmp))
        settings = Settings(root=root, home=Path(tmp) / "state")
        try:
            client = connect(settings)
            loaded = load_model(settings.models_dir, settings.data_dir, args.model, overrides)
            candidate = train(client, settings, loaded, overrides or None)
        except MlopsError as exc:
            print(f"error: {exc.render()}", file=sys.stderr)
            return int(exc.exit_code)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=candidate.model_uri, dst_path=str(Path(tmp) / "model")
        )
        model_dir.mkdir(parents=True, exist_ok=True)
        for item in Path(local).iterdir():
            target = model_dir / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copy(item, target)
    record = {"model": args.model, "run_id": candidate.run_id, "model_uri": candidate.model_uri}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RUN_FILE).write_text(json.dumps(record), encoding="utf-8")
    (model_dir / RUN_FILE).write_text(json.dumps(record), encoding="utf-8")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
