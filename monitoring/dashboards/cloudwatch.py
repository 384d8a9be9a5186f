"""The CloudWatch dashboard of one model's endpoint: SageMaker's metrics and the monitor's.

A pure function so that the Pulumi program (``infra/``) can pass its result, as JSON, to an
``aws.cloudwatch.Dashboard``, and tests can check it without AWS. Every metric name comes from
``serving.metrics``, the metric-names contract.
"""

from __future__ import annotations

from typing import Any

from serving import metrics as names

PERIOD = 300


def metric_widget(
    title: str, metrics: list[list[Any]], region: str, x: int, y: int, **properties: Any
) -> dict[str, Any]:
    """A time-series widget half a dashboard wide; the infra's stack dashboard uses it too."""
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stacked": False,
            "period": PERIOD,
            "metrics": metrics,
            **properties,
        },
    }


def cloudwatch_dashboard_body(
    model: str,
    endpoint_name: str,
    region: str,
    environment: str,
    variant: str = "AllTraffic",
) -> dict[str, Any]:
    """The ``DashboardBody`` (as a dict; ``json.dumps`` it) for one model in one environment."""
    endpoint = ["EndpointName", endpoint_name, "VariantName", variant]
    monitor = ["Model", model, "Environment", environment]
    sm = names.SAGEMAKER_NAMESPACE
    cw = names.CLOUDWATCH_NAMESPACE
    feature_search = (
        f'SEARCH(\'{{{cw},Environment,Feature,Model}} MetricName="{names.CW_FEATURE_DRIFT}" '
        f'Model="{model}" Environment="{environment}"\', \'Maximum\', 3600)'
    )
    widgets = [
        metric_widget(
            f"{model}: model latency (microseconds)",
            [
                [sm, names.SM_MODEL_LATENCY, *endpoint, {"stat": "p99", "label": "p99"}],
                [sm, names.SM_MODEL_LATENCY, *endpoint, {"stat": "p50", "label": "p50"}],
            ],
            region, 0, 0,
        ),
        metric_widget(
            f"{model}: invocations and errors",
            [
                [sm, names.SM_INVOCATIONS, *endpoint, {"stat": "Sum"}],
                [sm, names.SM_5XX, *endpoint, {"stat": "Sum"}],
                [sm, names.SM_4XX, *endpoint, {"stat": "Sum"}],
            ],
            region, 12, 0,
        ),
        metric_widget(
            f"{model}: share of drifted features",
            [[cw, names.CW_DRIFT_SHARE, *monitor, {"stat": "Maximum"}]],
            region, 0, 6, period=3600, yAxis={"left": {"min": 0, "max": 1}},
        ),
        metric_widget(
            f"{model}: drift detected and rows monitored",
            [
                [cw, names.CW_DRIFT_DETECTED, *monitor, {"stat": "Maximum"}],
                [cw, names.CW_CURRENT_ROWS, *monitor, {"stat": "Sum", "yAxis": "right"}],
            ],
            region, 12, 6, period=3600,
        ),
        metric_widget(
            f"{model}: drift score per feature",
            [[{"expression": feature_search, "id": "features", "label": "", "period": 3600}]],
            region, 0, 12, period=3600,
        ),
    ]  # fmt: skip
    return {"widgets": widgets}
