"""Every Kubernetes object the program declares, as the manifest the provider would apply,
validated against the official OpenAPI schemas of a pinned Kubernetes release in strict mode
(unknown or misspelt fields fail, as the API server's field validation would).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pulumi_mocks import KUBERNETES_VERSION, REPO_ROOT, Run, policy_document, run_program

from infra.components.kubernetes_endpoint import (
    KubernetesEndpoint,
    KubernetesEndpointArgs,
    canary_replicas,
)
from infra.components.kubernetes_monitor import KubernetesMonitor, KubernetesMonitorArgs
from infra.components.monitoring import (
    Monitoring,
    MonitoringArgs,
    prometheus_rule_groups,
    read_monitoring_files,
)
from infra.components.roles import boundary_arn
from infra.components.scheduled_monitor import (
    REPORT_PATH,
    SHARD_TIMEOUT_SECONDS,
    monitor_job_command,
    window_hours,
)
from monitoring.cluster import check_run_states
from pipelines.core.conventions import (
    JOB_COMPLETION_INDEX,
    JOB_NAME_LABEL,
    MONITOR_RUN_ID,
    MONITOR_SHARD_COUNT,
    MONITORING_PREFIX,
    tags,
)
from pipelines.core.definitions import Deployment

pytestmark = pytest.mark.infra

ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/ABC"
EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
}


def endpoint_args(**overrides: Any) -> KubernetesEndpointArgs:
    values: dict[str, Any] = {
        "model": "penguins",
        "version": "5",
        "environment": "prod",
        "owner": "ml-platform@example.com",
        "endpoint_name": "penguins-prod",
        "deployment": Deployment.model_validate(
            {
                "target": "kubernetes",
                "resources": {"cpu": "250m", "memory": "512Mi"},
                "strategy": {"type": "canary", "canary_percent": 20, "bake_minutes": 10},
                "autoscaling": {"min_instances": 2, "max_instances": 6},
            }
        ),
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:abc123",
        "bucket_name": "mlops-prod-bucket",
        "bucket_arn": "arn:aws:s3:::mlops-prod-bucket",
        "key_arn": "arn:aws:kms:us-east-1:123456789012:key/k",
        "tags": tags("penguins", "prod", "ml-platform@example.com"),
        "previous_version": "4",
        "canary_weight": 20,
        "steps": (20, 100),
        "oidc_provider_arn": f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}",
        "oidc_issuer": ISSUER,
        "region": "us-east-1",
        "boundary_arn": boundary_arn("123456789012", "prod"),
    }
    values.update(overrides)
    return KubernetesEndpointArgs(**values)


@pytest.fixture(scope="module")
def canary_run() -> Run:
    return run_program(lambda: KubernetesEndpoint("penguins-prod", endpoint_args()), stack="prod")


@pytest.fixture(scope="module")
def monitoring_run() -> Run:
    alerts, dashboards = read_monitoring_files(REPO_ROOT / "monitoring")
    alerts = alerts or {"rules.yml": "groups: []\n"}
    dashboards = dashboards or {"model.json": "{}"}

    def program() -> None:
        Monitoring(
            "mlops-prod-monitoring",
            MonitoringArgs(
                environment="prod",
                tags=tags("shared", "prod", "ml-platform@example.com"),
                models=[],
                kubernetes_namespace="monitoring",
                alert_rules=alerts,
                dashboards=dashboards,
            ),
        )

    return run_program(program, stack="prod")


OPERATOR_API = "monitoring.coreos.com/v1"
CRD_VALIDATOR = REPO_ROOT / "tools" / "validate_crds.mjs"


def validate_crds(manifests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """The Prometheus Operator's CRD schemas, through npm @kubernetes-models/prometheus-operator."""
    return subprocess.run(
        ["node", str(CRD_VALIDATOR)],
        input=json.dumps(manifests),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CRD_VALIDATOR.parent,
    )


def test_every_manifest_is_valid_in_strict_mode(canary_run: Run, monitoring_run: Run) -> None:
    manifests = canary_run.kubernetes_manifests() + monitoring_run.kubernetes_manifests()
    custom = [m for m in manifests if m.get("apiVersion") == OPERATOR_API]
    assert {m["kind"] for m in manifests} >= EXPECTED_KINDS | {
        "ConfigMap",
        "ServiceMonitor",
        "PrometheusRule",
    }
    for manifest in manifests:
        if manifest not in custom:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    result = validate_crds(custom)
    assert result.returncode == 0, result.stderr


