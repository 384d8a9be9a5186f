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

import numpy as np

from monitoring.current import EVENT_ID, PREDICTION, ROW, TIME
from monitoring.drift import DriftResult, Profile, compare, detect_columns, profile
from monitoring.parallel import fold_files
from monitoring.reference import Reference, load_reference
from monitoring.settings import MonitorSettings
from monitoring.window import (
    EXACT_LIMIT,
    WindowState,
    load_state,
    new_state,
    save_state,
    shard_files,
)
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
    current: WindowState
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
                "files": self.current.files,
                "summaries": self.current.summaries(),
            },
            "data_drift": self.drift.as_dict(),
            "concept_drift": self.concept.as_dict() if self.concept else None,
            "seconds": round(self.seconds, 3),
        }


def feature_kinds(model: Model) -> dict[str, Kind]:
    """numeric (int, float) or categorical (string, category, bool: a bool is two labels,
    which ``auto`` tests with the z-test on a small reference, as Evidently does)."""
    return definition_kinds(model.definition, model.dataset)


@dataclass
class _Context:
    """What every run needs before reading the window: the reference, profiled once."""

    name: str
    reference: Reference
    model: Model
    profiles: dict[str, Profile]
    prediction_kind: Kind
    prediction_profile: Profile | None  # ahead of the window for a numeric one (PSI bins)
    prediction_reference: Any
    labels: pd.DataFrame | None

    @property
    def identity(self) -> str:
        """Which reference a partial state was folded against (``--merge`` checks it)."""
        r = self.reference
        return f"{self.name}|{r.version}|{r.run_id}|{r.source}"


def _context(
    settings: Settings,
    name: str,
    client: MlflowClient | None,
    env: str | None,
    version: str | None,
    labels: Path | None,
    reference: Reference | None = None,
) -> _Context:
    if reference is None:  # a frozen baseline (monitoring.baseline) replaces the registry's
        reference = load_reference(settings, name, client=client, env=env, version=version)
    model = reference.model
    definition = model.definition
    kinds = feature_kinds(model)
    check_definition(definition, model.dataset, str(model.path))
    try:
        profiles = {f: profile(f, kinds[f], reference.frame[f]) for f in definition.features}
    except ValueError as exc:  # a feature with no value at all in the training rows
        raise DataError(str(exc), file=model.dataset.path) from None
    kind: Kind = "categorical" if definition.task.value == "classification" else "numeric"
    regression = definition.task.value == "regression"
    truth = read_labels(labels, definition.target, numeric=regression) if labels else None
    context = _Context(name, reference, model, profiles, kind, None, None, truth)
    if kind == "numeric":
        _profile_predictions(context)
    return context


def _profile_predictions(context: _Context) -> None:
    """The version's predictions on its training rows (or the target), profiled."""
    definition = context.model.definition
    ref_values = context.reference.frame[definition.target]
    if context.reference.predictions is not None:  # frozen with a baseline
        ref_values = context.reference.predictions
    elif context.reference.model_uri:
        from pipelines.core.registry import load_sklearn_model

        estimator = load_sklearn_model(context.reference.model_uri)
        ref_values = estimator.predict(context.reference.frame[list(definition.features)])
    context.prediction_reference = ref_values
    context.prediction_profile = profile("prediction", context.prediction_kind, ref_values)


def _fold(
    context: _Context,
    captures: str | Path,
    *,
    since: datetime | None,
    until: datetime | None,
    endpoint: str | None,
    shard: tuple[int, int] = (1, 1),
    exact_limit: int = EXACT_LIMIT,
) -> WindowState:
    from serving.capture import NoEndpointCaptures, capture_files

    where = str(captures)
    if not where.startswith("s3://") and not Path(where).exists():
        raise DataError(f"no capture folder at {where}", field="--captures")
    definition = context.model.definition
    columns = context.model.dataset.definition.columns
    edges = {n: p.psi_edges for n, p in context.profiles.items() if p.psi_edges is not None}
    prediction = context.prediction_profile
    state = new_state(
        where,
        {n: p.kind for n, p in context.profiles.items()},
        edges,
        context.prediction_kind,
        prediction.psi_edges if prediction and prediction.psi_edges is not None else np.zeros(0),
        exact_limit,
    )
    state.shard = f"{shard[0]}/{shard[1]}"
    try:
        files = capture_files(where, endpoint or context.name)
    except NoEndpointCaptures as exc:
        raise DataError(f"{exc}; pass --endpoint or a narrower --captures", file=where) from None
    except OSError as exc:
        raise DataError(f"cannot read the captures: {exc}", file=where) from None
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):  # S3 refused or unreachable
            raise DataError(f"cannot read the captures: {exc}", file=where) from None
        raise
    events = set(context.labels["event_id"]) if context.labels is not None else None
    return fold_files(
        state,
        shard_files(files, shard),
        {f: columns[f] for f in definition.features},
        since=since,
        until=until,
        labelled_events=events,
        workers=MonitorSettings().workers,
    )


