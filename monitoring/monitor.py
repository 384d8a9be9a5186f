"""One monitoring run: reference, current window, drift per feature, prediction and concept drift.

This is what ``mlops monitor`` and the drift demo call; exporting, reporting and triggering a
retrain are separate steps that take the ``MonitorResult`` this returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.current import EVENT_ID, PREDICTION, ROW, TIME, Current, read_current
from monitoring.drift import DriftResult, Kind, check_methods, compare, detect, profile
from monitoring.reference import Reference, load_reference
from pipelines.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from pipelines.definitions import Model
    from pipelines.settings import Settings


@dataclass
class ConceptDrift:
    """The model's primary metric on labelled captures against its test metric."""

    metric: str
    reference: float | None
    current: float
    tolerance: float
    higher_is_better: bool
    rows: int
    over_time: dict[str, float] = field(default_factory=dict)

    @property
    def degraded(self) -> bool:
        if self.reference is None or math.isnan(self.current):
            return False
        change = self.current - self.reference
        return (-change if self.higher_is_better else change) > self.tolerance

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "reference": self.reference,
            "current": None if math.isnan(self.current) else self.current,
            "tolerance": self.tolerance,
            "rows": self.rows,
            "degraded": self.degraded,
            "over_time": self.over_time,
        }


@dataclass
class MonitorResult:
    model: str
    reference: Reference
    current: Current
    drift: DriftResult
    concept: ConceptDrift | None
    seconds: float
    at: datetime
    prediction_reference: Any = None  # what the prediction drift compared against

    @property
    def detected(self) -> bool:
        return self.drift.detected or bool(self.concept and self.concept.degraded)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "at": self.at.isoformat(),
            "drift_detected": self.detected,
            "reference": {
                "source": self.reference.source,
                "version": self.reference.version,
                "run_id": self.reference.run_id,
                "rows": len(self.reference.frame),
            },
            "current": {
                "location": self.current.location,
                "records": self.current.records,
                "rows": self.current.rows,
            },
            "data_drift": self.drift.as_dict(),
            "concept_drift": self.concept.as_dict() if self.concept else None,
            "seconds": round(self.seconds, 3),
        }


def feature_kinds(model: Model) -> dict[str, Kind]:
    columns = model.dataset.definition.columns
    return {
        f: "numeric" if columns[f].type.is_numeric else "categorical"
        for f in model.definition.features
    }


def run_monitor(
    settings: Settings,
    name: str,
    captures: str | Path,
    *,
    client: MlflowClient | None = None,
    env: str | None = None,
    version: str | None = None,
    labels: Path | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> MonitorResult:
    """Compare the captured window with the monitored version's training rows."""
    started = time.perf_counter()
    reference = load_reference(settings, name, client=client, env=env, version=version)
    model = reference.model
    definition = model.definition
    kinds = feature_kinds(model)
    drift_settings = definition.monitoring.drift
    check_methods(drift_settings, kinds, str(model.path))
    columns = model.dataset.definition.columns
    current = read_current(
        captures,
        list(definition.features),
        {f: columns[f] for f in definition.features},
        since=since,
        until=until,
    )
    try:
        profiles = {f: profile(f, kinds[f], reference.frame[f]) for f in definition.features}
    except ValueError as exc:  # a feature with no value at all in the training rows
        raise DataError(str(exc), file=model.dataset.path) from None
    result = detect(profiles, {f: current.frame[f] for f in definition.features}, drift_settings)
    result.prediction, predicted = _prediction_drift(reference, current, model)
    concept = _concept_drift(reference, current, model, labels) if labels else None
    return MonitorResult(
        name, reference, current, result, concept, time.perf_counter() - started,
        datetime.now(UTC), predicted,
    )  # fmt: skip


def _prediction_drift(reference: Reference, current: Current, model: Model) -> tuple[Any, Any]:
    """Predictions now against the version's predictions on its training rows (or the target).

    Returns the verdict (None without captured predictions) and the reference predictions.
    """
    definition = model.definition
    kind: Kind = "categorical" if definition.task.value == "classification" else "numeric"
    ref_values = reference.frame[definition.target]
    if reference.model_uri:
        from pipelines.candidate import load_sklearn_model

        estimator = load_sklearn_model(reference.model_uri)
        ref_values = estimator.predict(reference.frame[list(definition.features)])
    values = current.frame[PREDICTION].dropna()
    if values.empty:
        return None, ref_values
    reference_profile = profile("prediction", kind, ref_values)
    threshold = definition.monitoring.drift.threshold
    return compare(reference_profile, values, "auto", None, threshold), ref_values


def read_labels(path: Path, target: str) -> pd.DataFrame:
    """Ground truth that arrived later: ``event_id`` (and ``row`` for multi-row requests)."""
    import pandas as pd

    try:
        labels = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the labels: {exc}", file=path) from None
    missing = [c for c in ("event_id", target) if c not in labels.columns]
    if missing:
        raise DataError(
            f"the labels lack column(s) {', '.join(missing)} (need event_id, {target}, "
            "and optionally row)",
            file=path,
        )
    if "row" not in labels.columns:
        labels["row"] = "0"
    labels["row"] = labels["row"].astype(int)
    return labels[["event_id", "row", target]]


def _concept_drift(
    reference: Reference, current: Current, model: Model, labels_path: Path
) -> ConceptDrift:
    import numpy as np

    from pipelines.definitions import higher_is_better
    from pipelines.evaluate import Predictions, metric_value

    definition = model.definition
    target = definition.target
    labels = read_labels(labels_path, target)
    joined = current.frame.merge(
        labels, left_on=[EVENT_ID, ROW], right_on=["event_id", "row"], how="inner"
    )
    if joined.empty:
        raise DataError(
            "no label matches a captured event id; check the event_id column", file=labels_path
        )
    metric = definition.metric
    regression = definition.task.value == "regression"

    def score(frame: pd.DataFrame) -> float:
        truth, pred = frame[target].to_numpy(), frame[PREDICTION].to_numpy()
        if regression:
            truth, pred = truth.astype(float), pred.astype(float)
        else:
            truth, pred = truth.astype(str), pred.astype(str)
        return metric_value(metric, np.asarray(truth), Predictions(np.asarray(pred)))

    hours = joined[TIME].str.slice(0, 13)
    over_time = {
        f"{hour}:00Z": value
        for hour, group in joined.groupby(hours)
        if not math.isnan(value := score(group))
    }
    return ConceptDrift(
        metric=metric,
        reference=(reference.metrics or {}).get(metric),
        current=score(joined),
        tolerance=definition.gates.champion.margin,
        higher_is_better=higher_is_better(metric),
        rows=len(joined),
        over_time=over_time,
    )
