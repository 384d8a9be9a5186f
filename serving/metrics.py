"""THE metric-names contract: every metric the server and the drift monitor export, listed once.

Alert rules, dashboards and the drift monitor refer to these names; a test pins them down.
Metrics live on a dedicated registry, so nothing a library registers on the global one leaks
into ``/metrics``. With more than one worker process, ``serve`` points prometheus_client's
multiprocess mode at a fresh folder (``PROMETHEUS_MULTIPROC_DIR``) and ``/metrics`` answers with
the sum over every worker, whichever worker the scrape lands on.

Per-feature metrics describe the input the model actually sees: for a numeric
feature, a running sum and counts per bin (ten equal bins between the schema's min and max);
for a categorical one, counts per category. Rows counted here are rows predicted.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.multiprocess import MultiProcessCollector

from pipelines.core.datasets import ColumnSpec, ColumnType

if TYPE_CHECKING:
    from serving.schema import Columns

PREFIX = "mlops_serving"

REQUESTS = f"{PREFIX}_requests_total"  # labels: status
REQUEST_LATENCY = f"{PREFIX}_request_duration_seconds"  # histogram
ROWS = f"{PREFIX}_rows_predicted_total"
BATCH_ROWS = f"{PREFIX}_batch_rows"  # histogram: rows per predict call (micro-batching)
PREDICTIONS = f"{PREFIX}_predictions_total"  # classification; labels: class
PREDICTION_VALUE = f"{PREFIX}_prediction_value"  # regression histogram
FEATURE_SUM = f"{PREFIX}_feature_value_sum"  # gauge; labels: feature
FEATURE_BINS = f"{PREFIX}_feature_bin_total"  # labels: feature, bin ("[lo,hi)")
FEATURE_CATEGORIES = f"{PREFIX}_feature_category_total"  # labels: feature, category
MODEL_INFO = f"{PREFIX}_model_info"  # gauge = 1; labels: model, version, task
MODEL_LOADED = f"{PREFIX}_model_loaded"  # gauge: 1 once /ping answers 200
CAPTURED = f"{PREFIX}_capture_records_total"
CAPTURE_ERRORS = f"{PREFIX}_capture_errors_total"

# Exposition names of counters carry a _total suffix; prometheus_client wants the base name.
NAMES = (
    REQUESTS,
    REQUEST_LATENCY,
    ROWS,
    BATCH_ROWS,
    PREDICTIONS,
    PREDICTION_VALUE,
    FEATURE_SUM,
    FEATURE_BINS,
    FEATURE_CATEGORIES,
    MODEL_INFO,
    MODEL_LOADED,
    CAPTURED,
    CAPTURE_ERRORS,
)

# The drift monitor (monitoring/) exports these, pushed or written for Prometheus to scrape.
MONITOR_PREFIX = "mlops_monitor"
DRIFT_SCORE = f"{MONITOR_PREFIX}_feature_drift_score"  # gauge; labels: model, feature, method
DRIFT_DETECTED_FEATURE = f"{MONITOR_PREFIX}_feature_drifted"  # gauge 0/1; labels: model, feature
DRIFT_SHARE = f"{MONITOR_PREFIX}_drifted_feature_share"  # gauge; labels: model
DRIFT_DETECTED = f"{MONITOR_PREFIX}_drift_detected"  # gauge 0/1; labels: model
MONITOR_ROWS = f"{MONITOR_PREFIX}_current_rows"  # gauge: rows in the window; labels: model
MONITOR_LAST_RUN = f"{MONITOR_PREFIX}_last_run_timestamp_seconds"  # gauge; labels: model

MONITOR_NAMES = (
    DRIFT_SCORE,
    DRIFT_DETECTED_FEATURE,
    DRIFT_SHARE,
    DRIFT_DETECTED,
    MONITOR_ROWS,
    MONITOR_LAST_RUN,
)

# CloudWatch: the monitor's custom metrics, and SageMaker's own endpoint metrics the alarms use.
CLOUDWATCH_NAMESPACE = "MLOps/Monitoring"  # dimensions: Model, Environment (+ Feature)
CW_DRIFT_SHARE = "DriftedFeatureShare"
CW_DRIFT_DETECTED = "DriftDetected"  # 1 when the drifted share reaches the model's threshold
CW_FEATURE_DRIFT = "FeatureDriftScore"  # extra dimension: Feature
CW_CURRENT_ROWS = "CurrentRows"
SAGEMAKER_NAMESPACE = "AWS/SageMaker"  # dimensions: EndpointName, VariantName
SM_MODEL_LATENCY = "ModelLatency"  # microseconds
SM_INVOCATIONS = "Invocations"
SM_5XX = "Invocation5XXErrors"
SM_4XX = "Invocation4XXErrors"

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
# Regression targets have no declared range in the model; symmetric decades cover most scales.
VALUE_BUCKETS = (
    -1000, -100, -50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50, 100, 1000,
)  # fmt: skip
BINS = 10


def _base(name: str) -> str:
    return name.removesuffix("_total")


def bin_edges(spec: ColumnSpec) -> np.ndarray | None:
    if spec.min is None or spec.max is None or spec.max <= spec.min:
        return None
    return np.linspace(spec.min, spec.max, BINS + 1)


def bin_labels(edges: np.ndarray) -> list[str]:
    """``[lo,hi)`` per bin; the last bin is closed, as numpy.histogram counts it."""
    last = len(edges) - 2
    return [
        f"[{lo:g},{hi:g}{']' if i == last else ')'}"
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]


@dataclass
class ServerMetrics:
    """The server's metrics, with per-label children looked up once instead of per request."""

    registry: CollectorRegistry
    exposition: CollectorRegistry  # what /metrics renders: ``registry``, or every worker's sum
    requests: Counter
    latency: Histogram
    rows: Counter
    batch_rows: Histogram
    predictions: Counter
    prediction_value: Histogram
    feature_sum: Gauge
    feature_bins: Counter
    feature_categories: Counter
    model_info: Gauge
    model_loaded: Gauge
    captured: Counter
    capture_errors: Counter
    _numeric: dict[str, tuple[np.ndarray | None, list[Any], Any]] = field(default_factory=dict)
    _categorical: dict[str, dict[str, Any]] = field(default_factory=dict)
    _status: dict[int, Any] = field(default_factory=dict)

    def observe_request(self, status: int, seconds: float) -> None:
        child = self._status.get(status)
        if child is None:
            child = self._status[status] = self.requests.labels(status=str(status))
        child.inc()
        self.latency.observe(seconds)

    def describe_features(self, schema: dict[str, ColumnSpec]) -> None:
        for name, spec in schema.items():
            if spec.type.is_numeric:
                edges = bin_edges(spec)
                children = (
                    [self.feature_bins.labels(feature=name, bin=b) for b in bin_labels(edges)]
                    if edges is not None
                    else []
                )
                self._numeric[name] = (edges, children, self.feature_sum.labels(feature=name))
            elif spec.type is ColumnType.CATEGORY and spec.categories:
                self._categorical[name] = {
                    c: self.feature_categories.labels(feature=name, category=c)
                    for c in spec.categories
                }

    def observe_batch(self, data: Columns, predictions: np.ndarray, task: str) -> None:
        """Rows, features and predictions of one predict call (run off the event loop)."""
        n = len(predictions)
        self.rows.inc(n)
        self.batch_rows.observe(n)
        for name, (edges, children, total) in self._numeric.items():
            values = np.asarray(data[name], dtype=np.float64)
            values = values[~np.isnan(values)]
            total.inc(float(values.sum()))
            if edges is not None:
                for child, count in zip(children, _bin_counts(values, edges), strict=True):
                    if count:
                        child.inc(int(count))
        for name, by_category in self._categorical.items():
            present = [v for v in data[name] if isinstance(v, str)]
            labels, counts = np.unique(np.array(present, dtype=str), return_counts=True)
            for label, count in zip(labels, counts, strict=True):
                child = by_category.get(label)
                if child is not None:
                    child.inc(int(count))
        if task == "classification":
            labels, counts = np.unique(predictions.astype(str), return_counts=True)
            for label, count in zip(labels, counts, strict=True):
                self.predictions.labels(**{"class": label}).inc(int(count))
        else:
            for value in np.asarray(predictions, dtype=np.float64):
                self.prediction_value.observe(float(value))


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` at a tenth of its cost for the few rows of a request.

    The same bins: each half-open, the last one closed, values outside the edges not counted.
    """
    inside = values[(values >= edges[0]) & (values <= edges[-1])]
    index = np.searchsorted(edges, inside, side="right") - 1
    index[index == len(edges) - 1] = len(edges) - 2  # the top edge belongs to the last bin
    return np.bincount(index, minlength=len(edges) - 1)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    """True in a worker of a multi-worker server (prometheus_client reads the same variable)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def create() -> ServerMetrics:
    # The *_created series double the output and no alert or dashboard reads them.
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=True)
    exposition = registry
    if multiprocess():
        exposition = CollectorRegistry()
        MultiProcessCollector(exposition)
    return ServerMetrics(
        registry=registry,
        exposition=exposition,
        requests=Counter(
            _base(REQUESTS), "Requests to /invocations by HTTP status.", ["status"],
            registry=registry,
        ),
        latency=Histogram(
            REQUEST_LATENCY, "Time from request to response of /invocations.",
            buckets=LATENCY_BUCKETS, registry=registry,
        ),
        rows=Counter(_base(ROWS), "Rows predicted.", registry=registry),
        batch_rows=Histogram(
            BATCH_ROWS, "Rows per predict call after micro-batching.", buckets=BATCH_BUCKETS,
            registry=registry,
        ),
        predictions=Counter(
            _base(PREDICTIONS), "Predicted rows by class (classification).", ["class"],
            registry=registry,
        ),
        prediction_value=Histogram(
            PREDICTION_VALUE, "Predicted values (regression).", buckets=VALUE_BUCKETS,
            registry=registry,
        ),
        feature_sum=Gauge(
            FEATURE_SUM, "Sum of a numeric feature over the rows predicted; divide by "
            f"{ROWS} for the mean.", ["feature"], registry=registry,
            multiprocess_mode="sum",
        ),
        feature_bins=Counter(
            _base(FEATURE_BINS), "Rows per bin of a numeric feature's declared range.",
            ["feature", "bin"], registry=registry,
        ),
        feature_categories=Counter(
            _base(FEATURE_CATEGORIES), "Rows per category of a categorical feature.",
            ["feature", "category"], registry=registry,
        ),
        model_info=Gauge(
            MODEL_INFO, "The model being served.", ["model", "version", "task"],
            registry=registry, multiprocess_mode="max",
        ),
        # Across workers: 1 once any has loaded, as /ping answers from whichever worker is asked.
        model_loaded=Gauge(
            MODEL_LOADED, "1 once the model is loaded.", registry=registry,
            multiprocess_mode="max",
        ),
        captured=Counter(_base(CAPTURED), "Data Capture records written.", registry=registry),
        capture_errors=Counter(
            _base(CAPTURE_ERRORS), "Data Capture flushes that failed.", registry=registry
        ),
    )  # fmt: skip
