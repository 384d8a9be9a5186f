"""The same serving image on Kubernetes, with the SageMaker container contract kept intact.

An init container (the serving image itself, which ships boto3) downloads the pinned version's
archive from the artifact store into ``/opt/ml/model``, exactly where SageMaker would put it, so
both targets run the same artifact. Pods run non-root with a read-only root filesystem in a
namespace that enforces the ``restricted`` Pod Security Standard; the network policy admits
traffic only on the serving port. Prometheus scrapes ``/metrics`` through the conventional
annotations, which need no CRD.

Canary path: while a rollout is in progress (``canary_weight`` set), a ``stable`` Deployment
keeps the previous version and a ``canary`` Deployment runs the pinned one behind the same
Service, so traffic splits by pod count (the canary's pods are sized against the stable
Deployment's minimum; the HPA owns the stable replica count, so Pulumi never resets it).
Completing the rollout (stack config ``rollouts``) moves the stable Deployment to the pinned
version and removes the canary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.roles import workload_role
from pipelines.core.conventions import capture_prefix, model_data_key, slug
from pipelines.core.definitions import Deployment

PORT = 8080
MODEL_DIR = "/opt/ml/model"
VARIANT = "AllTraffic"
USER_ID = 10001  # the serving image's user (serving/Dockerfile)
CPU_TARGET_PERCENT = 70
# The image ships boto3; extracting with filter="data" refuses links and paths outside the dir.
DOWNLOAD_SCRIPT = (
    "import os, tarfile, tempfile, boto3\n"
    "with tempfile.TemporaryFile() as f:\n"
    "    boto3.client('s3').download_fileobj(\n"
    "        os.environ['MODEL_BUCKET'], os.environ['MODEL_KEY'], f\n"
    "    )\n"
    "    f.seek(0)\n"
    f"    tarfile.open(fileobj=f).extractall('{MODEL_DIR}', filter='data')\n"
)


@dataclass
class KubernetesEndpointArgs:
    model: str
    version: str
    environment: str
    owner: str
    endpoint_name: str
    deployment: Deployment
    image: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    tags: dict[str, str]
    capture_percent: int = 100
    previous_version: str | None = None
    canary_weight: int | None = None
    steps: tuple[int, ...] = (100,)
    bake_minutes: int = 0
    monitoring_namespace: str = "monitoring"
    oidc_provider_arn: str | None = None  # EKS: IAM roles for service accounts
    oidc_issuer: str | None = None  # e.g. oidc.eks.eu-west-1.amazonaws.com/id/ABC
    region: str | None = None
    boundary_arn: pulumi.Input[str] | None = None  # the stack's WorkloadBoundary
    # The Prometheus Operator's selector label (kube-prometheus-stack: release=<helm release>).
    prometheus_release: str = "kube-prometheus-stack"


def canary_replicas(stable: int, weight: int) -> int:
    """Pods for the canary so that its share of pods is as close to ``weight`` as it can be."""
    return max(1, round(stable * weight / (100 - weight))) if weight < 100 else stable


def irsa_trust_policy(provider_arn: str, issuer: str, namespace: str, account: str) -> str:
    """Only this namespace's service account, through the cluster's OIDC issuer, may assume."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


def pod_policy(bucket_arn: str, key_arn: str, model: str, environment: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"{bucket_arn}/{model_data_key(model, '*')}",
                },
                {
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"{bucket_arn}/{capture_prefix(environment)}/*",
                },
                {
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": key_arn,
                },
            ],
        }
    )


