"""The monitoring baseline: a deployed version's reference, frozen where the scheduled job reads it.

``mlops monitor`` on a laptop or in CI builds the reference from the registry and the dataset
(``monitoring.reference``). The scheduled job in the cloud has neither: it runs in the serving
image, which holds no ``models/`` or ``data/`` and needs no registry credentials. So when a
version is deployed, ``mlops monitor-baseline`` freezes what the monitor needs, in one folder
(local or ``s3://``, by default ``conventions.baseline_prefix(model, version)`` in the artifact
bucket, where the job's role may read):

- ``models/<name>/model.yaml`` and ``data/<dataset>/dataset.yaml``: the definitions, exactly
  as the version was trained with them (its ``--set`` overrides are kept in ``baseline.json``);
- ``reference.parquet``: the reference rows (features and target), typed as validation typed
  them, with the version's predictions on them in ``PREDICTION_COLUMN`` when it has a model;
- ``baseline.json``: the version, its run, how the rows were chosen, its test metrics.

``load_baseline`` rebuilds the same ``Reference`` from that folder, so the job's verdict is the
one ``mlops monitor`` gives with the registry (a test compares the two).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    from monitoring.reference import Reference

FORMAT = 1
MANIFEST = "baseline.json"
ROWS = "reference.parquet"
PREDICTION_COLUMN = "__mlops_prediction__"
FILES = (MANIFEST, ROWS)


def write_baseline(reference: Reference, destination: str | Path) -> list[str]:
    """Freeze ``reference`` at ``destination`` (folder or ``s3://bucket/prefix``).

    Every file is written to a scratch folder first, and the manifest is uploaded last, so a
    failed publication never leaves a folder the job would read as complete.
    """
    from pipelines.core.datasets import DATASET_FILE
    from pipelines.core.definitions import MODEL_FILE

    model = reference.model
    frame = reference.frame.copy()
    if reference.predictions is not None:
        frame[PREDICTION_COLUMN] = list(reference.predictions)
    manifest = {
        "format": FORMAT,
        "model": model.definition.name,
        "dataset": model.dataset.name,
        "version": reference.version,
        "run_id": reference.run_id,
        "source": reference.source,
        "metrics": reference.metrics or {},
        "overrides": reference.overrides or {},
    }
    with tempfile.TemporaryDirectory(prefix="mlops-baseline-") as scratch:
        root = Path(scratch)
        definitions = {
            f"models/{model.definition.name}/{MODEL_FILE}": model.path,
            f"data/{model.dataset.name}/{DATASET_FILE}": model.dataset.path,
        }
        for relative, source in definitions.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, root / relative)
        frame.reset_index(drop=True).to_parquet(root / ROWS, index=False)
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        ordered = [*definitions, ROWS, MANIFEST]  # the manifest last: it marks the folder whole
        copy_out(root, ordered, str(destination))
    return ordered


def load_baseline(location: str | Path, name: str) -> Reference:
    """The reference frozen at ``location`` for model ``name``, checked before use."""
    import pandas as pd

    from monitoring.reference import Reference
    from pipelines.core.definitions import load_model

    with tempfile.TemporaryDirectory(prefix="mlops-baseline-") as scratch:
        root = copy_in(str(location), Path(scratch))
        manifest_path = root / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MlopsError(
                f"no baseline at {location}: {MANIFEST} is missing (publish one with "
                "`mlops monitor-baseline`)",
                field="--baseline",
            ) from None
        except ValueError as exc:
            raise MlopsError(f"{MANIFEST} is not JSON: {exc}", file=location) from None
        _check_manifest(manifest, name, location)
        model = load_model(root / "models", root / "data", name, manifest["overrides"] or None)
        try:
            frame = pd.read_parquet(root / ROWS)
        except (OSError, ValueError) as exc:
            raise MlopsError(f"cannot read {ROWS}: {exc}", file=location) from None
        missing = [c for c in model.definition.features if c not in frame.columns]
        if missing:
            raise MlopsError(f"{ROWS} lacks feature column(s) {', '.join(missing)}", file=location)
    predictions = frame.pop(PREDICTION_COLUMN) if PREDICTION_COLUMN in frame else None
    return Reference(
        model,
        frame,
        f"{manifest['source']} (baseline {location})",
        version=manifest["version"],
        run_id=manifest["run_id"],
        metrics=manifest["metrics"] or None,
        predictions=predictions,
        overrides=manifest["overrides"] or None,
    )


def _check_manifest(manifest: Any, name: str, location: str | Path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise MlopsError(
            f"{MANIFEST} has format {found!r}; this version reads format {FORMAT}",
            file=location,
            field="format",
        )
    if manifest.get("model") != name:
        raise MlopsError(
            f"the baseline is of model {manifest.get('model')!r}, not {name!r}",
            file=location,
            field="model",
        )


def split_s3(uri: str, field: str = "--baseline") -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise MlopsError(f"{uri!r} names no bucket", field=field)
    return bucket, prefix.strip("/")


def copy_out(root: Path, files: list[str], destination: str, kms_key: str | None = None) -> None:
    """``files`` (relative to ``root``) to a folder or an ``s3://`` prefix.

    ``kms_key``: put the objects with SSE-KMS under that key (as SageMaker puts the reports)
    rather than leave the key to the bucket's default.
    """
    if destination.startswith("s3://"):
        import boto3

        bucket, prefix = split_s3(destination)
        s3 = boto3.client("s3")
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else None
        for relative in files:
            key = f"{prefix}/{relative}" if prefix else relative
            s3.upload_file(str(root / relative), bucket, key, ExtraArgs=extra)
        return
    target = Path(destination)
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target / relative)


def copy_in(location: str, scratch: Path) -> Path:
    """A local folder holding the baseline: itself, or a download of the ``s3://`` prefix."""
    if not location.startswith("s3://"):
        return Path(location)
    import boto3

    bucket, prefix = split_s3(location)
    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
    for page in pages:
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) + 1 :]
            if not relative or ".." in Path(relative).parts:
                continue
            target = scratch / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
    return scratch
