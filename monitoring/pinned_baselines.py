"""The baselines a stack's scheduled monitors read: one per model its pins deploy to the cloud.

``pulumi up`` starts, for every model pinned in the stack with ``deployment.target`` sagemaker or
kubernetes, a monitor job that reads ``s3://<bucket>/baselines/<model>/<version>/`` and has no
registry access (``monitoring.baseline``). So each deploy freezes the baselines of its pinned
versions, in two steps that need different credentials:

- ``freeze`` reads the registry (the registry role) and writes them to a local folder, in the
  bucket's layout;
- ``publish`` puts that folder in the stack's bucket (the stack's deploy role), each baseline's
  manifest last, so the job never reads a half-written one.

A baseline is immutable per version: one already published is left as it is, so a rerun of the
same deploy costs a listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.core.conventions import baseline_prefix
from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from monitoring.reference import Reference
    from pipelines.core.settings import Settings

# The deployment targets whose stacks run a scheduled monitor (infra/stack.py).
MONITORED_TARGETS = ("sagemaker", "kubernetes")


@dataclass(frozen=True)
class PinnedBaseline:
    model: str
    version: str

    @property
    def prefix(self) -> str:
        return baseline_prefix(self.model, self.version)


def monitored_pins(settings: Settings, env: str) -> list[PinnedBaseline]:
    """The (model, version) pairs ``env``'s pins deploy with a scheduled monitor, by name."""
    from pipelines.core.definitions import load_model
    from pipelines.core.pins import load_environment

    environment = load_environment(settings.environments_dir, env)
    found = []
    for name, pin in sorted(environment.models.items()):
        definition = load_model(settings.models_dir, settings.data_dir, name).definition
        if definition.deployment.target in MONITORED_TARGETS:
            found.append(PinnedBaseline(name, pin.version))
    return found


def freeze(settings: Settings, client: MlflowClient, env: str, folder: Path) -> list[str]:
    """Write the baseline of every monitored pin of ``env`` under ``folder``; the lines say what."""
    from monitoring.baseline import MANIFEST, write_baseline

    said = []
    for pinned in monitored_pins(settings, env):
        target = folder / pinned.prefix
        if (target / MANIFEST).is_file():
            said.append(f"{pinned.model} version {pinned.version}: already frozen at {target}")
            continue
        reference = frozen_reference(settings, client, pinned.model, version=pinned.version)
        write_baseline(reference, target)
        said.append(f"{pinned.model} version {pinned.version}: frozen at {target}")
    return said or [f"{env}: no model pinned with a scheduled monitor; nothing to freeze"]


def frozen_reference(
    settings: Settings,
    client: MlflowClient,
    model: str,
    *,
    env: str | None = None,
    version: str | None = None,
) -> Reference:
    """A registered version's reference, with its predictions on it: what a baseline holds."""
    from monitoring.reference import load_reference
    from pipelines.core.registry import load_sklearn_model

    reference = load_reference(settings, model, client=client, env=env, version=version)
    if reference.version is None:
        raise MlopsError(
            f"no registered version of {model} to freeze ({reference.source})",
            field="--version" if version else "--env",
        )
    if reference.model_uri:
        import pandas as pd

        features = list(reference.model.definition.features)
        estimator = load_sklearn_model(reference.model_uri)
        predicted = estimator.predict(reference.frame[features])
        reference.predictions = pd.Series(predicted, index=reference.frame.index)
    return reference


def publish(settings: Settings, env: str, folder: Path, bucket: str) -> list[str]:
    """Put the baselines ``freeze`` wrote for ``env``'s pins in ``s3://bucket``, manifest last.

    Every monitored pin must have been frozen: a missing one would leave its monitor job
    without a baseline, so nothing is put and the error names it.
    """
    import boto3

    from monitoring.baseline import FILES, MANIFEST, copy_out

    pins = monitored_pins(settings, env)
    missing = [p for p in pins if not (folder / p.prefix / MANIFEST).is_file()]
    if missing:
        names = ", ".join(f"{p.model} version {p.version}" for p in missing)
        raise MlopsError(f"no frozen baseline for {names} (run with --freeze first)", file=folder)
    s3 = boto3.client("s3")
    said = []
    for pinned in pins:
        manifest_key = f"{pinned.prefix}/{MANIFEST}"
        if _exists(s3, bucket, manifest_key):
            said.append(f"{pinned.model} version {pinned.version}: already in s3://{bucket}")
            continue
        root = folder / pinned.prefix
        files = sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.name not in FILES
        )
        rows = [f for f in FILES if f != MANIFEST]
        copy_out(root, [*files, *rows, MANIFEST], f"s3://{bucket}/{pinned.prefix}")
        said.append(f"{pinned.model} version {pinned.version}: published to s3://{bucket}")
    return said or [f"{env}: no model pinned with a scheduled monitor; nothing to publish"]


def _exists(s3: object, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