class KubernetesEndpoint(pulumi.ComponentResource):
    """Namespace, service account, Deployments, Service, HPA, PDB and NetworkPolicy."""

    namespace: k8s.core.v1.Namespace
    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(
        self, name: str, args: KubernetesEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:KubernetesEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        app = slug(args.model)
        ns_name = args.endpoint_name
        labels = {
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/part-of": "mlops",
            "app.kubernetes.io/managed-by": "pulumi",
            "mlops/model": app,
            "mlops/environment": slug(args.environment),
        }
        # Label values allow no '@'; the owner (often an e-mail address) is an annotation.
        annotations = {"mlops/owner": args.owner}
        # The Service, autoscaler, disruption budget and network policy share the app's name.
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {
            "name": app,
            "namespace": ns_name,
            "labels": labels,
            "annotations": annotations,
        }
        selector = {"app.kubernetes.io/name": app}
        autoscaling = args.deployment.autoscaling
        minimum = max(autoscaling.min_instances, 1)
        maximum = max(autoscaling.max_instances, minimum)

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": ns_name,
                "labels": {
                    **labels,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
                "annotations": annotations,
            },
            opts=child,
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])

        account_annotations = dict(annotations)
        if args.oidc_provider_arn and args.oidc_issuer:
            role = workload_role(
                f"{name}-pod-role",
                f"{name}-pod-policy",
                environment=args.environment,
                boundary=args.boundary_arn,
                trust=irsa_trust_policy(args.oidc_provider_arn, args.oidc_issuer, ns_name, app),
                policy=pulumi.Output.all(args.bucket_arn, args.key_arn).apply(
                    lambda a: pod_policy(a[0], a[1], args.model, args.environment)
                ),
                tags=args.tags,
                opts=child,
            )
            account_annotations["eks.amazonaws.com/role-arn"] = role.arn  # type: ignore[assignment]
        k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={
                "name": app,
                "namespace": ns_name,
                "labels": labels,
                "annotations": account_annotations,
            },
            automount_service_account_token=False,
            opts=in_namespace,
        )

        canary = args.canary_weight is not None and args.previous_version is not None
        stable_version = args.previous_version if canary else args.version
        assert stable_version is not None
        self.deployments = {
            "stable": self._deployment(
                f"{name}-stable", args, ns_name, app, "stable", stable_version,
                labels, annotations, replicas=None, opts=in_namespace,
            )
        }  # fmt: skip
        if canary:
            assert args.canary_weight is not None
            self.deployments["canary"] = self._deployment(
                f"{name}-canary", args, ns_name, app, "canary", args.version,
                labels, annotations, replicas=canary_replicas(minimum, args.canary_weight),
                opts=in_namespace,
            )  # fmt: skip

        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata,
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "target_port": "http", "protocol": "TCP"}],
            },
            opts=in_namespace,
        )
        # The Prometheus Operator ignores prometheus.io/* annotations; it scrapes what a
        # ServiceMonitor selects, and only ServiceMonitors its Prometheus selects (by label).
        k8s.apiextensions.CustomResource(
            f"{name}-service-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={**metadata, "labels": {**labels, "release": args.prometheus_release}},
            spec={
                "selector": {"matchLabels": selector},
                "namespaceSelector": {"matchNames": [ns_name]},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
            },
            opts=in_namespace,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=metadata,
            spec={
                "scale_target_ref": {
                    "api_version": "apps/v1",
                    "kind": "Deployment",
                    "name": f"{app}-stable",
                },
                "min_replicas": minimum,
                "max_replicas": maximum,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "average_utilization": CPU_TARGET_PERCENT,
                            },
                        },
                    }
                ],
            },
            opts=in_namespace,
        )
        budget: k8s.policy.v1.PodDisruptionBudgetSpecArgsDict = {
            "selector": {"match_labels": selector}
        }
        if minimum >= 2:
            budget["min_available"] = 1
        else:
            budget["max_unavailable"] = 1
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=metadata,
            spec=budget,
            opts=in_namespace,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata=metadata,
            spec={
                "pod_selector": {"match_labels": selector},
                "policy_types": ["Ingress", "Egress"],
                "ingress": [
                    {
                        "from_": [
                            {"namespace_selector": {"match_labels": {"mlops/access": "true"}}},
                            {
                                "namespace_selector": {
                                    "match_labels": {
                                        "kubernetes.io/metadata.name": args.monitoring_namespace
                                    }
                                }
                            },
                        ],
                        "ports": [{"port": PORT, "protocol": "TCP"}],
                    }
                ],
                "egress": [
                    # DNS, and HTTPS to S3 and STS for the model download and captures.
                    {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                    {"ports": [{"port": 443, "protocol": "TCP"}]},
                ],
            },
            opts=in_namespace,
        )

        self.service_name: pulumi.Output[str] = self.service.metadata.apply(lambda m: m.name or app)
        self.register_outputs({"namespace": ns_name, "service": self.service_name})

    def _deployment(
        self,
        name: str,
        args: KubernetesEndpointArgs,
        namespace: str,
        app: str,
        track: str,
        version: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        replicas: int | None,
        opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        pod_labels = {**labels, "mlops/track": track, "mlops/version": version}
        resources = args.deployment.resources
        environment: list[k8s.core.v1.EnvVarArgsDict] = [
            {"name": "MLOPS_SERVE_HOST", "value": "0.0.0.0"},
            {"name": "MLOPS_SERVE_MODEL_URI", "value": MODEL_DIR},
            {
                "name": "MLOPS_SERVE_CAPTURE_DESTINATION",
                "value": pulumi.Output.concat(
                    "s3://", args.bucket_name, "/", capture_prefix(args.environment)
                ),
            },
            {"name": "MLOPS_SERVE_CAPTURE_PERCENT", "value": str(args.capture_percent)},
            {"name": "MLOPS_SERVE_ENDPOINT_NAME", "value": args.endpoint_name},
            {"name": "MLOPS_SERVE_VARIANT_NAME", "value": VARIANT},
        ]
        init_env: list[k8s.core.v1.EnvVarArgsDict] = [
            {"name": "MODEL_BUCKET", "value": args.bucket_name},
            {"name": "MODEL_KEY", "value": model_data_key(args.model, version)},
        ]
        if args.region:
            environment.append({"name": "AWS_REGION", "value": args.region})
            init_env.append({"name": "AWS_REGION", "value": args.region})
        container_security: k8s.core.v1.SecurityContextArgsDict = {
            "allow_privilege_escalation": False,
            "read_only_root_filesystem": True,
            "run_as_non_root": True,
            "capabilities": {"drop": ["ALL"]},
        }
        probe_get: k8s.core.v1.HTTPGetActionArgsDict = {"path": "/ping", "port": "http"}
        deployment_annotations = {
            **annotations,
            "mlops/rollout-steps": ",".join(str(s) for s in args.steps),
            "mlops/bake-minutes": str(args.bake_minutes),
        }
        spec: k8s.apps.v1.DeploymentSpecArgsDict = {
            "selector": {"match_labels": {"app.kubernetes.io/name": app, "mlops/track": track}},
            "strategy": {
                "type": "RollingUpdate",
                "rolling_update": {"max_surge": 1, "max_unavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": annotations,
                },
                "spec": {
                    "service_account_name": app,
                    "automount_service_account_token": False,
                    "security_context": {
                        "run_as_non_root": True,
                        "run_as_user": USER_ID,
                        "run_as_group": USER_ID,
                        "fs_group": USER_ID,
                        "seccomp_profile": {"type": "RuntimeDefault"},
                    },
                    "init_containers": [
                        {
                            "name": "download-model",
                            "image": args.image,
                            "command": ["python", "-c", DOWNLOAD_SCRIPT],
                            "env": init_env,
                            "security_context": container_security,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "volume_mounts": [
                                {"name": "model", "mount_path": MODEL_DIR},
                                {"name": "tmp", "mount_path": "/tmp"},
                            ],
                        }
                    ],
                    "containers": [
                        {
                            "name": "serve",
                            "image": args.image,
                            "args": ["serve"],
                            "ports": [{"name": "http", "container_port": PORT, "protocol": "TCP"}],
                            "env": environment,
                            "resources": {
                                "requests": {"cpu": resources.cpu, "memory": resources.memory},
                                # No CPU limit (throttling shows as latency); memory is capped.
                                "limits": {"memory": resources.memory},
                            },
                            "startup_probe": {
                                "http_get": probe_get,
                                "period_seconds": 5,
                                "failure_threshold": 60,
                            },
                            "readiness_probe": {
                                "http_get": probe_get,
                                "period_seconds": 5,
                                "failure_threshold": 2,
                            },
                            "liveness_probe": {
                                "http_get": probe_get,
                                "period_seconds": 15,
                                "failure_threshold": 4,
                                "timeout_seconds": 3,
                            },
                            "security_context": container_security,
                            "volume_mounts": [
                                {"name": "model", "mount_path": MODEL_DIR, "read_only": True},
                                {"name": "tmp", "mount_path": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "model", "empty_dir": {"size_limit": "2Gi"}},
                        {"name": "tmp", "empty_dir": {"size_limit": "1Gi"}},
                    ],
                },
            },
        }
        if replicas is not None:
            spec["replicas"] = replicas
        return k8s.apps.v1.Deployment(
            name,
            metadata={
                "name": f"{app}-{track}",
                "namespace": namespace,
                "labels": pod_labels,
                "annotations": deployment_annotations,
            },
            spec=spec,
            opts=opts,
        )
