"""Each Kubernetes flavour (``deployment.kubernetes.flavor``) under the mock runtime: every object
validated against its schema (core kinds: the official OpenAPI schemas, strict; Argo Rollouts and
the Prometheus Operator: their CRD models from npm; KServe: the InferenceService CRD's OpenAPI
schema, vendored under tests/infra/crds/), and the policies every flavour must keep.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pulumi_mocks import KUBERNETES_VERSION, REPO_ROOT, Run, run_program
from test_infra_kubernetes import endpoint_args, validate_crds

from infra.components.kubernetes_endpoint import KubernetesEndpoint
from infra.policy.rules import POD_SPECS, pods_are_locked_down
from pipelines.core.alert_rules import read_alert_rules, rollback_expressions
from pipelines.core.definitions import Deployment
from pipelines.core.errors import DefinitionError
from pipelines.core.kubernetes_manifests import (
    OIP_LIVE_PATH,
    OIP_READY_PATH,
    PING_PATH,
    workload_manifests,
)
from pipelines.core.yamlfile import Strict, validate_document

pytestmark = pytest.mark.infra

KSERVE_SCHEMA = Path(__file__).parent / "crds" / "kserve_inferenceservice_v1beta1.json"
ALERT_RULES = read_alert_rules(REPO_ROOT / "monitoring")
CUSTOM_APIS = ("monitoring.coreos.com/", "argoproj.io/")  # tools/validate_crds.mjs knows them


def deployment(flavor: dict[str, Any], strategy: dict[str, Any] | None = None) -> Deployment:
    return Deployment.model_validate(
        {
            "target": "kubernetes",
            "resources": {"cpu": "250m", "memory": "512Mi"},
            "strategy": strategy or {"type": "linear", "step_percent": 25, "bake_minutes": 5},
            "autoscaling": {
                "min_instances": 2,
                "max_instances": 6,
                "target_invocations_per_instance": 300,
            },
            "kubernetes": flavor,
        }
    )


def flavour_run(flavor: dict[str, Any], **overrides: Any) -> Run:
    values: dict[str, Any] = {
        "deployment": deployment(flavor),
        "steps": (25, 50, 75, 100),
        "bake_minutes": 5,
        "canary_weight": 25,
        "rollback_expressions": rollback_expressions(ALERT_RULES),
        **overrides,
    }
    return run_program(
        lambda: KubernetesEndpoint("penguins-prod", endpoint_args(**values)), stack="prod"
    )


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {
        "deployment": flavour_run({"flavor": "deployment"}),
        "kserve": flavour_run({"flavor": "kserve"}),
        "rollout": flavour_run({"flavor": "rollout", "analysis_interval": "2m"}),
    }


def by_kind(run: Run, kind: str) -> list[dict[str, Any]]:
    return [m for m in run.kubernetes_manifests() if m["kind"] == kind]


def strict(schema: Any) -> Any:
    """The CRD schema as the API server's strict field validation reads it: unknown fields of
    an object with declared properties are refused (CRDs prune them silently otherwise)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def validate_inference_service(manifest: dict[str, Any]) -> None:
    schema = json.loads(KSERVE_SCHEMA.read_text())
    schema.pop("$comment")
    # metadata is the API server's ObjectMeta, which the CRD leaves open.
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.validate(manifest, strict(schema))


def pods(run: Run) -> list[dict[str, Any]]:
    """Every pod spec a flavour declares, wherever the kind keeps it."""
    found = []
    for manifest in run.kubernetes_manifests():
        if manifest["kind"] in ("Deployment", "Rollout"):
            found.append(manifest["spec"]["template"]["spec"])
        if manifest["kind"] == "InferenceService":
            found.append(manifest["spec"]["predictor"])
    return found


@pytest.mark.parametrize("flavor", ["deployment", "kserve", "rollout"])
def test_every_object_of_every_flavour_validates_against_its_schema(
    runs: dict[str, Run], flavor: str
) -> None:
    custom = []
    for manifest in runs[flavor].kubernetes_manifests():
        if manifest["kind"] == "InferenceService":
            validate_inference_service(manifest)
        elif manifest["apiVersion"].startswith(CUSTOM_APIS):
            custom.append(manifest)
        else:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    if custom:
        result = validate_crds(custom)
        assert result.returncode == 0, result.stderr


def test_the_kserve_schema_refuses_a_misspelt_field(runs: dict[str, Run]) -> None:
    """Guards the guard: the vendored CRD schema must be able to say no."""
    service = by_kind(runs["kserve"], "InferenceService")[0]
    service["spec"]["predictor"]["canaryTraficPercent"] = 10
    with pytest.raises(jsonschema.ValidationError, match="canaryTraficPercent"):
        validate_inference_service(service)


def test_the_rollout_validator_refuses_a_malformed_step(runs: dict[str, Run]) -> None:
    rollout = by_kind(runs["rollout"], "Rollout")[0]
    rollout["spec"]["strategy"]["canary"]["steps"][0] = {"setWeight": "a quarter"}
    result = validate_crds([rollout])
    assert result.returncode == 1 and "setWeight" in result.stderr


