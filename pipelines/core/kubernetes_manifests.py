"""The Kubernetes objects of one model's endpoint, as plain manifests (dicts, API field names).

One definition, two appliers: the Pulumi component (``infra/components/kubernetes_endpoint.py``)
declares each manifest as a resource, and ``mlops render kubernetes`` writes them as YAML for an
Argo CD or Flux controller to sync. Both call these functions, so what the controller applies is
what Pulumi would have applied. Values only Pulumi knows (the bucket name, the pod role's ARN)
live in the objects Pulumi always owns (:func:`cloud_binding_manifests`); the workload reads them
from a ConfigMap, so its manifests depend on git alone.

Flavours (``deployment.kubernetes.flavor`` in ``model.yaml``):

- ``deployment``: a ``stable`` and, while a rollout is in progress, a ``canary`` Deployment behind
  one Service, traffic split by pod count, the HPA on the stable one.
- ``kserve``: an InferenceService whose custom predictor is the serving image; KServe (serverless
  mode, on Knative) splits traffic by ``canaryTrafficPercent`` and scales on requests per second.
- ``rollout``: an Argo Rollouts Rollout walking ``model.yaml``'s canary steps, with a background
  analysis whose Prometheus queries are the alert rules' latency and error-rate expressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipelines.core.alert_rules import scoped_to_job
from pipelines.core.conventions import capture_prefix, model_data_key, slug
from pipelines.core.definitions import Deployment, KServeFlavor, RolloutFlavor

Manifest = dict[str, Any]

PORT = 8080
MODEL_DIR = "/opt/ml/model"
VARIANT = "AllTraffic"
USER_ID = 10001  # the serving image's user (serving/Dockerfile)
CPU_TARGET_PERCENT = 70
# The SageMaker contract's health check, and the Open Inference Protocol's (KServe speaks OIP).
PING_PATH = "/ping"
OIP_LIVE_PATH = "/v2/health/live"
OIP_READY_PATH = "/v2/health/ready"
ROLLOUTS_API = "argoproj.io/v1alpha1"
KSERVE_API = "serving.kserve.io/v1beta1"
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


@dataclass(frozen=True)
class EndpointSpec:
    """Everything the workload objects of one endpoint depend on (git and stack settings)."""

    model: str
    version: str
    environment: str
    owner: str
    endpoint_name: str
    deployment: Deployment
    image: Any  # a string, or a Pulumi Output when the component builds it
    capture_percent: int = 100
    previous_version: str | None = None
    canary_weight: int | None = None
    steps: tuple[int, ...] = (100,)
    bake_minutes: int = 0
    monitoring_namespace: str = "monitoring"
    # The Prometheus Operator's selector label (kube-prometheus-stack: release=<helm release>).
    prometheus_release: str = "kube-prometheus-stack"
    # rollout flavour: analysis metric name -> the alert expression (pipelines.core.alert_rules).
    rollback_expressions: dict[str, str] = field(default_factory=dict)
    managed_by: str = "pulumi"

    @property
    def app(self) -> str:
        return slug(self.model)

    @property
    def namespace(self) -> str:
        return self.endpoint_name

    @property
    def prometheus_address(self) -> str:
        # kube-prometheus-stack names its Prometheus Service <release>-prometheus.
        return f"http://{self.prometheus_release}-prometheus.{self.monitoring_namespace}.svc:9090"


def canary_replicas(stable: int, weight: int) -> int:
    """Pods for the canary so that its share of pods is as close to ``weight`` as it can be."""
    return max(1, round(stable * weight / (100 - weight))) if weight < 100 else stable


def cloud_config_name(spec: EndpointSpec) -> str:
    return f"{spec.app}-cloud"


def labels(spec: EndpointSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.app,
        "app.kubernetes.io/part-of": "mlops",
        "app.kubernetes.io/managed-by": spec.managed_by,
        "mlops/model": spec.app,
        "mlops/environment": slug(spec.environment),
    }


def _annotations(spec: EndpointSpec) -> dict[str, str]:
    # Label values allow no '@'; the owner (often an e-mail address) is an annotation.
    return {"mlops/owner": spec.owner}


def _metadata(spec: EndpointSpec, name: str | None = None, **extra_labels: str) -> dict[str, Any]:
    return {
        "name": name or spec.app,
        "namespace": spec.namespace,
        "labels": {**labels(spec), **extra_labels},
        "annotations": _annotations(spec),
    }


def _minimum_maximum(spec: EndpointSpec) -> tuple[int, int]:
    autoscaling = spec.deployment.autoscaling
    minimum = max(autoscaling.min_instances, 1)
    return minimum, max(autoscaling.max_instances, minimum)


def cloud_binding_manifests(
    spec: EndpointSpec, bucket_name: Any, region: str | None, role_arn: Any | None
) -> list[Manifest]:
    """The objects that bind the endpoint to its cloud resources; Pulumi always owns these.

    Namespace (``restricted`` Pod Security Standard), the service account the pod role trusts,
    and a ConfigMap with the bucket and region the workload reads through ``envFrom``.
    """
    account_annotations: dict[str, Any] = dict(_annotations(spec))
    if role_arn is not None:
        account_annotations["eks.amazonaws.com/role-arn"] = role_arn
    cloud: dict[str, Any] = {
        "MODEL_BUCKET": bucket_name,
        "MLOPS_SERVE_CAPTURE_DESTINATION": _concat(
            "s3://", bucket_name, "/", capture_prefix(spec.environment)
        ),
    }
    if region:
        cloud["AWS_REGION"] = region
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": spec.namespace,
                "labels": {
                    **labels(spec),
                    "app.kubernetes.io/managed-by": "pulumi",
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
                "annotations": _annotations(spec),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {**_metadata(spec), "annotations": account_annotations},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(spec, cloud_config_name(spec)),
            "data": cloud,
        },
    ]


def _concat(*parts: Any) -> Any:
    """Joins strings; a Pulumi Output among them is joined by Pulumi (no import here)."""
    if all(isinstance(p, str) for p in parts):
        return "".join(parts)
    output = next(p for p in parts if not isinstance(p, str))
    return type(output).concat(*parts)


def workload_manifests(spec: EndpointSpec) -> list[Manifest]:
    """The objects that run and expose the model, for the model's flavour, in a stable order."""
    flavor = spec.deployment.kubernetes
    if isinstance(flavor, KServeFlavor):
        return _kserve(spec)
    if isinstance(flavor, RolloutFlavor):
        return _rollout(spec, flavor)
    return _deployments(spec)


