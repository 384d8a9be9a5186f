"""Watching the models: CloudWatch alarms and a dashboard, an encrypted SNS topic for alerts,
SageMaker Model Monitor on SageMaker endpoints, and for Kubernetes the Prometheus alert rules
and Grafana dashboards from ``monitoring/`` as ConfigMaps.

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

from infra.components.roles import assume_role_policy, workload_role
from monitoring.dashboards.cloudwatch import cloudwatch_dashboard_body, metric_widget
from pipelines.core.alert_rules import ALERTS_GLOB, prometheus_rule_groups
from pipelines.core.conventions import (
    MONITORING_PREFIX,
    SHARED,
    baseline_prefix,
    capture_prefix,
    slug,
)
from pipelines.core.deploy_limits import has_instance_storage
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


@dataclass
class ModelMonitorArgs:
    model: str
    version: str
    environment: str
    endpoint_name: pulumi.Input[str]
    schedule: str  # model.yaml's 5-field cron
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    tags: dict[str, str]
    instance_type: str = "ml.m5.large"
    boundary_arn: pulumi.Input[str] | None = None  # the stack's WorkloadBoundary


def sagemaker_schedule(cron: str) -> str:
    """model.yaml's cron as Model Monitor accepts it: hourly, or daily at a fixed hour.

    Model Monitor runs at the top of the hour only, so the minute is dropped; an hour field
    that is one number becomes a daily run at that hour, anything else an hourly run.
    """
    hour = cron.split()[1]
    return f"cron(0 {hour} ? * * *)" if hour.isdigit() else "cron(0 * ? * * *)"


def model_monitor_policy(bucket_arn: str, key_arn: str, model: str, environment: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": [
                        f"{bucket_arn}/{capture_prefix(environment)}/*",
                        f"{bucket_arn}/{baseline_prefix(model, '*')}/*",
                    ],
                },
                {
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"{bucket_arn}/{MONITORING_PREFIX}/{environment}/{model}/*",
                },
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
                {
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": key_arn,
                },
            ],
        }
    )


class ModelMonitor(pulumi.ComponentResource):
    """A SageMaker Model Monitor data-quality schedule on one endpoint's captures."""

    schedule: aws.sagemaker.MonitoringSchedule

    def __init__(
        self, name: str, args: ModelMonitorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:ModelMonitor", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        image = aws.sagemaker.get_prebuilt_ecr_image_output(
            repository_name="sagemaker-model-monitor-analyzer",
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        role = workload_role(
            f"{name}-role",
            f"{name}-role-policy",
            environment=args.environment,
            boundary=args.boundary_arn,
            trust=assume_role_policy("sagemaker.amazonaws.com"),
            policy=pulumi.Output.all(args.bucket_arn, args.key_arn).apply(
                lambda a: model_monitor_policy(a[0], a[1], args.model, args.environment)
            ),
            tags=args.tags,
            opts=child,
        )
        baseline = pulumi.Output.concat(
            "s3://", args.bucket_name, "/", baseline_prefix(args.model, args.version)
        )
        cluster: aws.sagemaker.DataQualityJobDefinitionJobResourcesClusterConfigArgsDict = {
            "instance_count": 1,
            "instance_type": args.instance_type,
            "volume_size_in_gb": 20,
        }
        # SageMaker refuses a volume key where the instance's own storage is encrypted.
        if not has_instance_storage(args.instance_type):
            cluster["volume_kms_key_id"] = args.key_arn
        definition = aws.sagemaker.DataQualityJobDefinition(
            f"{name}-job-v{args.version}",
            role_arn=role.arn,
            data_quality_app_specification={"image_uri": image.registry_path},
            data_quality_baseline_config={
                "constraints_resource": {
                    "s3_uri": pulumi.Output.concat(baseline, "/constraints.json")
                },
                "statistics_resource": {
                    "s3_uri": pulumi.Output.concat(baseline, "/statistics.json")
                },
            },
            data_quality_job_input={"endpoint_input": {"endpoint_name": args.endpoint_name}},
            data_quality_job_output_config={
                "kms_key_id": args.key_arn,
                "monitoring_outputs": {
                    "s3_output": {
                        "s3_uri": pulumi.Output.concat(
                            "s3://",
                            args.bucket_name,
                            f"/{MONITORING_PREFIX}/{args.environment}/{args.model}",
                        )
                    }
                },
            },
            job_resources={"cluster_config": cluster},
            stopping_condition={"max_runtime_in_seconds": 1800},
            tags=args.tags,
            opts=child,
        )
        self.schedule = aws.sagemaker.MonitoringSchedule(
            f"{name}-schedule",
            monitoring_schedule_config={
                "monitoring_type": "DataQuality",
                "monitoring_job_definition_name": definition.name,
                "schedule_config": {"schedule_expression": sagemaker_schedule(args.schedule)},
            },
            tags=args.tags,
            opts=child,
        )
        self.register_outputs({"schedule": self.schedule.name})
