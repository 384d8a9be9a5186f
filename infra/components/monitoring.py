"""Watching the models: CloudWatch alarms and a dashboard, an encrypted SNS topic for alerts,
and for Kubernetes the Prometheus alert rules and Grafana dashboards from ``monitoring/`` (the
scheduled drift monitor is ``infra.components.scheduled_monitor``).

Metric names come from ``serving.metrics`` (the one list of them). The latency and 5xx alarms
have fixed names derived from the endpoint name, because the SageMaker endpoint created after
them names them as its rollback alarms. Rules and dashboards travel as ConfigMaps (labelled for
the Prometheus rule loader and the Grafana sidecar of kube-prometheus-stack) rather than as
PrometheusRule objects, so every object the program declares is a core Kubernetes type that
validates against the official schemas, and no CRD must be installed first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from monitoring.dashboards.cloudwatch import cloudwatch_dashboard_body, metric_widget
from pipelines.core.alert_rules import ALERTS_GLOB, prometheus_rule_groups
from pipelines.core.conventions import (
    SHARED,
    slug,
)
from serving.metrics import (
    CLOUDWATCH_NAMESPACE,
    CW_DRIFT_DETECTED,
    CW_DRIFT_SHARE,
    SAGEMAKER_NAMESPACE,
    SM_5XX,
    SM_INVOCATIONS,
    SM_MODEL_LATENCY,
)

VARIANT = "AllTraffic"
DEFAULT_LATENCY_MS = 500.0
DASHBOARDS_GLOB = "dashboards/*.json"


@dataclass
class MonitoredModel:
    model: str
    tags: dict[str, str]
    endpoint_name: str | None = None  # a SageMaker endpoint to watch, if one runs
    latency_p99_ms: float = DEFAULT_LATENCY_MS


@dataclass
class MonitoringArgs:
    environment: str
    tags: dict[str, str]
    models: list[MonitoredModel]
    alert_emails: list[str] = field(default_factory=list)
    # Kubernetes: rule and dashboard files by file name, from monitoring/ (empty: none yet).
    kubernetes_namespace: str | None = None
    alert_rules: dict[str, str] = field(default_factory=dict)
    dashboards: dict[str, str] = field(default_factory=dict)
    prometheus_release: str = "kube-prometheus-stack"  # the operator's ruleSelector label


def read_monitoring_files(monitoring_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Alert rule and dashboard files under ``monitoring/``; whichever exist, maybe none."""

    def read(pattern: str) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(monitoring_dir.glob(pattern)) if p.is_file()}

    return read(ALERTS_GLOB), read(DASHBOARDS_GLOB)


def alarm_names(endpoint: str) -> list[str]:
    """The rollback alarms of an endpoint, by name: p99 latency and 5xx errors."""
    return [f"{endpoint}-latency-p99", f"{endpoint}-5xx"]


def drift_alarm_name(model: str, environment: str) -> str:
    return f"{slug(model)}-{slug(environment)}-drift"


def alerts_key_policy(account_id: str) -> str:
    """The account administers the key; CloudWatch and EventBridge may publish through it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "AlarmsPublish",
                    "Effect": "Allow",
                    "Principal": {
                        "Service": [
                            "cloudwatch.amazonaws.com",
                            "events.amazonaws.com",
                            "budgets.amazonaws.com",
                        ]
                    },
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                },
            ],
        }
    )


def topic_policy(topic_arn: str, account_id: str) -> str:
    """Alarms, EventBridge and Budgets of this account may publish; nobody else."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ServicesOfThisAccountPublish",
                    "Effect": "Allow",
                    "Principal": {
                        "Service": [
                            "cloudwatch.amazonaws.com",
                            "events.amazonaws.com",
                            "budgets.amazonaws.com",
                        ]
                    },
                    "Action": "SNS:Publish",
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "SNS:Publish",
                    "Resource": topic_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


def dashboard_body(models: list[MonitoredModel], environment: str, region: str) -> str:
    widgets: list[dict[str, object]] = []
    for i, m in enumerate(models):
        dims = ["Model", m.model, "Environment", environment]
        widgets.append(
            metric_widget(
                f"{m.model}: drift",
                [
                    [CLOUDWATCH_NAMESPACE, CW_DRIFT_SHARE, *dims],
                    [CLOUDWATCH_NAMESPACE, CW_DRIFT_DETECTED, *dims],
                ],
                region,
                x=0,
                y=i * 6,
            )
        )
        if m.endpoint_name:
            ep = ["EndpointName", m.endpoint_name, "VariantName", VARIANT]
            widgets.append(
                metric_widget(
                    f"{m.model}: latency p99, 5xx, invocations",
                    [
                        [SAGEMAKER_NAMESPACE, SM_MODEL_LATENCY, *ep, {"stat": "p99"}],
                        [SAGEMAKER_NAMESPACE, SM_5XX, *ep, {"stat": "Sum", "yAxis": "right"}],
                        [
                            SAGEMAKER_NAMESPACE,
                            SM_INVOCATIONS,
                            *ep,
                            {"stat": "Sum", "yAxis": "right"},
                        ],
                    ],
                    region,
                    x=12,
                    y=i * 6,
                )
            )
    return json.dumps({"widgets": widgets})