def test_the_crd_validator_refuses_a_malformed_object(monitoring_run: Run) -> None:
    rule = next(m for m in monitoring_run.kubernetes_manifests() if m["kind"] == "PrometheusRule")
    rule["spec"]["groups"][0]["rules"] = "not a list"
    result = validate_crds([rule])
    assert result.returncode == 1
    assert "PrometheusRule/mlops-alert-rules" in result.stderr and "must be array" in result.stderr


def test_prometheus_scrapes_the_service_through_a_service_monitor(canary_run: Run) -> None:
    manifests = canary_run.kubernetes_manifests()
    (monitor,) = [m for m in manifests if m["kind"] == "ServiceMonitor"]
    service = next(m for m in manifests if m["kind"] == "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    assert {"http"} <= port_names and monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    for deployment in (m for m in manifests if m["kind"] == "Deployment"):
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        assert not any(k.startswith("prometheus.io/") for k in annotations), "operator ignores"


def test_strict_validation_rejects_a_misspelt_field(canary_run: Run) -> None:
    """Guards the guard: without strict mode an unknown field would pass silently."""
    deployment = next(m for m in canary_run.kubernetes_manifests() if m["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_pods_keep_the_serving_contract_and_run_locked_down(canary_run: Run) -> None:
    for manifest in canary_run.kubernetes_manifests():
        if manifest["kind"] != "Deployment":
            continue
        pod = manifest["spec"]["template"]["spec"]
        serve = pod["containers"][0]
        assert serve["args"] == ["serve"] and serve["ports"][0]["containerPort"] == 8080
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert serve[probe]["httpGet"]["path"] == "/ping"
        assert {"name": "model", "mountPath": "/opt/ml/model", "readOnly": True} in serve[
            "volumeMounts"
        ]
        assert serve["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in [*pod["initContainers"], serve]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}


def test_the_canary_splits_traffic_by_pods_behind_one_service(canary_run: Run) -> None:
    manifests = canary_run.kubernetes_manifests()
    deployments = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}
    stable, canary = deployments["penguins-stable"], deployments["penguins-canary"]
    assert stable["metadata"]["labels"]["mlops/version"] == "4"
    assert canary["metadata"]["labels"]["mlops/version"] == "5"
    assert "replicas" not in stable["spec"], "the HPA owns the stable replica count"
    assert canary["spec"]["replicas"] == canary_replicas(2, 20)
    hpa = next(m for m in manifests if m["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "penguins-stable"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    service = next(m for m in manifests if m["kind"] == "Service")
    for deployment in (stable, canary):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
    init_env = {
        e["name"]: e["value"]
        for e in canary["spec"]["template"]["spec"]["initContainers"][0]["env"]
    }
    assert init_env["MODEL_KEY"] == "models/penguins/5/model.tar.gz"


def test_canary_replicas_approximate_the_weight() -> None:
    assert canary_replicas(9, 10) == 1
    assert canary_replicas(2, 50) == 2
    assert canary_replicas(1, 10) == 1, "at least one pod, or the canary gets no traffic"


def test_pods_assume_their_role_only_from_their_service_account(canary_run: Run) -> None:
    role = canary_run.one("aws:iam/role:Role")
    assert "system:serviceaccount:penguins-prod:penguins" in role.inputs["assumeRolePolicy"]
    account = next(m for m in canary_run.kubernetes_manifests() if m["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role.state["arn"]
    assert account["automountServiceAccountToken"] is False


def test_the_namespace_enforces_the_restricted_pod_security_standard(canary_run: Run) -> None:
    namespace = next(m for m in canary_run.kubernetes_manifests() if m["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policy_admits_only_the_serving_port(canary_run: Run) -> None:
    policy = next(m for m in canary_run.kubernetes_manifests() if m["kind"] == "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [8080]


def test_alert_rules_are_one_prometheus_rule_and_dashboards_a_labelled_config_map(
    monitoring_run: Run,
) -> None:
    objects = {m["metadata"]["name"]: m for m in monitoring_run.kubernetes_manifests()}
    rule = objects["mlops-alert-rules"]
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert objects["mlops-grafana-dashboards"]["metadata"]["labels"]["grafana_dashboard"] == "1"
    alerts, dashboards = read_monitoring_files(REPO_ROOT / "monitoring")
    if alerts:  # the same rules promtool checks: every group of every file, unchanged
        expected = [g for _, text in sorted(alerts.items()) for g in yaml.safe_load(text)["groups"]]
        assert rule["spec"]["groups"] == expected
        assert objects["mlops-grafana-dashboards"]["data"] == dashboards


def test_a_group_name_used_twice_across_rule_files_is_refused() -> None:
    text = "groups:\n- name: serving\n  rules: []\n"
    with pytest.raises(ValueError, match="group 'serving' twice"):
        prometheus_rule_groups({"a.yml": text, "b.yml": text})


def test_missing_monitoring_files_are_skipped(tmp_path: Path) -> None:
    assert read_monitoring_files(tmp_path / "monitoring") == ({}, {})


# --- the scheduled drift monitor ----------------------------------------------------------


def _monitor_with(pod_count: int) -> Run:
    args = KubernetesMonitorArgs(
        model="penguins",
        version="5",
        environment="prod",
        owner="ml-platform@example.com",
        namespace="penguins-prod",
        endpoint_name="penguins-prod",
        schedule="15 * * * *",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:abc123",
        bucket_name="mlops-prod-bucket",
        bucket_arn="arn:aws:s3:::mlops-prod-bucket",
        key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
        tags=tags("penguins", "prod", "ml-platform@example.com"),
        oidc_provider_arn=f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}",
        oidc_issuer=ISSUER,
        region="us-east-1",
        boundary_arn=boundary_arn("123456789012", "prod"),
        pod_count=pod_count,
    )
    return run_program(lambda: KubernetesMonitor("penguins-prod-monitor", args), stack="prod")


@pytest.fixture(scope="module")
def monitor_run() -> Run:
    return _monitor_with(1)


@pytest.fixture(scope="module")
def sharded_monitor_run() -> Run:
    return _monitor_with(3)


def test_the_monitor_cron_job_runs_the_processing_jobs_command(monitor_run: Run) -> None:
    """One drift loop for both targets: the same `mlops monitor --baseline ... --cloudwatch`."""
    manifests = monitor_run.kubernetes_manifests()
    assert {m["kind"] for m in manifests} == {"CronJob", "ServiceAccount", "NetworkPolicy"}
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    cron = next(m for m in manifests if m["kind"] == "CronJob")
    assert (cron["spec"]["schedule"], cron["spec"]["timeZone"]) == ("15 * * * *", "Etc/UTC")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    expected = monitor_job_command(
        "penguins", "prod", "penguins-prod", "mlops-prod-bucket", "5", window_hours("15 * * * *")
    )
    assert container["command"] == [w.replace(REPORT_PATH, "/tmp/report") for w in expected]
    assert pod["serviceAccountName"] == "penguins-monitor"
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["memory"]


def test_the_monitor_pods_role_trusts_only_its_service_account(monitor_run: Run) -> None:
    role = monitor_run.one("aws:iam/role:Role")
    trust = role.inputs["assumeRolePolicy"]
    assert "system:serviceaccount:penguins-prod:penguins-monitor" in trust
    account = next(m for m in monitor_run.kubernetes_manifests() if m["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role.state["arn"]
    policy = json.loads(monitor_run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    sids = {s["Sid"] for s in policy["Statement"]}
    assert "PublishThePlatformsMetricsOnly" in sids
    assert "PullTheProjectsImage" not in sids, "the nodes pull the image, not the pod"
    network = next(m for m in monitor_run.kubernetes_manifests() if m["kind"] == "NetworkPolicy")
    assert network["spec"]["ingress"] == [] and network["spec"]["policyTypes"] == [
        "Ingress",
        "Egress",
    ]


def _cron_job(run: Run) -> dict[str, Any]:
    return next(m for m in run.kubernetes_manifests() if m["kind"] == "CronJob")


def _kubernetes_expands(word: str, env: list[dict[str, Any]], values: dict[str, str]) -> str:
    """A command word as the kubelet runs it: each $(NAME) of a variable the container has
    replaced by that variable's value (``values`` for those set through the downward API)."""
    for variable in env:
        name = variable["name"]
        word = word.replace(f"$({name})", values.get(name, variable.get("value", "")))
    return word


def test_one_monitor_pod_stays_a_plain_job_without_shards(monitor_run: Run) -> None:
    job = _cron_job(monitor_run)["spec"]["jobTemplate"]["spec"]
    assert "completionMode" not in job and "completions" not in job and "parallelism" not in job
    assert job["backoffLimit"] == 1
    (container,) = job["template"]["spec"]["containers"]
    assert not [w for w in container["command"] if w.startswith("--shard")]
    names = {e["name"] for e in container["env"]}
    assert not names & {MONITOR_SHARD_COUNT, MONITOR_RUN_ID, "MLOPS_MONITOR_KMS_KEY"}


def test_several_monitor_pods_are_an_indexed_job_that_shards_one_run(
    monitor_run: Run, sharded_monitor_run: Run
) -> None:
    for manifest in sharded_monitor_run.kubernetes_manifests():
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    cron = _cron_job(sharded_monitor_run)
    assert cron["spec"]["concurrencyPolicy"] == "Forbid", "one run at a time: one prefix each"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == 3, "every pod at once: pod 0 waits"
    assert (job["backoffLimitPerIndex"], job["maxFailedIndexes"]) == (1, 0)
    assert job["backoffLimit"] >= job["backoffLimitPerIndex"]
    assert job["activeDeadlineSeconds"] > SHARD_TIMEOUT_SECONDS
    (container,) = job["template"]["spec"]["containers"]
    (plain,) = _cron_job(monitor_run)["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ]
    command = container["command"]
    assert command[: len(plain["command"])] == plain["command"], "the same run, split"
    flags = dict(zip(command[len(plain["command"]) :: 2], command[len(plain["command"]) + 1 :: 2],
                     strict=True))  # fmt: skip
    assert flags == {
        "--shard": "auto",
        "--shard-states": f"s3://mlops-prod-bucket/{MONITORING_PREFIX}/prod/penguins/"
        f"$({MONITOR_RUN_ID})/shards",
        "--shard-timeout": str(SHARD_TIMEOUT_SECONDS),
    }
    env = {e["name"]: e for e in container["env"]}
    assert JOB_COMPLETION_INDEX not in env, "Kubernetes sets the index itself"
    assert env[MONITOR_SHARD_COUNT]["value"] == str(job["completions"])
    assert env[MONITOR_RUN_ID]["valueFrom"] == {
        "fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}
    }
    assert env["MLOPS_MONITOR_KMS_KEY"]["value"] == "arn:aws:kms:us-east-1:123456789012:key/k"
    # As the kubelet expands it for two runs: each run's own prefix, which the CLI accepts.
    prefixes = []
    for job_name in ("penguins-monitor-29400360", "penguins-monitor-29400420"):
        states = _kubernetes_expands(
            flags["--shard-states"], container["env"], {MONITOR_RUN_ID: job_name}
        )
        assert "$(" not in states
        check_run_states(states, job_name)
        prefixes.append(states)
    assert prefixes[0] != prefixes[1], "two runs never share a prefix"


def test_strict_validation_rejects_a_misspelt_indexed_job_field(sharded_monitor_run: Run) -> None:
    """Guards the guard for the Job's fields, as for the Deployment's."""
    cron = _cron_job(sharded_monitor_run)
    cron["spec"]["jobTemplate"]["spec"]["backoffLimitPerIndx"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cron, KUBERNETES_VERSION, strict=True)


def test_only_a_sharded_monitors_pods_may_read_back_partial_states(
    monitor_run: Run, sharded_monitor_run: Run
) -> None:
    from iam_evaluator import allows

    def pod_policy(run: Run) -> dict[str, Any]:
        return policy_document(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])

    single, three = pod_policy(monitor_run), pod_policy(sharded_monitor_run)
    bucket = "arn:aws:s3:::mlops-prod-bucket"
    reports = f"{MONITORING_PREFIX}/prod/penguins"
    shards = f"{reports}/penguins-monitor-29400360/shards"
    state = f"{bucket}/{shards}/shard-2-of-3.npz"
    listing = {"s3:prefix": f"{shards}/"}
    assert allows([three], "s3:PutObject", state)
    assert allows([three], "s3:GetObject", state)
    assert allows([three], "s3:ListBucket", bucket, listing)
    assert allows([single], "s3:PutObject", state), "the reports' own right"
    assert not allows([single], "s3:GetObject", state), "one pod reads no state back"
    assert not allows([single], "s3:ListBucket", bucket, listing)
    other = f"{bucket}/{MONITORING_PREFIX}/prod/seattle_weather/r/shards/shard-1-of-3.npz"
    assert not allows([three], "s3:GetObject", other)
    assert not allows([three], "s3:DeleteObject", state)
    added = [s for s in three["Statement"] if s not in single["Statement"]]
    assert {s["Sid"] for s in added} == {"ReadTheRunsPartialStates", "ListTheRunsPartialStates"}
