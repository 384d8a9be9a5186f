"""The training reference: the rows the monitored model version was actually trained on.

A version's run records the data fingerprint it was trained from and the row positions of its
split (``split.json``, see ``pipelines.stages.train``). When the dataset still has that
fingerprint, the reference is exactly those training rows. When there is no registered version,
or the data has changed since, the reference falls back to the training split of the dataset as
it is now, and says so, because a reference that silently differs from training would hide
drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.core.errors import MlopsError
from pipelines.core.tags import DATA_FINGERPRINT_TAG, MODEL_URI_TAG, OVERRIDES_TAG, SPLIT_ARTIFACT

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from pipelines.core.definitions import Model
    from pipelines.core.settings import Settings


@dataclass
class Reference:
    model: Model
    frame: pd.DataFrame  # the training rows: features and target
    source: str  # how the rows were chosen, for the report
    version: str | None = None
    run_id: str | None = None
    model_uri: str | None = None
    metrics: dict[str, float] | None = None  # the version's test metrics (concept drift)
    # The version's predictions on ``frame`` when they were frozen in a baseline
    # (monitoring.baseline); otherwise prediction drift loads the model from ``model_uri``.
    predictions: pd.Series | None = None
    overrides: dict[str, Any] | None = None  # the run's --set overrides of model.yaml


def monitored_version(
    client: MlflowClient | None, settings: Settings, name: str, env: str | None, version: str | None
) -> tuple[str | None, str]:
    """The version to monitor and why: explicit, pinned in ``env``, or the champion."""
    from pipelines.core.pins import load_environment, pinned
    from pipelines.core.registry import CHAMPION, version_by_alias

    if version:
        return version, f"version {version} (--version)"
    if env:
        pin = pinned(load_environment(settings.environments_dir, env), name)
        if pin is not None:
            return pin.version, f"version {pin.version} pinned in {env}"
        if client is None:
            return None, f"nothing pinned in {env}"
    if client is None:
        return None, "no registry"
    champion = version_by_alias(client, name, CHAMPION)
    if champion is not None:
        return str(champion.version), f"champion version {champion.version}"
    return None, f"no champion for {name}" + (f" and nothing pinned in {env}" if env else "")


def load_reference(
    settings: Settings,
    name: str,
    *,
    client: MlflowClient | None = None,
    env: str | None = None,
    version: str | None = None,
) -> Reference:
    """The reference of the monitored version, or of the dataset's split when there is none."""
    from pipelines.core.definitions import load_model
    from pipelines.core.registry import registry_errors
    from pipelines.stages.split import split_indices
    from pipelines.stages.validate import validate_for_model

    chosen, why = monitored_version(client, settings, name, env, version)
    if chosen is None or client is None:
        model = load_model(settings.models_dir, settings.data_dir, name)
        frame, _ = _validated(model, validate_for_model)
        train, _ = split_indices(model.definition, frame)
        return Reference(model, frame.iloc[train], f"training split of the dataset ({why})")
    with registry_errors():
        mv = client.get_model_version(name, chosen)
        run = client.get_run(mv.run_id) if mv.run_id else None
    if run is None:
        raise MlopsError(f"{name} version {chosen} has no training run to take a reference from")
    tags = run.data.tags
    overrides = json.loads(tags.get(OVERRIDES_TAG, "{}")) or None
    model = load_model(settings.models_dir, settings.data_dir, name, overrides)
    frame, now = _validated(model, validate_for_model)
    metrics = {k.removeprefix("test_"): v for k, v in run.data.metrics.items() if "test_" in k}
    common = {
        "version": chosen,
        "run_id": run.info.run_id,
        "model_uri": f"models:/{name}/{chosen}" if tags.get(MODEL_URI_TAG) else None,
        "metrics": metrics,
        "overrides": overrides,
    }
    trained_on = tags.get(DATA_FINGERPRINT_TAG)
    if trained_on != now:
        train, _ = split_indices(model.definition, frame)
        source = (
            f"training split of the current dataset: {why} was trained on {trained_on}, "
            f"the data is now {now}"
        )
        return Reference(model, frame.iloc[train], source, **common)
    with registry_errors():
        path = client.download_artifacts(run.info.run_id, SPLIT_ARTIFACT)
    with open(path, encoding="utf-8") as handle:
        rows = json.load(handle)["train"]
    return Reference(model, frame.iloc[rows], f"the {len(rows)} training rows of {why}", **common)


def _validated(model: Model, validate: Any) -> tuple[pd.DataFrame, str]:
    """The dataset's typed rows and the fingerprint of the bytes they were read from."""
    frame, report = validate(model)
    report.raise_if_failed(str(model.dataset.path))
    return frame, str(report.fingerprint)
