"""Drift results as metrics: Prometheus (text file or Pushgateway) and CloudWatch custom metrics.

The names come from ``serving.metrics`` (the metric-names contract), so the alert rules and the
dashboards that are tested against that module read exactly what is exported here. Prometheus
metrics go on a dedicated registry: nothing a library registers globally leaks into them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving import metrics as names

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from monitoring.monitor import MonitorResult

PROMETHEUS_FILE = "drift.prom"
PUSH_JOB = "mlops-monitor"


def prometheus_registry(result: MonitorResult) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry(auto_describe=True)
    model = result.model
    score = Gauge(
        names.DRIFT_SCORE,
        "Drift score of a feature (a p-value for ks, chi2 and z; a distance otherwise).",
        ["model", "feature", "method"],
        registry=registry,
    )
    drifted = Gauge(
        names.DRIFT_DETECTED_FEATURE,
        "1 when the feature drifted.",
        ["model", "feature"],
        registry=registry,
    )
    features = list(result.drift.features)
    if result.drift.prediction is not None:
        features.append(result.drift.prediction)
    for f in features:
        if f.score == f.score:  # a column with no current values has no score
            score.labels(model=model, feature=f.feature, method=f.method).set(f.score)
        drifted.labels(model=model, feature=f.feature).set(int(f.drifted))
    Gauge(names.DRIFT_SHARE, "Share of drifted features.", ["model"], registry=registry).labels(
        model=model
    ).set(result.drift.share)
    Gauge(
        names.DRIFT_DETECTED, "1 when the model's data or concept drifted.", ["model"],
        registry=registry,
    ).labels(model=model).set(int(result.detected))  # fmt: skip
    Gauge(names.MONITOR_ROWS, "Rows in the current window.", ["model"], registry=registry).labels(
        model=model
    ).set(result.current.rows)
    Gauge(
        names.MONITOR_LAST_RUN, "When the monitor last ran (Unix time).", ["model"],
        registry=registry,
    ).labels(model=model).set(result.at.timestamp())  # fmt: skip
    return registry


def write_prometheus(result: MonitorResult, path: Path) -> Path:
    """A text file for node_exporter's textfile collector, replaced atomically."""
    from prometheus_client import write_to_textfile

    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), prometheus_registry(result))
    return path


def push_prometheus(result: MonitorResult, gateway: str) -> None:
    from prometheus_client import push_to_gateway

    push_to_gateway(
        gateway, job=PUSH_JOB, registry=prometheus_registry(result),
        grouping_key={"model": result.model}, timeout=10,
    )  # fmt: skip


def cloudwatch_metric_data(result: MonitorResult, environment: str) -> list[dict[str, Any]]:
    """The MetricData of one PutMetricData call (CloudWatch takes up to 1000 per call)."""
    base = [
        {"Name": "Model", "Value": result.model},
        {"Name": "Environment", "Value": environment},
    ]
    at = result.at
    data: list[dict[str, Any]] = [
        {"MetricName": names.CW_DRIFT_SHARE, "Dimensions": base, "Timestamp": at,
         "Value": result.drift.share, "Unit": "None"},
        {"MetricName": names.CW_DRIFT_DETECTED, "Dimensions": base, "Timestamp": at,
         "Value": float(result.detected), "Unit": "None"},
        {"MetricName": names.CW_CURRENT_ROWS, "Dimensions": base, "Timestamp": at,
         "Value": float(result.current.rows), "Unit": "Count"},
    ]  # fmt: skip
    for f in result.drift.features:
        if f.score == f.score:
            data.append(
                {
                    "MetricName": names.CW_FEATURE_DRIFT,
                    "Dimensions": [*base, {"Name": "Feature", "Value": f.feature}],
                    "Timestamp": at,
                    "Value": float(f.score),
                    "Unit": "None",
                }
            )
    return data


def put_cloudwatch(result: MonitorResult, environment: str, client: Any = None) -> int:
    """Send the metrics to CloudWatch; returns how many were sent."""
    import boto3

    client = client or boto3.client("cloudwatch")
    data = cloudwatch_metric_data(result, environment)
    for start in range(0, len(data), 1000):
        client.put_metric_data(
            Namespace=names.CLOUDWATCH_NAMESPACE, MetricData=data[start : start + 1000]
        )
    return len(data)