# --- the pod, shared by every flavour --------------------------------------------------------


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _serving_env(spec: EndpointSpec) -> list[dict[str, str]]:
    return [
        {"name": "MLOPS_SERVE_HOST", "value": "0.0.0.0"},
        {"name": "MLOPS_SERVE_MODEL_URI", "value": MODEL_DIR},
        {"name": "MLOPS_SERVE_CAPTURE_PERCENT", "value": str(spec.capture_percent)},
        {"name": "MLOPS_SERVE_ENDPOINT_NAME", "value": spec.endpoint_name},
        {"name": "MLOPS_SERVE_VARIANT_NAME", "value": VARIANT},
    ]


def _env_from(spec: EndpointSpec) -> list[dict[str, Any]]:
    return [{"configMapRef": {"name": cloud_config_name(spec)}}]


def _download_container(spec: EndpointSpec, version: str) -> dict[str, Any]:
    return {
        "name": "download-model",
        "image": spec.image,
        "command": ["python", "-c", DOWNLOAD_SCRIPT],
        "env": [{"name": "MODEL_KEY", "value": model_data_key(spec.model, version)}],
        "envFrom": _env_from(spec),
        "securityContext": _container_security(),
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "volumeMounts": [
            {"name": "model", "mountPath": MODEL_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _probes(live: str, ready: str, port: int | str) -> dict[str, Any]:
    return {
        "startupProbe": {
            "httpGet": {"path": ready, "port": port},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "readinessProbe": {
            "httpGet": {"path": ready, "port": port},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": live, "port": port},
            "periodSeconds": 15,
            "failureThreshold": 4,
            "timeoutSeconds": 3,
        },
    }


def _serving_container(
    spec: EndpointSpec, name: str, port: dict[str, Any], probes: dict[str, Any]
) -> dict[str, Any]:
    resources = spec.deployment.resources
    return {
        "name": name,
        "image": spec.image,
        "args": ["serve"],
        "ports": [port],
        "env": _serving_env(spec),
        "envFrom": _env_from(spec),
        "resources": {
            "requests": {"cpu": resources.cpu, "memory": resources.memory},
            # No CPU limit (throttling shows as latency); memory is capped.
            "limits": {"memory": resources.memory},
        },
        **probes,
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


_VOLUMES = [
    {"name": "model", "emptyDir": {"sizeLimit": "2Gi"}},
    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
]


def _pod_spec(spec: EndpointSpec, version: str) -> dict[str, Any]:
    """The pod of the ``deployment`` and ``rollout`` flavours (SageMaker's /ping for health)."""
    return {
        "serviceAccountName": spec.app,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [_download_container(spec, version)],
        "containers": [
            _serving_container(
                spec,
                "serve",
                {"name": "http", "containerPort": PORT, "protocol": "TCP"},
                _probes(PING_PATH, PING_PATH, "http"),
            )
        ],
        "volumes": _VOLUMES,
    }


def _service(spec: EndpointSpec, name: str | None = None) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, name),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": spec.app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _service_monitor(spec: EndpointSpec) -> Manifest:
    # The Prometheus Operator ignores prometheus.io/* annotations; it scrapes what a
    # ServiceMonitor selects, and only ServiceMonitors its Prometheus selects (by label).
    # Prometheus names each target's job after its Service: the rollout's analysis relies on it.
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(spec, release=spec.prometheus_release),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.app}},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    }


def _hpa(spec: EndpointSpec, api_version: str, kind: str, name: str) -> Manifest:
    minimum, maximum = _minimum_maximum(spec)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": name},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": CPU_TARGET_PERCENT,
                        },
                    },
                }
            ],
        },
    }


