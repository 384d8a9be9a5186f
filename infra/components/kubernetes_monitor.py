"""The drift monitor for `target: kubernetes`: a CronJob running the scheduled job's command.

The endpoint's pods capture to the same S3 layout as SageMaker, and the drift alarm, its
EventBridge rule and the retraining dispatch are the same for both targets, so the CronJob runs
exactly the command of the SageMaker Processing job (``scheduled_monitor.monitor_job_command``):
``mlops monitor --baseline`` in the project's image, publishing ``DriftDetected`` to CloudWatch.
It runs in the endpoint's namespace under its own service account, whose IAM role (IRSA) may
read only this endpoint's captures and this model's baselines. Its pods are locked down as the
serving pods are (restricted Pod Security Standard), and a network policy lets them reach only
DNS and HTTPS (S3, STS, CloudWatch).

With ``pod_count`` n > 1 (the stack's ``modelMonitorInstanceCount``, the same knob as the
Processing job's instances) each run is an Indexed Job of n pods, Kubernetes' engine for one
task split n ways: pod k (``JOB_COMPLETION_INDEX`` k, set by Kubernetes) runs the command with
``--shard auto`` and folds shard k+1/n, as host k+1 of a Processing job does
(``monitoring.cluster``). The manifest tells each pod the count and the run, which Kubernetes
does not: ``MLOPS_MONITOR_SHARD_COUNT`` is the Job's completions, and ``MLOPS_MONITOR_RUN_ID``
the Job's name, read from the ``batch.kubernetes.io/job-name`` label the Job controller puts on
its pods. That name (``<cron job>-<scheduled minute>``) is the same for every pod and retry of
a run and differs between runs, so the command's ``--shard-states`` holds
``$(MLOPS_MONITOR_RUN_ID)``, which Kubernetes expands in each pod as Scheduler expands its
execution id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.components.kubernetes_endpoint import irsa_trust_policy
from infra.components.roles import workload_role
from infra.components.scheduled_monitor import (
    MAX_RUNTIME_SECONDS,
    REPORT_PATH,
    job_policy,
    monitor_job_command,
    window_hours,
)
from pipelines.core.conventions import JOB_NAME_LABEL, MONITOR_RUN_ID, MONITOR_SHARD_COUNT, slug

SCRATCH = "/tmp"
RUN_AS_USER = 10001  # the image's `serving` user (serving/Dockerfile)
# What the pods' command holds where the run's id goes; Kubernetes expands it from the env.
RUN_REFERENCE = f"$({MONITOR_RUN_ID})"


@dataclass
class KubernetesMonitorArgs:
    model: str
    version: str
    environment: str
    owner: str
    namespace: str  # the endpoint's namespace
    endpoint_name: str
    schedule: str  # model.yaml's 5-field cron, which a CronJob takes as it is
    image: str
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    tags: dict[str, str]
    oidc_provider_arn: str
    oidc_issuer: str
    region: str | None = None
    boundary_arn: pulumi.Input[str] | None = None
    cpu: str = "500m"  # per pod
    memory: str = "1Gi"
    pod_count: int = 1  # > 1: an Indexed Job whose pods split the window by capture file


def job_spec(
    pod_count: int, template: k8s.core.v1.PodTemplateSpecArgsDict
) -> k8s.batch.v1.JobSpecArgsDict:
    """How each run's Job runs its pod ``template``: once, or as an Indexed Job of ``pod_count``.

    One pod is retried once. In an Indexed Job every index is retried once on its own
    (``backoffLimitPerIndex``), and the first index that fails again fails the Job at once
    (``maxFailedIndexes`` 0), which stops the other pods: the first pod would otherwise wait
    out its shard timeout for a state that cannot come. All n pods run at once, since the
    first one waits for the others.
    """
    if pod_count <= 1:
        return {
            "backoff_limit": 1,
            "active_deadline_seconds": MAX_RUNTIME_SECONDS,
            "template": template,
        }
    return {
        "completion_mode": "Indexed",
        "completions": pod_count,
        "parallelism": pod_count,
        "backoff_limit_per_index": 1,
        "max_failed_indexes": 0,
        "backoff_limit": pod_count,  # one retry per index, in total too
        # Above the first pod's shard timeout (SHARD_TIMEOUT_SECONDS): what outlasts it is a
        # run whose pods never all started or finished, and the deadline ends it.
        "active_deadline_seconds": MAX_RUNTIME_SECONDS,
        "template": template,
    }


def shard_env(pod_count: int, key_arn: pulumi.Input[str]) -> list[dict[str, Any]]:
    """What an Indexed Job's pod is told besides its index: the count, the run, the state key."""
    if pod_count <= 1:
        return []
    return [
        {"name": MONITOR_SHARD_COUNT, "value": str(pod_count)},
        {
            "name": MONITOR_RUN_ID,
            "value_from": {"field_ref": {"field_path": f"metadata.labels['{JOB_NAME_LABEL}']"}},
        },
        # The partial states are put with the key the reports are encrypted with.
        {"name": "MLOPS_MONITOR_KMS_KEY", "value": key_arn},
    ]


