"""The same serving image on Kubernetes, with the SageMaker container contract kept intact.

An init container (the serving image itself, which ships boto3) downloads the pinned version's
archive from the artifact store into ``/opt/ml/model``, exactly where SageMaker would put it, so
both targets run the same artifact. Pods run non-root with a read-only root filesystem in a
namespace that enforces the ``restricted`` Pod Security Standard; the network policy admits
traffic only on the serving port. Prometheus scrapes ``/metrics`` through the conventional
annotations, which need no CRD.

The objects themselves are built by ``pipelines.core.kubernetes_manifests`` (pure functions,
shared with ``mlops render kubernetes``); this component declares them. It always applies the
objects that bind the endpoint to the cloud (namespace, service account with the pod role, the
ConfigMap naming the bucket); the workload objects only when ``apply_workloads`` is set (stack
config ``kubernetesApply: pulumi``), else an Argo CD or Flux controller syncs them from git.

Canary path (``deployment`` flavour): while a rollout is in progress (``canary_weight`` set), a
``stable`` Deployment keeps the previous version and a ``canary`` Deployment runs the pinned one
behind the same Service, so traffic splits by pod count. Completing the rollout (stack config
``rollouts``) moves the stable Deployment to the pinned version and removes the canary. The
``kserve`` and ``rollout`` flavours hand the split to KServe and Argo Rollouts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.components.roles import workload_role
from pipelines.core.conventions import capture_prefix, model_data_key
from pipelines.core.definitions import Deployment
from pipelines.core.kubernetes_manifests import (
    EndpointSpec,
    Manifest,
    canary_replicas,
    cloud_binding_manifests,
    workload_manifests,
)

__all__ = ["KubernetesEndpoint", "KubernetesEndpointArgs", "canary_replicas"]


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
    # rollout flavour: analysis metric -> alert expression (pipelines.core.alert_rules).
    rollback_expressions: dict[str, str] = field(default_factory=dict)
    apply_workloads: bool = True  # False: an Argo CD or Flux controller syncs them from git

    def endpoint_spec(self) -> EndpointSpec:
        return EndpointSpec(
            model=self.model,
            version=self.version,
            environment=self.environment,
            owner=self.owner,
            endpoint_name=self.endpoint_name,
            deployment=self.deployment,
            image=self.image,
            capture_percent=self.capture_percent,
            previous_version=self.previous_version,
            canary_weight=self.canary_weight,
            steps=self.steps,
            bake_minutes=self.bake_minutes,
            monitoring_namespace=self.monitoring_namespace,
            prometheus_release=self.prometheus_release,
            rollback_expressions=self.rollback_expressions,
        )


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


# Core kinds as typed resources (so the provider knows their schema); the rest as custom ones.
_TYPED: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
}
# Pulumi resource names, stable across this refactoring so existing stacks update in place.
_SUFFIX = {
    "Namespace": "namespace",
    "ServiceAccount": "service-account",
    "ConfigMap": "cloud-config",
    "Service": "service",
    "ServiceMonitor": "service-monitor",
    "PodMonitor": "pod-monitor",
    "HorizontalPodAutoscaler": "hpa",
    "PodDisruptionBudget": "pdb",
    "NetworkPolicy": "network-policy",
    "InferenceService": "inference-service",
    "Rollout": "rollout",
    "AnalysisTemplate": "analysis-template",
}


def declare(name: str, manifest: Manifest, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """One manifest as a Pulumi resource; the field names are the API's, passed through."""
    kind, api_version = manifest["kind"], manifest["apiVersion"]
    rest = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    typed = _TYPED.get((api_version, kind))
    if typed is None:
        return k8s.apiextensions.CustomResource(
            name, api_version=api_version, kind=kind, opts=opts, **rest
        )
    if "automountServiceAccountToken" in rest:
        rest["automount_service_account_token"] = rest.pop("automountServiceAccountToken")
    return typed(name, opts=opts, **rest)


def resource_name(name: str, app: str, manifest: Manifest) -> str:
    """``<component>-<suffix>``, or ``<component>-<track>`` for the deployment flavour's two."""
    object_name = manifest["metadata"]["name"]
    if manifest["kind"] == "Deployment":
        return f"{name}-{object_name.removeprefix(app + '-')}"
    suffix = _SUFFIX[manifest["kind"]]
    if object_name != app and manifest["kind"] == "Service":
        suffix = f"{object_name.removeprefix(app + '-')}-service"
    return f"{name}-{suffix}"


class KubernetesEndpoint(pulumi.ComponentResource):
    """Cloud-bound objects always; the flavour's workload unless a controller syncs it."""

    namespace: pulumi.CustomResource
    objects: dict[str, pulumi.CustomResource]

    def __init__(
        self, name: str, args: KubernetesEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:KubernetesEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.endpoint_spec()
        app = spec.app
        role_arn: pulumi.Output[str] | None = None
        if args.oidc_provider_arn and args.oidc_issuer:
            role = workload_role(
                f"{name}-pod-role",
                f"{name}-pod-policy",
                environment=args.environment,
                boundary=args.boundary_arn,
                trust=irsa_trust_policy(
                    args.oidc_provider_arn, args.oidc_issuer, spec.namespace, app
                ),
                policy=pulumi.Output.all(args.bucket_arn, args.key_arn).apply(
                    lambda a: pod_policy(a[0], a[1], args.model, args.environment)
                ),
                tags=args.tags,
                opts=child,
            )
            role_arn = role.arn
        namespace, *bindings = cloud_binding_manifests(
            spec, args.bucket_name, args.region, role_arn
        )
        self.namespace = declare(f"{name}-namespace", namespace, child)
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.objects = {
            m["kind"]: declare(resource_name(name, app, m), m, in_namespace) for m in bindings
        }
        if args.apply_workloads:
            for manifest in workload_manifests(spec):
                key = resource_name(name, app, manifest)
                self.objects[key] = declare(key, manifest, in_namespace)

        self.service_name: pulumi.Output[str] = pulumi.Output.from_input(app)
        self.register_outputs({"namespace": spec.namespace, "service": self.service_name})