def _judge(
    context: _Context,
    state: WindowState,
    started: float,
    *,
    endpoint: str | None = None,
    since: datetime | None = None,
    labels: Path | None = None,
) -> MonitorResult:
    state.check(endpoint or context.name, since)
    definition = context.model.definition
    result = detect_columns(
        {n: p.kind for n, p in context.profiles.items()},
        lambda n: context.profiles[n],
        lambda n: state.features[n].current(),
        definition.monitoring.drift,
    )
    for f in result.features:
        f.summary = state.summaries()[f.feature] if f.current_rows else f.summary
    result.prediction = None
    if state.prediction.count:
        if context.prediction_profile is None:
            _profile_predictions(context)
        assert context.prediction_profile is not None
        threshold = definition.monitoring.drift.threshold
        current = state.prediction.current()
        result.prediction = compare(context.prediction_profile, current, "auto", None, threshold)
        result.prediction.summary = state.summaries()["prediction"]
    concept = None
    if labels is not None:
        import pandas as pd

        captured = pd.DataFrame(state.labelled, columns=[EVENT_ID, ROW, TIME, PREDICTION])
        captured[ROW] = captured[ROW].astype("int64")
        concept = _concept_drift(context.reference, captured, context.model, labels)
    return MonitorResult(
        context.name, context.reference, state, result, concept, time.perf_counter() - started,
        datetime.now(UTC), context.prediction_reference,
    )  # fmt: skip


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
    exact_limit: int = EXACT_LIMIT,
    reference: Reference | None = None,
) -> MonitorResult:
    """Compare the captured window with the monitored version's training rows.

    ``endpoint`` (default: the model's name, as the server names its capture folder) scopes a
    capture destination that holds several endpoints' folders to this model's. The window is
    streamed into per-column state (``monitoring.window``), never held as rows.
    """
    started = time.perf_counter()
    context = _context(settings, name, client, env, version, labels, reference)
    state = _fold(
        context, captures, since=since, until=until, endpoint=endpoint, exact_limit=exact_limit
    )
    return _judge(context, state, started, endpoint=endpoint, since=since, labels=labels)


def run_shard(
    settings: Settings,
    name: str,
    captures: str | Path,
    shard: tuple[int, int],
    state_out: Path,
    *,
    client: MlflowClient | None = None,
    env: str | None = None,
    version: str | None = None,
    labels: Path | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    endpoint: str | None = None,
    exact_limit: int = EXACT_LIMIT,
    reference: Reference | None = None,
) -> WindowState:
    """Fold shard i of n of the window's capture files and write the partial state.

    An empty shard is not an error here (it writes an empty state); whether anything at all
    could be judged is decided by ``run_merge``, over every shard.
    """
    context = _context(settings, name, client, env, version, labels, reference)
    state = _fold(
        context, captures, since=since, until=until, endpoint=endpoint, shard=shard,
        exact_limit=exact_limit,
    )  # fmt: skip
    try:
        save_state(state, state_out, context.identity)
    except OSError as exc:
        raise DataError(
            f"cannot write the state: {exc}", file=state_out, field="--state-out"
        ) from None
    return state


def run_merge(
    settings: Settings,
    name: str,
    states: list[Path],
    *,
    client: MlflowClient | None = None,
    env: str | None = None,
    version: str | None = None,
    labels: Path | None = None,
    endpoint: str | None = None,
    reference: Reference | None = None,
) -> MonitorResult:
    """The verdict of partial states written by ``run_shard`` (of the same reference)."""
    started = time.perf_counter()
    context = _context(settings, name, client, env, version, labels, reference)
    merged: WindowState | None = None
    for path in states:
        state, identity = load_state(path)
        if identity != context.identity:
            raise DataError(
                f"this state was folded against another reference ({identity}), not "
                f"{context.identity}",
                file=path,
                field="--merge",
            )
        if merged is None:
            merged = state
        else:
            try:
                merged.merge(state)
            except ValueError as exc:
                raise DataError(str(exc), file=path, field="--merge") from None
    if merged is None:
        raise DataError("no partial state to merge", field="--merge")
    merged.shard = f"{len(states)} merged"
    return _judge(context, merged, started, endpoint=endpoint, labels=labels)


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
    reference: Reference, captured: pd.DataFrame, model: Model, labels_path: Path
) -> ConceptDrift:
    """The primary metric on the labelled captured rows against the version's test metric.

    ``captured`` holds only the captured rows whose event id has a label (event id, row,
    time, prediction), collected while the window streamed by.

    A probability metric (log_loss, roc_auc) cannot be computed from captured labels, so the
    task's default label metric is used instead and the report says so. A score that is
    undefined on these rows (NaN) or a version without that test metric cannot be judged:
    bad input (exit 2), never "not degraded".
    """
    from pipelines.core.definitions import higher_is_better
    from pipelines.core.metric_catalog import DEFAULT_PRIMARY
    from pipelines.core.scoring import Predictions, metric_value

    definition = model.definition
    target = definition.target
    regression = definition.task.value == "regression"
    labels = read_labels(labels_path, target, numeric=regression)
    joined = captured.merge(
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