class KubernetesMonitor(pulumi.ComponentResource):
    """A CronJob, its service account and IRSA role, and its network policy."""

    cron_job: k8s.batch.v1.CronJob

    def __init__(
        self, name: str, args: KubernetesMonitorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:KubernetesMonitor", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = f"{slug(args.model)}-monitor"
        labels = {
            "app.kubernetes.io/name": account,
            "app.kubernetes.io/part-of": "mlops",
            "app.kubernetes.io/managed-by": "pulumi",
            "mlops/model": slug(args.model),
            "mlops/environment": slug(args.environment),
        }
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {
            "name": account,
            "namespace": args.namespace,
            "labels": labels,
            "annotations": {"mlops/owner": args.owner},
        }
        role = workload_role(
            f"{name}-pod",
            f"{name}-pod-policy",
            environment=args.environment,
            boundary=args.boundary_arn,
            trust=irsa_trust_policy(
                args.oidc_provider_arn, args.oidc_issuer, args.namespace, account
            ),
            policy=pulumi.Output.all(args.bucket_arn, args.key_arn).apply(
                lambda a: job_policy(
                    bucket_arn=a[0],
                    key_arn=a[1],
                    repository_arn=None,
                    model=args.model,
                    environment=args.environment,
                    endpoint=args.endpoint_name,
                    sharded=args.pod_count > 1,
                )
            ),
            tags=args.tags,
            opts=child,
        )
        k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={
                **metadata,
                "annotations": {"mlops/owner": args.owner, "eks.amazonaws.com/role-arn": role.arn},
            },
            automount_service_account_token=False,  # IRSA projects its own token
            opts=child,
        )
        command = pulumi.Output.from_input(args.bucket_name).apply(
            lambda bucket: monitor_job_command(
                args.model, args.environment, args.endpoint_name, bucket, args.version,
                window_hours(args.schedule), args.pod_count, RUN_REFERENCE,
            )
        )  # fmt: skip
        env = [
            {"name": "MLOPS_HOME", "value": f"{SCRATCH}/mlops"},
            {"name": "MLOPS_MONITOR_ENVIRONMENT", "value": args.environment},
            *shard_env(args.pod_count, args.key_arn),
        ]
        if args.region:
            env.append({"name": "AWS_DEFAULT_REGION", "value": args.region})
        container: k8s.core.v1.ContainerArgsDict = {
            "name": "monitor",
            "image": args.image,
            # The report goes to scratch: the CloudWatch metric is the result that matters.
            "command": command.apply(
                lambda c: [w.replace(REPORT_PATH, f"{SCRATCH}/report") for w in c]
            ),
            "env": env,  # type: ignore[typeddict-item]
            "resources": {
                "requests": {"cpu": args.cpu, "memory": args.memory},
                "limits": {"memory": args.memory},
            },
            "security_context": {
                "allow_privilege_escalation": False,
                "read_only_root_filesystem": True,
                "run_as_non_root": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volume_mounts": [{"name": "scratch", "mount_path": SCRATCH}],
        }
        pod: k8s.core.v1.PodTemplateSpecArgsDict = {
            "metadata": {"labels": labels},
            "spec": {
                "service_account_name": account,
                "restart_policy": "Never",
                "security_context": {
                    "run_as_non_root": True,
                    "run_as_user": RUN_AS_USER,
                    "seccomp_profile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": [{"name": "scratch", "empty_dir": {}}],
            },
        }
        self.cron_job = k8s.batch.v1.CronJob(
            f"{name}-cron-job",
            metadata=metadata,
            spec={
                "schedule": args.schedule,
                "time_zone": "Etc/UTC",
                # One run at a time; a run missed by more than its window is skipped, since the
                # next one reads its own window.
                "concurrency_policy": "Forbid",
                "starting_deadline_seconds": 600,
                "successful_jobs_history_limit": 3,
                "failed_jobs_history_limit": 3,
                "job_template": {
                    "metadata": {"labels": labels},
                    "spec": job_spec(args.pod_count, pod),
                },
            },
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata=metadata,
            spec={
                "pod_selector": {"match_labels": {"app.kubernetes.io/name": account}},
                "policy_types": ["Ingress", "Egress"],
                "ingress": [],  # nothing calls the monitor
                "egress": [
                    {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                    {"ports": [{"port": 443, "protocol": "TCP"}]},
                ],
            },
            opts=child,
        )
        self.register_outputs({"cron_job": account})
