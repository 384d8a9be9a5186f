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
from monitoring.drift import DriftResult, compare, detect, profile
from monitoring.reference import Reference, load_reference
from pipelines.core.drift_rules import Kind, check_definition, definition_kinds
from pipelines.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from pipelines.core.definitions import Model
    from pipelines.core.settings import Settings


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
    note: str | None = None  # why the metric differs from the model's primary metric

    @property
    def degraded(self) -> bool:
        """Worse than at training by more than the tolerance. ``_concept_drift`` refuses a
        NaN score or a missing reference, so an unjudged window never reads as "not degraded"."""
        if self.reference is None or math.isnan(self.current):
            raise ValueError("concept drift without a score cannot be judged")
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
            "note": self.note,
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
                "skipped_records": self.current.skipped,
                "skipped_examples": self.current.skipped_examples,
            },
            "data_drift": self.drift.as_dict(),
            "concept_drift": self.concept.as_dict() if self.concept else None,
            "seconds": round(self.seconds, 3),
        }


def feature_kinds(model: Model) -> dict[str, Kind]:
    """numeric (int, float) or categorical (string, category, bool: a bool is two labels,
    which ``auto`` tests with the z-test on a small reference, as Evidently does)."""
    return definition_kinds(model.definition, model.dataset)


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
    endpoint: str | None = None,
    reference: Reference | None = None,
) -> MonitorResult:
    """Compare the captured window with the monitored version's training rows.

    ``endpoint`` (default: the model's name, as the server names its capture folder) scopes a
    capture destination that holds several endpoints' folders to this model's. ``reference``
    (a frozen baseline, ``monitoring.baseline``) replaces the registry's.
    """
    started = time.perf_counter()
    if reference is None:
        reference = load_reference(settings, name, client=client, env=env, version=version)
    model = reference.model
    definition = model.definition
    kinds = feature_kinds(model)
    drift_settings = definition.monitoring.drift
    check_definition(definition, model.dataset, str(model.path))
    columns = model.dataset.definition.columns
    current = read_current(
        captures,
        list(definition.features),
        {f: columns[f] for f in definition.features},
        since=since,
        until=until,
        endpoint=endpoint or name,
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
    if reference.predictions is not None:
        ref_values = reference.predictions
    elif reference.model_uri:
        from pipelines.core.registry import load_sklearn_model

        estimator = load_sklearn_model(reference.model_uri)
        ref_values = estimator.predict(reference.frame[list(definition.features)])
    values = current.frame[PREDICTION].dropna()
    if values.empty:
        return None, ref_values
    reference_profile = profile("prediction", kind, ref_values)
    threshold = definition.monitoring.drift.threshold
    return compare(reference_profile, values, "auto", None, threshold), ref_values


# Metrics that need predicted probabilities, which the server's responses (labels) lack.
PROBABILITY_METRICS = frozenset({"log_loss", "roc_auc"})


def read_labels(path: Path, target: str, numeric: bool = False) -> pd.DataFrame:
    """Ground truth that arrived later: ``event_id`` (and ``row`` for multi-row requests).

    Every value is checked before use: a bad ``row`` (not a whole number >= 0), an empty
    ``event_id`` or target, or a non-number target of a regression is bad input naming the
    file, the column and the line (the header is line 1).
    """
    import pandas as pd

    try:
        labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
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
    for column in ("event_id", target, "row"):
        labels[column] = labels[column].str.strip()
        empty = labels.index[labels[column] == ""]
        if len(empty):
            raise DataError(f"empty value on line {empty[0] + 2}", file=path, field=column)
    rows = pd.to_numeric(labels["row"], errors="coerce")
    bad = labels.index[rows.isna() | (rows < 0) | (rows % 1 != 0)]
    if len(bad):
        value = labels.loc[bad[0], "row"]
        raise DataError(
            f"line {bad[0] + 2}: {value!r} is not a row number (0, 1, ...)", file=path, field="row"
        )
    labels["row"] = rows.astype("int64")
    if numeric:
        values = pd.to_numeric(labels[target], errors="coerce")
        bad = labels.index[values.isna()]
        if len(bad):
            value = labels.loc[bad[0], target]
            raise DataError(
                f"line {bad[0] + 2}: {value!r} is not a number", file=path, field=target
            )
        labels[target] = values.astype("float64")
    return labels[["event_id", "row", target]]


def _concept_drift(
    reference: Reference, current: Current, model: Model, labels_path: Path
) -> ConceptDrift:
    """The primary metric on the labelled captured rows against the version's test metric.

    A probability metric (log_loss, roc_auc) cannot be computed from captured labels, so the
    task's default label metric is used instead and the report says so. A score that is
    undefined on these rows (NaN) or a version without that test metric cannot be judged:
    bad input (exit 2), never "not degraded".
    """
    import numpy as np

    from pipelines.core.definitions import higher_is_better
    from pipelines.core.metric_catalog import DEFAULT_PRIMARY
    from pipelines.core.scoring import Predictions, metric_value

    definition = model.definition
    target = definition.target
    regression = definition.task.value == "regression"
    labels = read_labels(labels_path, target, numeric=regression)
    joined = current.frame.merge(
        labels, left_on=[EVENT_ID, ROW], right_on=["event_id", "row"], how="inner"
    )
    joined = joined[joined[PREDICTION].notna()]
    if joined.empty:
        raise DataError(
            "no label matches a captured event id (and row) with a captured prediction; check "
            "the event_id column",
            file=labels_path,
        )
    metric, note = definition.metric, None
    if metric in PROBABILITY_METRICS:
        metric = DEFAULT_PRIMARY[definition.task.value]
        note = (
            f"the primary metric {definition.metric} needs predicted probabilities, which the "
            f"captured responses do not carry; concept drift is judged on {metric}"
        )

    def score(frame: pd.DataFrame) -> float:
        truth, pred = frame[target].to_numpy(), frame[PREDICTION].to_numpy()
        if regression:
            truth = truth.astype(float)
            pred = pd_numeric(pred)
        else:
            truth, pred = truth.astype(str), pred.astype(str)
        return metric_value(metric, np.asarray(truth), Predictions(np.asarray(pred)))

    hours = joined[TIME].str.slice(0, 13)
    over_time = {
        f"{hour}:00Z": value
        for hour, group in joined.groupby(hours)
        if not math.isnan(value := score(group))
    }
    current_score = score(joined)
    if math.isnan(current_score):
        raise DataError(
            f"{metric} is undefined on the {len(joined)} labelled rows (one class, or constant "
            "values?); concept drift cannot be judged",
            file=labels_path,
        )
    reference_score = (reference.metrics or {}).get(metric)
    if reference_score is None or math.isnan(reference_score):
        raise DataError(
            f"the monitored version has no test {metric} to compare the labelled rows with "
            f"({reference.source}); concept drift needs a registered version",
            file=labels_path,
        )
    return ConceptDrift(
        metric=metric,
        reference=reference_score,
        current=current_score,
        tolerance=definition.gates.champion.margin,
        higher_is_better=higher_is_better(metric),
        rows=len(joined),
        over_time=over_time,
        note=note,
    )


def pd_numeric(values: Any) -> Any:
    """Captured predictions as floats (NaN where a prediction is not a number)."""
    import pandas as pd

    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