def _pdb(spec: EndpointSpec) -> Manifest:
    minimum, _ = _minimum_maximum(spec)
    budget: dict[str, Any] = {"selector": {"matchLabels": {"app.kubernetes.io/name": spec.app}}}
    if minimum >= 2:
        budget["minAvailable"] = 1
    else:
        budget["maxUnavailable"] = 1
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec),
        "spec": budget,
    }


def _network_policy(spec: EndpointSpec) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": spec.app}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"mlops/access": "true"}}},
                        {
                            "namespaceSelector": {
                                "matchLabels": {
                                    "kubernetes.io/metadata.name": spec.monitoring_namespace
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
    }


def _rollout_annotations(spec: EndpointSpec) -> dict[str, str]:
    return {
        **_annotations(spec),
        "mlops/rollout-steps": ",".join(str(s) for s in spec.steps),
        "mlops/bake-minutes": str(spec.bake_minutes),
    }


# --- deployment ------------------------------------------------------------------------------


def _deployments(spec: EndpointSpec) -> list[Manifest]:
    canary = spec.canary_weight is not None and spec.previous_version is not None
    stable_version = spec.previous_version if canary else spec.version
    assert stable_version is not None
    objects = [_deployment(spec, "stable", stable_version, replicas=None)]
    if canary:
        assert spec.canary_weight is not None
        minimum, _ = _minimum_maximum(spec)
        replicas = canary_replicas(minimum, spec.canary_weight)
        objects.append(_deployment(spec, "canary", spec.version, replicas=replicas))
    return [
        *objects,
        _service(spec),
        _service_monitor(spec),
        # The HPA owns the stable replica count, so neither applier ever resets it.
        _hpa(spec, "apps/v1", "Deployment", f"{spec.app}-stable"),
        _pdb(spec),
        _network_policy(spec),
    ]


def _deployment(spec: EndpointSpec, track: str, version: str, replicas: int | None) -> Manifest:
    pod_labels = {**labels(spec), "mlops/track": track, "mlops/version": version}
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app.kubernetes.io/name": spec.app, "mlops/track": track}},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {"labels": pod_labels, "annotations": _annotations(spec)},
            "spec": _pod_spec(spec, version),
        },
    }
    if replicas is not None:
        body["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{spec.app}-{track}",
            "namespace": spec.namespace,
            "labels": pod_labels,
            "annotations": _rollout_annotations(spec),
        },
        "spec": body,
    }


# --- kserve ----------------------------------------------------------------------------------


def kserve_scale_target(deployment: Deployment) -> int:
    """Requests per second per replica, from the per-minute target SageMaker's autoscaling uses."""
    return max(1, math.ceil(deployment.autoscaling.target_invocations_per_instance / 60))


