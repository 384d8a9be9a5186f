"""The drift monitor in the cloud: `mlops monitor` on a schedule, where the captures are.

SageMaker Model Monitor was the first design and could not work: it reads a baseline nothing
wrote, cannot parse the MLflow-shaped JSON or headed CSV the server captures, and publishes no
``DriftDetected`` metric, which is what the drift alarm (and so the retraining dispatch) waits
for. So the cloud runs the same program a laptop runs: EventBridge Scheduler starts a SageMaker
Processing job in the project's own image (``CreateProcessingJob`` as a universal target,
docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html) whose command is
``mlops monitor --baseline ... --cloudwatch``. The baseline is the deployed version's frozen
reference, written by ``mlops monitor-baseline`` before ``pulumi up`` (``monitoring.baseline``),
so the job needs neither registry credentials nor the repository.

Each run is named ``<prefix>-<aws.scheduler.execution-id>``: Scheduler substitutes the context
attribute in the input, so every run has a unique ProcessingJobName, as SageMaker requires.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.roles import SAGEMAKER_SERVICE, assume_role_policy, workload_role
from pipelines.core.conventions import (
    MONITORING_PREFIX,
    baseline_prefix,
    capture_prefix,
    slug,
)
from pipelines.core.deploy_limits import has_instance_storage
from serving.metrics import CLOUDWATCH_NAMESPACE

PROCESSING_TARGET = "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
EXECUTION_ID = "<aws.scheduler.execution-id>"
# A ProcessingJobName has at most 63 characters; the execution id Scheduler appends is a short
# token (16 characters in the documentation's example), so the prefix keeps 40 and leaves 22.
JOB_PREFIX_MAX = 40
REPORT_PATH = "/opt/ml/processing/output/report"
MAX_RUNTIME_SECONDS = 3600
# The most instances one run may use (modelMonitorInstanceCount): the first host reads every
# other host's partial state, so more hosts than capture files an hour only add waiting.
MAX_INSTANCE_COUNT = 20
# How long the first host waits for the others' partial states: well inside the job's runtime.
SHARD_TIMEOUT_SECONDS = 1800


@dataclass
class ScheduledMonitorArgs:
    model: str
    version: str
    environment: str
    endpoint_name: pulumi.Input[str]
    schedule: str  # model.yaml's 5-field cron
    image_uri: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    tags: dict[str, str]
    instance_type: str = "ml.m5.large"
    instance_count: int = 1  # > 1: the window is split by capture file across the hosts
    boundary_arn: pulumi.Input[str] | None = None  # the stack's WorkloadBoundary


def scheduler_expression(cron: str) -> str:
    """model.yaml's 5-field cron as EventBridge Scheduler's 6-field ``cron()`` (UTC).

    Scheduler wants ``?`` in one of day-of-month and day-of-week, and counts weekdays 1-7 from
    Sunday where cron counts 0-6: a weekday field is taken as written only when it is ``*``.
    """
    minute, hour, day, month, weekday = cron.split()
    if weekday == "*":
        return f"cron({minute} {hour} {day} {month} ? *)"
    days = ",".join(str(int(d) % 7 + 1) if d.isdigit() else d for d in weekday.split(","))
    return f"cron({minute} {hour} ? {month} {days} *)"


def window_hours(cron: str) -> int:
    """The hours of captures each run reads: the time since the previous run (1 or 24)."""
    hour = cron.split()[1]
    return 24 if hour.isdigit() else 1


def monitor_job_prefix(model: str, environment: str) -> str:
    base = f"mlops-{slug(environment)}-{slug(model)}-mon"
    if len(base) <= JOB_PREFIX_MAX:
        return base
    digest = hashlib.sha256(f"{environment}/{model}".encode()).hexdigest()[:6]
    return f"{base[: JOB_PREFIX_MAX - 7].rstrip('-')}-{digest}"


def shard_states_prefix(model: str, environment: str, run: str = EXECUTION_ID) -> str:
    """Where the hosts of one run put their partial states: beside that run's reports.

    ``run`` is what the platform replaces with the run's id when it starts it, which makes the
    prefix unique to the run: Scheduler's execution id (substituted in the whole input), or on
    Kubernetes a ``$(VARIABLE)`` holding the Job's name (expanded in the pod's command).
    """
    return f"{MONITORING_PREFIX}/{environment}/{model}/{run}/shards"


def monitor_job_command(
    model: str, environment: str, endpoint: str, bucket: str, version: str, hours: int,
    instance_count: int = 1, run: str = EXECUTION_ID,
) -> list[str]:  # fmt: skip
    """The job's command: one ``mlops monitor`` over the last window, metrics to CloudWatch.

    With several instances every host runs the same command: ``--shard auto`` makes each fold
    its share of the window's files, and the first host merges them and publishes the verdict.
    """
    sharded = [
        "--shard", "auto",
        "--shard-states", f"s3://{bucket}/{shard_states_prefix(model, environment, run)}",
        "--shard-timeout", str(SHARD_TIMEOUT_SECONDS),
    ] if instance_count > 1 else []  # fmt: skip
    return [
        "mlops", "monitor", model,
        # The endpoint's own folder: the job's role may list nothing wider.
        "--captures", f"s3://{bucket}/{capture_prefix(environment)}/{endpoint}/",
        "--endpoint", endpoint,
        "--env", environment,
        "--baseline", f"s3://{bucket}/{baseline_prefix(model, version)}",
        "--since-hours", str(hours),
        "--cloudwatch",
        "--no-fail-on-drift",  # drift is reported by the metric, not by failing the job
        "--output-dir", REPORT_PATH,
        *sharded,
    ]  # fmt: skip


def processing_request(
    *,
    model: str,
    version: str,
    environment: str,
    endpoint: str,
    bucket: str,
    key_arn: str,
    role_arn: str,
    image_uri: str,
    region: str,
    schedule: str,
    instance_type: str,
    tags: dict[str, str],
    instance_count: int = 1,
) -> dict[str, Any]:
    """The CreateProcessingJob request each scheduled run sends (Scheduler's target input)."""
    cluster: dict[str, Any] = {
        "InstanceCount": instance_count,
        "InstanceType": instance_type,
        "VolumeSizeInGB": 20,
    }
    # SageMaker refuses a volume key where the instance's own storage is encrypted.
    if not has_instance_storage(instance_type):
        cluster["VolumeKmsKeyId"] = key_arn
    reports = f"s3://{bucket}/{MONITORING_PREFIX}/{environment}/{model}/{EXECUTION_ID}"
    return {
        "ProcessingJobName": f"{monitor_job_prefix(model, environment)}-{EXECUTION_ID}",
        "RoleArn": role_arn,
        "AppSpecification": {
            "ImageUri": image_uri,
            "ContainerEntrypoint": monitor_job_command(
                model,
                environment,
                endpoint,
                bucket,
                version,
                window_hours(schedule),
                instance_count,
            ),
        },
        "Environment": {
            "AWS_DEFAULT_REGION": region,
            # The image's user has no home: state and scratch files go to /tmp.
            "MLOPS_HOME": "/tmp/mlops",
            "MLOPS_MONITOR_ENVIRONMENT": environment,
            # The partial states are put with the key the reports are encrypted with.
            **({"MLOPS_MONITOR_KMS_KEY": key_arn} if instance_count > 1 else {}),
        },
        "ProcessingResources": {"ClusterConfig": cluster},
        "ProcessingOutputConfig": {
            "KmsKeyId": key_arn,
            "Outputs": [
                {
                    "OutputName": "report",
                    "S3Output": {
                        "S3Uri": reports,
                        "LocalPath": REPORT_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
    }


def job_policy(
    *, bucket_arn: str, key_arn: str, repository_arn: str | None, model: str, environment: str,
    endpoint: str, sharded: bool = False,
) -> str:  # fmt: skip
    """What one model's monitor job may do: read its captures and baselines, report, log.

    ``repository_arn`` None: the Kubernetes CronJob, whose image the nodes pull and whose logs
    the cluster keeps, so the pod's role needs neither. ``sharded``: several hosts per run, so
    the first one reads the others' partial states back (they write them with the reports'
    ``s3:PutObject``); nothing else grows.
    """
    captures = f"{capture_prefix(environment)}/{endpoint}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": _data_statements(bucket_arn, key_arn, model, environment, captures)
            + (_shard_statements(bucket_arn, model, environment) if sharded else [])
            + ([] if repository_arn is None else _sagemaker_statements(repository_arn)),
        }
    )


def _shard_statements(bucket_arn: str, model: str, environment: str) -> list[dict[str, Any]]:
    # Any run's shards/ folder of this model: the run's id is not known when the policy is.
    shards = shard_states_prefix(model, environment, "*")
    return [
        {
            "Sid": "ReadTheRunsPartialStates",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn}/{shards}/*",
        },
        {
            "Sid": "ListTheRunsPartialStates",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{shards}/*"]}},
        },
    ]


def _data_statements(
    bucket_arn: str, key_arn: str, model: str, environment: str, captures: str
) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "ReadTheEndpointsCapturesAndTheModelsBaselines",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [
                f"{bucket_arn}/{captures}/*",
                f"{bucket_arn}/{baseline_prefix(model, '*')}/*",
            ],
        },
        {
            "Sid": "ListOnlyThosePrefixes",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {
                "StringLike": {"s3:prefix": [f"{captures}/*", f"{baseline_prefix(model, '*')}/*"]}
            },
        },
        {
            "Sid": "WriteTheReports",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/{MONITORING_PREFIX}/{environment}/{model}/*",
        },
        {
            "Sid": "UseTheArtifactKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": key_arn,
        },
        {
            "Sid": "PublishThePlatformsMetricsOnly",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",  # PutMetricData has no resource; the namespace is the scope
            "Condition": {"StringEquals": {"cloudwatch:namespace": CLOUDWATCH_NAMESPACE}},
        },
    ]


def _sagemaker_statements(repository_arn: str) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "PullTheProjectsImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": repository_arn,
        },
        {
            "Sid": "EcrLoginHasNoResource",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
        {
            "Sid": "WriteTheJobsLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/ProcessingJobs:*",
        },
    ]


def scheduler_policy(
    *, region: str, account: str, job_role_arn: str, prefix: str, volume_key_arn: str | None
) -> str:
    """What the schedule may do: start this model's jobs, with this role, and nothing else.

    A job whose volume is encrypted with ``volume_key_arn`` also needs its caller to let
    SageMaker grant itself that key: CreateProcessingJob requires ``kms:CreateGrant`` when
    ProcessingResources has a VolumeKmsKeyId and the job's role may not grant it (SageMaker
    developer guide, "Amazon SageMaker API Permissions: Actions, Permissions, and Resources
    Reference", https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html).
    The job's role only uses the key, so the grant is the schedule's, through SageMaker only.
    """
    grant = [
        {
            "Sid": "LetSageMakerGrantItselfTheVolumeKey",
            "Effect": "Allow",
            "Action": "kms:CreateGrant",
            "Resource": volume_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"sagemaker.{region}.amazonaws.com"}},
        }
    ] if volume_key_arn else []  # fmt: skip
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "StartThisModelsMonitorJobs",
                    "Effect": "Allow",
                    "Action": ["sagemaker:CreateProcessingJob", "sagemaker:AddTags"],
                    "Resource": f"arn:aws:sagemaker:{region}:{account}:processing-job/{prefix}-*",
                },
                {
                    "Sid": "PassOnlyTheJobsRoleToSageMaker",
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": job_role_arn,
                    "Condition": {"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
                },
                *grant,
            ],
        }
    )


def scheduler_trust(account: str) -> str:
    """Scheduler may assume the role for schedules of this account only (confused deputy)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "scheduler.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                }
            ],
        }
    )


class ScheduledMonitor(pulumi.ComponentResource):
    """`mlops monitor` on one endpoint's captures, run by EventBridge Scheduler on a schedule."""

    schedule: aws.scheduler.Schedule

    def __init__(
        self, name: str, args: ScheduledMonitorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:ScheduledMonitor", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=invoke)
        region = aws.get_region_output(opts=invoke)
        prefix = monitor_job_prefix(args.model, args.environment)
        job_role = workload_role(
            f"{name}-job",
            f"{name}-job-policy",
            environment=args.environment,
            boundary=args.boundary_arn,
            trust=assume_role_policy(SAGEMAKER_SERVICE),
            policy=pulumi.Output.all(
                args.bucket_arn, args.key_arn, args.repository_arn, args.endpoint_name
            ).apply(
                lambda a: job_policy(
                    bucket_arn=a[0],
                    key_arn=a[1],
                    repository_arn=a[2],
                    model=args.model,
                    environment=args.environment,
                    endpoint=a[3],
                    sharded=args.instance_count > 1,
                )
            ),
            tags=args.tags,
            opts=child,
        )
        scheduler_role = workload_role(
            f"{name}-cron",
            f"{name}-cron-policy",
            environment=args.environment,
            boundary=args.boundary_arn,
            trust=identity.account_id.apply(scheduler_trust),
            policy=pulumi.Output.all(
                region.region, identity.account_id, job_role.arn, args.key_arn
            ).apply(
                lambda a: scheduler_policy(
                    region=a[0],
                    account=a[1],
                    job_role_arn=a[2],
                    prefix=prefix,
                    # The request's own rule: a volume key only without instance storage.
                    volume_key_arn=None if has_instance_storage(args.instance_type) else a[3],
                )
            ),
            tags=args.tags,
            opts=child,
        )
        request = pulumi.Output.all(
            args.endpoint_name, args.bucket_name, args.key_arn, job_role.arn, args.image_uri,
            region.region,
        ).apply(
            lambda a: json.dumps(
                processing_request(
                    model=args.model, version=args.version, environment=args.environment,
                    endpoint=a[0], bucket=a[1], key_arn=a[2], role_arn=a[3], image_uri=a[4],
                    region=a[5], schedule=args.schedule, instance_type=args.instance_type,
                    tags=args.tags, instance_count=args.instance_count,
                ),
                sort_keys=True,
            )
        )  # fmt: skip
        self.schedule = aws.scheduler.Schedule(
            f"{name}-schedule",
            name=prefix,
            description=f"mlops monitor of {args.model} in {args.environment} (drift metrics)",
            schedule_expression=scheduler_expression(args.schedule),
            schedule_expression_timezone="UTC",
            flexible_time_window={"mode": "OFF"},
            target={
                "arn": PROCESSING_TARGET,
                "role_arn": scheduler_role.arn,
                "input": request,
                # A run that cannot start is retried briefly, then dropped: the next run reads
                # its own window, and the missing metric point is what the alarm treats as such.
                "retry_policy": {"maximum_retry_attempts": 2, "maximum_event_age_in_seconds": 900},
            },
            opts=child,
        )
        self.register_outputs({"schedule": self.schedule.name})