class Monitoring(pulumi.ComponentResource):
    """Alerts topic, alarms per model, one dashboard, and the Kubernetes monitoring objects."""

    topic: aws.sns.Topic
    drift_alarms: dict[str, aws.cloudwatch.MetricAlarm]
    rollback_alarms: dict[str, list[aws.cloudwatch.MetricAlarm]]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self))

        key = aws.kms.Key(
            f"{name}-alerts-key",
            description=f"{name}: alert notifications",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=identity.account_id.apply(alerts_key_policy),
            tags=args.tags,
            opts=child,
        )
        self.topic = aws.sns.Topic(
            f"{name}-alerts", kms_master_key_id=key.arn, tags=args.tags, opts=child
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=self.topic.arn,
            policy=pulumi.Output.all(self.topic.arn, identity.account_id).apply(
                lambda a: topic_policy(a[0], a[1])
            ),
            opts=child,
        )
        for i, email in enumerate(args.alert_emails):
            aws.sns.TopicSubscription(
                f"{name}-alerts-email-{i}",
                topic=self.topic.arn,
                protocol="email",
                endpoint=email,
                opts=child,
            )
        actions = [self.topic.arn]

        self.drift_alarms, self.rollback_alarms = {}, {}
        for m in args.models:
            self.drift_alarms[m.model] = aws.cloudwatch.MetricAlarm(
                f"{name}-{slug(m.model)}-drift",
                name=drift_alarm_name(m.model, args.environment),
                alarm_description=f"Drift detected on {m.model} in {args.environment}",
                namespace=CLOUDWATCH_NAMESPACE,
                metric_name=CW_DRIFT_DETECTED,
                dimensions={"Model": m.model, "Environment": args.environment},
                statistic="Maximum",
                period=3600,
                evaluation_periods=1,
                threshold=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=actions,
                tags=m.tags,
                opts=child,
            )
            if m.endpoint_name:
                self.rollback_alarms[m.model] = self._endpoint_alarms(name, m, actions, child)

        aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"mlops-{slug(args.environment)}",
            dashboard_body=region.region.apply(
                lambda r: dashboard_body(args.models, args.environment, r)
            ),
            opts=child,
        )

        for m in args.models:
            if m.endpoint_name:
                # One dashboard per endpoint, as the monitoring part lays it out.
                aws.cloudwatch.Dashboard(
                    f"{name}-{slug(m.model)}-dashboard",
                    dashboard_name=f"mlops-{slug(args.environment)}-{slug(m.model)}",
                    dashboard_body=region.region.apply(
                        lambda r, m=m: json.dumps(  # type: ignore[misc]
                            cloudwatch_dashboard_body(
                                m.model, m.endpoint_name or "", r, args.environment
                            )
                        )
                    ),
                    opts=child,
                )

        if args.kubernetes_namespace and (args.alert_rules or args.dashboards):
            self._kubernetes(name, args)

        self.topic_arn = self.topic.arn
        self.register_outputs(
            {
                "topic_arn": self.topic_arn,
                "drift_alarms": {m: a.name for m, a in self.drift_alarms.items()},
            }
        )

    def _endpoint_alarms(
        self,
        name: str,
        m: MonitoredModel,
        actions: list[pulumi.Output[str]],
        opts: pulumi.ResourceOptions,
    ) -> list[aws.cloudwatch.MetricAlarm]:
        assert m.endpoint_name is not None
        dims = {"EndpointName": m.endpoint_name, "VariantName": VARIANT}
        latency_name, errors_name = alarm_names(m.endpoint_name)
        latency = aws.cloudwatch.MetricAlarm(
            f"{name}-{slug(m.model)}-latency",
            name=latency_name,
            alarm_description=f"p99 model latency of {m.endpoint_name} above {m.latency_p99_ms} ms",
            namespace=SAGEMAKER_NAMESPACE,
            metric_name=SM_MODEL_LATENCY,
            dimensions=dims,
            extended_statistic="p99",
            period=60,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            threshold=m.latency_p99_ms * 1000,  # ModelLatency is in microseconds
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
            tags=m.tags,
            opts=opts,
        )
        errors = aws.cloudwatch.MetricAlarm(
            f"{name}-{slug(m.model)}-5xx",
            name=errors_name,
            alarm_description=f"5xx errors from {m.endpoint_name}",
            namespace=SAGEMAKER_NAMESPACE,
            metric_name=SM_5XX,
            dimensions=dims,
            statistic="Sum",
            period=60,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
            tags=m.tags,
            opts=opts,
        )
        return [latency, errors]

    def _kubernetes(self, name: str, args: MonitoringArgs) -> None:
        assert args.kubernetes_namespace is not None
        labels = {
            "app.kubernetes.io/part-of": "mlops",
            "app.kubernetes.io/managed-by": "pulumi",
            "mlops/model": SHARED,
            "mlops/environment": slug(args.environment),
        }
        meta_annotations = {"mlops/owner": args.tags.get("owner", "")}
        child = pulumi.ResourceOptions(parent=self)
        groups = prometheus_rule_groups(args.alert_rules)
        if groups:
            # The Prometheus Operator reads PrometheusRule objects its ruleSelector matches.
            k8s.apiextensions.CustomResource(
                f"{name}-alert-rules",
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata={
                    "name": "mlops-alert-rules",
                    "namespace": args.kubernetes_namespace,
                    "labels": {**labels, "release": args.prometheus_release},
                    "annotations": meta_annotations,
                },
                spec={"groups": groups},
                opts=child,
            )
        if args.dashboards:
            k8s.core.v1.ConfigMap(
                f"{name}-dashboards",
                metadata={
                    "name": "mlops-grafana-dashboards",
                    "namespace": args.kubernetes_namespace,
                    "labels": {**labels, "grafana_dashboard": "1"},
                    "annotations": meta_annotations,
                },
                data=args.dashboards,
                opts=child,
            )