def _kserve(spec: EndpointSpec) -> list[Manifest]:
    minimum, maximum = _minimum_maximum(spec)
    # Knative allows one container port, named h2c or http1 (or unnamed), and probes on it.
    container = _serving_container(
        spec,
        "kserve-container",
        {"containerPort": PORT, "protocol": "TCP"},
        _probes(OIP_LIVE_PATH, OIP_READY_PATH, PORT),
    )
    predictor: dict[str, Any] = {
        "minReplicas": minimum,
        "maxReplicas": maximum,
        "scaleMetric": "rps",
        "scaleTarget": kserve_scale_target(spec.deployment),
        "serviceAccountName": spec.app,
        "automountServiceAccountToken": False,
        "initContainers": [_download_container(spec, spec.version)],
        "containers": [container],
        "volumes": _VOLUMES,
        "labels": {"mlops/version": spec.version},
    }
    if spec.canary_weight is not None and spec.previous_version is not None:
        # KServe keeps the last ready revision for the rest of the traffic.
        predictor["canaryTrafficPercent"] = spec.canary_weight
    return [
        {
            "apiVersion": KSERVE_API,
            "kind": "InferenceService",
            "metadata": {
                **_metadata(spec),
                "annotations": {
                    **_rollout_annotations(spec),
                    # Canary traffic splitting is a serverless-mode (Knative) feature.
                    "serving.kserve.io/deploymentMode": "Serverless",
                },
            },
            "spec": {"predictor": predictor},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": _metadata(spec, release=spec.prometheus_release),
            "spec": {
                "selector": {"matchLabels": {"serving.kserve.io/inferenceservice": spec.app}},
                "namespaceSelector": {"matchNames": [spec.namespace]},
                "podMetricsEndpoints": [
                    {"targetPort": PORT, "path": "/metrics", "interval": "30s"}
                ],
            },
        },
        _pdb_kserve(spec),
    ]


def _pdb_kserve(spec: EndpointSpec) -> Manifest:
    pdb = _pdb(spec)
    pdb["spec"]["selector"] = {"matchLabels": {"serving.kserve.io/inferenceservice": spec.app}}
    return pdb


# --- rollout ---------------------------------------------------------------------------------


def analysis_template_name(spec: EndpointSpec) -> str:
    return f"{spec.app}-rollback"


def canary_service_name(spec: EndpointSpec) -> str:
    return f"{spec.app}-canary"


def rollout_steps(spec: EndpointSpec) -> list[dict[str, Any]]:
    """setWeight for each step short of 100, each followed by its bake (a timed pause)."""
    steps: list[dict[str, Any]] = []
    for weight in spec.steps:
        if weight >= 100:
            break
        steps.append({"setWeight": weight})
        if spec.bake_minutes:
            steps.append({"pause": {"duration": f"{spec.bake_minutes}m"}})
    return steps


def analysis_queries(spec: EndpointSpec) -> dict[str, str]:
    """Metric name -> PromQL: the alert expression, kept to the canary Service's job."""
    return {
        name: scoped_to_job(expression, "{{args.service-name}}")
        for name, expression in sorted(spec.rollback_expressions.items())
    }


def _rollout(spec: EndpointSpec, flavor: RolloutFlavor) -> list[Manifest]:
    if not spec.rollback_expressions:
        raise ValueError(
            f"{spec.model}: kubernetes.flavor rollout needs the alert rules' latency and "
            "error-rate expressions (monitoring/alerts), found none"
        )
    pod_labels = {**labels(spec), "mlops/version": spec.version}
    rollout = {
        "apiVersion": ROLLOUTS_API,
        "kind": "Rollout",
        "metadata": {**_metadata(spec), "annotations": _rollout_annotations(spec)},
        "spec": {
            # The HPA owns the replica count, as for the deployment flavour.
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.app}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": _annotations(spec)},
                "spec": _pod_spec(spec, spec.version),
            },
            "strategy": {
                "canary": {
                    "stableService": spec.app,
                    "canaryService": canary_service_name(spec),
                    "maxSurge": 1,
                    "maxUnavailable": 0,
                    "steps": rollout_steps(spec),
                    # Runs from the first step to the end; a failure aborts and rolls back.
                    "analysis": {
                        "templates": [{"templateName": analysis_template_name(spec)}],
                        "args": [{"name": "service-name", "value": canary_service_name(spec)}],
                    },
                }
            },
        },
    }
    template = {
        "apiVersion": ROLLOUTS_API,
        "kind": "AnalysisTemplate",
        "metadata": _metadata(spec, analysis_template_name(spec)),
        "spec": {
            "args": [{"name": "service-name"}],
            "metrics": [
                {
                    "name": name,
                    "interval": flavor.analysis_interval,
                    "failureLimit": flavor.failure_limit,
                    # The alert expression returns a series only while it would fire.
                    "successCondition": "len(result) == 0",
                    "provider": {
                        "prometheus": {"address": spec.prometheus_address, "query": query}
                    },
                }
                for name, query in analysis_queries(spec).items()
            ],
        },
    }
    return [
        rollout,
        template,
        _service(spec),
        _service(spec, canary_service_name(spec)),
        _service_monitor(spec),
        _hpa(spec, ROLLOUTS_API, "Rollout", spec.app),
        _pdb(spec),
        _network_policy(spec),
    ]