@pytest.mark.parametrize("flavor", ["deployment", "kserve", "rollout"])
def test_every_flavour_runs_non_root_with_probes_and_resources(
    runs: dict[str, Run], flavor: str
) -> None:
    found = pods(runs[flavor])
    assert found, f"{flavor} declares no pod"
    for pod in found:
        for container in [*pod["initContainers"], *pod["containers"]]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"], f"{container['name']}: no requests"
            assert container["resources"]["limits"]["memory"]
        for serve in pod["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert serve[probe]["httpGet"]["path"], f"{serve['name']}: no {probe}"
            assert serve["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}


def test_kserve_probes_the_open_inference_protocol_health_paths(runs: dict[str, Run]) -> None:
    serve = by_kind(runs["kserve"], "InferenceService")[0]["spec"]["predictor"]["containers"][0]
    assert serve["livenessProbe"]["httpGet"]["path"] == OIP_LIVE_PATH
    assert serve["readinessProbe"]["httpGet"]["path"] == OIP_READY_PATH
    assert serve["startupProbe"]["httpGet"]["path"] == OIP_READY_PATH
    for flavor in ("deployment", "rollout"):  # the SageMaker contract, as before
        for pod in pods(runs[flavor]):
            assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == PING_PATH


def test_kserve_takes_its_traffic_split_and_autoscaling_from_the_model(
    runs: dict[str, Run],
) -> None:
    predictor = by_kind(runs["kserve"], "InferenceService")[0]["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 6)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("rps", 5)  # 300 a minute
    serve = predictor["containers"][0]
    assert serve["args"] == ["serve"] and serve["ports"][0]["containerPort"] == 8080
    assert not by_kind(runs["kserve"], "HorizontalPodAutoscaler"), "KServe scales it"


def test_kserve_without_a_rollout_in_progress_sends_all_traffic_to_the_pin() -> None:
    run = flavour_run({"flavor": "kserve"}, canary_weight=None)
    predictor = by_kind(run, "InferenceService")[0]["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor


def test_the_rollout_walks_the_model_steps_with_their_bake(runs: dict[str, Run]) -> None:
    canary = by_kind(runs["rollout"], "Rollout")[0]["spec"]["strategy"]["canary"]
    assert canary["steps"] == [
        {"setWeight": 25},
        {"pause": {"duration": "5m"}},
        {"setWeight": 50},
        {"pause": {"duration": "5m"}},
        {"setWeight": 75},
        {"pause": {"duration": "5m"}},
    ]
    services = {m["metadata"]["name"] for m in by_kind(runs["rollout"], "Service")}
    assert {canary["stableService"], canary["canaryService"]} == services
    template = by_kind(runs["rollout"], "AnalysisTemplate")[0]
    assert canary["analysis"]["templates"] == [{"templateName": template["metadata"]["name"]}]
    assert canary["analysis"]["args"] == [
        {"name": "service-name", "value": canary["canaryService"]}
    ]
    hpa = by_kind(runs["rollout"], "HorizontalPodAutoscaler")[0]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Rollout"


def test_the_analysis_queries_are_the_alert_rules_expressions(runs: dict[str, Run]) -> None:
    """One definition, two uses: the canary fails on exactly what pages a human."""
    metrics = by_kind(runs["rollout"], "AnalysisTemplate")[0]["spec"]["metrics"]
    queries = {m["name"]: m["provider"]["prometheus"]["query"] for m in metrics}
    expected = rollback_expressions(ALERT_RULES)
    assert set(queries) == {"latency-p99", "error-rate"} == set(expected)
    for name, query in queries.items():
        alert_expression, scope = query.rsplit(" and on (job) ", 1)
        assert alert_expression == f"({expected[name]})"
        assert scope == 'up{job="{{args.service-name}}"}'
    for metric in metrics:
        assert metric["successCondition"] == "len(result) == 0"
        assert metric["interval"] == "2m"


def test_the_analysis_follows_an_edited_alert_rule() -> None:
    """The queries come from the rules file, not a copy: a changed threshold moves both."""
    edited = {k: v.replace("> 0.05", "> 0.02") for k, v in ALERT_RULES.items()}
    assert "> 0.02" in rollback_expressions(edited)["error-rate"]


def test_workloads_left_to_a_controller_keep_only_the_cloud_bound_objects() -> None:
    run = flavour_run({"flavor": "rollout"}, apply_workloads=False)
    kinds = sorted(m["kind"] for m in run.kubernetes_manifests())
    assert kinds == ["ConfigMap", "Namespace", "ServiceAccount"]


class DeploymentOnly(Strict):
    """The ``deployment`` block of a model.yaml, validated as load_model validates it."""

    deployment: Deployment


@pytest.mark.parametrize(
    ("kubernetes", "strategy", "message"),
    [
        ({"flavor": "knative"}, None, "deployment.kubernetes"),
        ({"analysis_interval": "1m"}, None, "deployment.kubernetes"),
        ({"flavor": "rollout", "analysis_interval": "soon"}, None, "analysis_interval"),
        ({"flavor": "rollout"}, {"type": "all_at_once"}, "kubernetes.flavor: rollout needs"),
    ],
)
def test_a_bad_flavour_or_setting_fails_validation_naming_the_field(
    kubernetes: dict[str, Any], strategy: dict[str, Any] | None, message: str
) -> None:
    document = {"deployment": {"target": "kubernetes", "kubernetes": kubernetes}}
    if strategy:
        document["deployment"]["strategy"] = strategy

    with pytest.raises(DefinitionError, match=message):
        validate_document(document, DeploymentOnly, "models/penguins/model.yaml")


def test_a_flavour_on_a_non_kubernetes_target_is_refused() -> None:
    with pytest.raises(ValueError, match="is for a target: kubernetes model"):
        Deployment.model_validate({"target": "sagemaker", "kubernetes": {"flavor": "kserve"}})


@pytest.mark.parametrize("flavor", ["deployment", "kserve", "rollout"])
def test_pulumi_declares_exactly_the_manifests_mlops_render_writes(
    runs: dict[str, Run], flavor: str
) -> None:
    """One builder, two appliers: what the controller would sync is what Pulumi applies."""
    args = endpoint_args(
        deployment=deployment({"flavor": flavor}),
        steps=(25, 50, 75, 100),
        bake_minutes=5,
        canary_weight=25,
        rollback_expressions=rollback_expressions(ALERT_RULES),
    )
    expected = workload_manifests(args.endpoint_spec())
    bound = {"Namespace", "ServiceAccount", "ConfigMap"}
    declared = [m for m in runs[flavor].kubernetes_manifests() if m["kind"] not in bound]
    if flavor == "rollout":  # the fixture's rollout sets its own analysis interval
        expected = workload_manifests(
            endpoint_args(
                deployment=deployment({"flavor": "rollout", "analysis_interval": "2m"}),
                steps=(25, 50, 75, 100),
                bake_minutes=5,
                canary_weight=25,
                rollback_expressions=rollback_expressions(ALERT_RULES),
            ).endpoint_spec()
        )

    def key(manifest: dict[str, Any]) -> tuple[str, str]:
        return manifest["kind"], manifest["metadata"]["name"]

    # Registration order is the runtime's; the objects are what must agree.
    assert sorted(declared, key=key) == sorted(expected, key=key)


@pytest.mark.parametrize("flavor", ["deployment", "kserve", "rollout"])
def test_the_policy_pack_checks_the_pods_of_every_flavour(
    runs: dict[str, Run], flavor: str
) -> None:
    checked = [r for r in runs[flavor].resources if r.type in POD_SPECS]
    assert checked, f"no {flavor} pod reached the pods-locked-down rule"
    for resource in checked:
        assert pods_are_locked_down(resource.type, resource.inputs) == []
        root = copy.deepcopy(resource.inputs)
        pod = root["spec"]["predictor"] if flavor == "kserve" else root["spec"]["template"]["spec"]
        pod.pop("securityContext", None)
        pod["containers"][0]["securityContext"]["runAsNonRoot"] = False
        del pod["containers"][0]["resources"]["requests"]
        problems = pods_are_locked_down(resource.type, root)
        assert "pod securityContext.runAsNonRoot is not true" in problems
        assert any("no resource requests" in p for p in problems)


def test_the_analysis_fails_on_the_canarys_errors_and_ignores_the_stable_ones(
    runs: dict[str, Run], tmp_path: Path
) -> None:
    """The analysis queries run under `promtool test rules`: a series (a failed measurement)
    only for the canary's job, whatever the stable version does."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: apt-get install prometheus (Debian)"
    metrics = by_kind(runs["rollout"], "AnalysisTemplate")[0]["spec"]["metrics"]
    rules = [
        {
            "alert": f"analysis-{m['name']}",
            "expr": m["provider"]["prometheus"]["query"].replace(
                "{{args.service-name}}", "penguins-canary"
            ),
        }
        for m in metrics
    ]
    (tmp_path / "analysis.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "analysis", "rules": rules}]})
    )

    def series(job: str, ok: int, failed: int) -> list[dict[str, str]]:
        total = "mlops_serving_requests_total"
        return [
            {"series": f'{total}{{job="{job}",status="200"}}', "values": f"0+{ok}x20"},
            {"series": f'{total}{{job="{job}",status="500"}}', "values": f"0+{failed}x20"},
            {"series": f'up{{job="{job}"}}', "values": "1x20"},
        ]

    def case(canary_failed: int, stable_failed: int, fires: bool) -> dict[str, Any]:
        return {
            "interval": "1m",
            "input_series": [
                *series("penguins-canary", 100 - canary_failed, canary_failed),
                *series("penguins", 100 - stable_failed, stable_failed),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "analysis-error-rate",
                    "exp_alerts": [{"exp_labels": {"job": "penguins-canary"}}] if fires else [],
                },
                {"eval_time": "10m", "alertname": "analysis-latency-p99", "exp_alerts": []},
            ],
        }

    (tmp_path / "analysis_test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["analysis.yml"],
                "evaluation_interval": "1m",
                "tests": [case(10, 0, fires=True), case(0, 50, fires=False)],
            }
        )
    )
    run = subprocess.run(
        [promtool, "test", "rules", "analysis_test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
