"""Each stack as a whole, run through ``infra/__main__.py`` with its Pulumi.<stack>.yaml config
under the mock runtime, and held to the platform's policies.

Two worlds: the repository as it is (no version pinned yet: registries and monitoring, no
endpoint), and a scratch copy with pins, where seattle_weather runs on SageMaker and penguins on
Kubernetes (mid-canary in production), so every endpoint path is declared and checked.

The stacks are the repository's environments, whatever `mlops init --environments` named them:
the champion environment is production, the one it promotes from is its upstream (staging in the
template), and the others (dev) are the cheap scratch stacks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pulumi.runtime import rpc
from pulumi_mocks import (
    KUBERNETES_VERSION,
    PROJECT,
    REPO_ROOT,
    Run,
    policy_document,
    run_infra_main,
    run_program,
    stack_config,
)
from test_infra_kubernetes import OPERATOR_API, validate_crds

from infra.components.monitoring import read_monitoring_files
from infra.policy.rules import (
    NAME_LIMITS,
    RESOURCE_RULES,
    STACK_RULES,
    names_fit,
    oidc_trust_is_scoped,
    taggable,
)
from infra.stack import StackSettings, build
from pipelines.core.conventions import (
    DISPATCH_TOKEN_PLACEHOLDER,
    REQUIRED_TAGS,
    dispatch_connection_name,
    endpoint_name,
    model_data_key,
    package_group_name,
    slug,
)
from pipelines.core.definitions import discover_models
from pipelines.core.deploy_limits import cloud_names
from pipelines.core.errors import DefinitionError
from pipelines.core.pins import in_promotion_order, list_environments, load_environment

pytestmark = pytest.mark.infra

_ENVIRONMENTS = in_promotion_order(
    [
        load_environment(REPO_ROOT / "environments", n)
        for n in list_environments(REPO_ROOT / "environments")
    ]
)
STACKS = tuple(e.environment for e in _ENVIRONMENTS)
(PRODUCTION,) = [e.environment for e in _ENVIRONMENTS if e.champion]
UPSTREAM = next(e.promote_from for e in _ENVIRONMENTS if e.environment == PRODUCTION)
NON_PRODUCTION = tuple(s for s in STACKS if s != PRODUCTION)
SCRATCH = tuple(s for s in NON_PRODUCTION if s != UPSTREAM)
# How the engine marks a secret value (pulumi.runtime.rpc): encrypted in state, masked in logs.
SECRET_SIG_KEY, SECRET_SIG = rpc._special_sig_key, rpc._special_secret_sig
REPOSITORY = "example-org/mlops-template"
# An EKS cluster's IRSA settings, which a stack serving a model on Kubernetes needs.
CLUSTER = {
    "eksClusterName": "ml-serving",
    "eksOidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/"
    "oidc.eks.us-east-1.amazonaws.com/id/ABC",
    "eksOidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/ABC",
}


def run_main(stack: str, repo: Path | None = None, **overrides: Any) -> Run:
    config = {**stack_config(stack), **{f"{PROJECT}:{k}": v for k, v in overrides.items()}}

    return run_infra_main(stack, repo or REPO_ROOT, config)


@pytest.fixture(scope="module")
def as_is() -> dict[str, Run]:
    """The repository as committed: no pins, so no endpoints."""
    return {stack: run_main(stack) for stack in STACKS}


@pytest.fixture(scope="module")
def pinned_repo(repo_factory: Any) -> Path:
    pins: dict[str, dict[str, list[str]]] = {s: {"seattle_weather": ["3"]} for s in SCRATCH}
    if UPSTREAM:
        pins[UPSTREAM] = {"seattle_weather": ["3"], "penguins": ["5"]}
    pins[PRODUCTION] = {"seattle_weather": ["2", "3"], "penguins": ["4", "5"]}
    return repo_factory(targets={"penguins": "kubernetes"}, pins=pins)


@pytest.fixture(scope="module")
def pinned(pinned_repo: Path) -> dict[str, Run]:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:abc123"
    return {stack: run_main(stack, pinned_repo, image=image, **CLUSTER) for stack in STACKS}


def all_runs(as_is: dict[str, Run], pinned: dict[str, Run]) -> list[tuple[str, Run]]:
    return [(f"{s} as is", r) for s, r in as_is.items()] + [
        (f"{s} pinned", r) for s, r in pinned.items()
    ]


# --- what each stack declares --------------------------------------------------------------


def test_unpinned_models_get_registry_and_monitoring_but_no_endpoint(as_is: dict[str, Run]) -> None:
    for stack, run in as_is.items():
        groups = {
            r.inputs["modelPackageGroupName"]
            for r in run.of("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
        }
        models = discover_models(REPO_ROOT / "models")  # whatever models the repository has
        assert groups == {package_group_name(m, stack) for m in models}, stack
        drift = {r.inputs["name"] for r in run.of("aws:cloudwatch/metricAlarm:MetricAlarm")}
        assert {f"{slug(m)}-{stack}-drift" for m in models} <= drift
        assert not run.of("aws:sagemaker/endpoint:Endpoint"), stack
        assert not [r for r in run.resources if r.type.startswith("kubernetes:")], stack


def test_each_stack_has_the_shared_platform(as_is: dict[str, Run]) -> None:
    models = discover_models(REPO_ROOT / "models")  # none once the examples are dropped
    for stack, run in as_is.items():
        assert len(run.of("aws:s3/bucket:Bucket")) == 2, "artifact bucket and its access-log bucket"
        owner = stack == PRODUCTION  # one AWS account: production owns the account-wide ones
        assert len(run.of("aws:ecr/repository:Repository")) == int(owner), stack
        assert len(run.of("aws:iam/openIdConnectProvider:OpenIdConnectProvider")) == int(owner)
        assert run.one("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer")
        assert run.one("aws:budgets/budget:Budget")
        assert run.one("aws:cloudwatch/dashboard:Dashboard")
        assert len(run.of("aws:cloudwatch/eventRule:EventRule")) == len(models), (
            "each model retrains on drift"
        )


def test_stacks_differ_in_size_protection_and_approval(pinned: dict[str, Run]) -> None:
    budgets = {
        s: float(r.one("aws:budgets/budget:Budget").inputs["limitAmount"])
        for s, r in pinned.items()
    }
    assert all(budgets[s] < budgets[PRODUCTION] for s in NON_PRODUCTION)
    assert budgets[STACKS[0]] == min(budgets.values()), "the first stack is the cheapest"
    variants = {
        s: r.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs[
            "productionVariants"
        ][0]
        for s, r in pinned.items()
    }
    scaling = {s: r.one("aws:appautoscaling/target:Target").inputs for s, r in pinned.items()}
    deploy_subjects = {s: _deploy_subjects(r) for s, r in pinned.items()}
    for stack in NON_PRODUCTION:
        assert variants[stack]["instanceType"] == "ml.t2.medium", f"{stack} is scaled down"
        assert scaling[stack]["maxCapacity"] == 1, stack
    assert variants[PRODUCTION]["instanceType"] == "ml.m5.large", "production: model.yaml's size"
    assert (scaling[PRODUCTION]["minCapacity"], scaling[PRODUCTION]["maxCapacity"]) == (2, 4)
    for stack in STACKS:  # every stack deploys only from its GitHub environment, never a branch
        assert deploy_subjects[stack] == [f"repo:{REPOSITORY}:environment:{stack}"], stack


def test_prod_protects_stateful_resources_from_deletion(as_is: dict[str, Run]) -> None:
    stateful = {
        "aws:s3/bucket:Bucket",
        "aws:kms/key:Key",
        "aws:ecr/repository:Repository",
        "aws:sagemaker/modelPackageGroup:ModelPackageGroup",
        "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer",
    }
    prod = as_is[PRODUCTION]
    artifacts = {r.name for r in prod.resources if r.type in stateful and "alerts" not in r.name}
    assert artifacts and artifacts <= prod.protected
    for stack in NON_PRODUCTION:
        assert not as_is[stack].protected, f"{stack} stays easy to tear down"


def test_a_sagemaker_pin_becomes_an_endpoint_on_that_versions_archive(
    pinned: dict[str, Run],
) -> None:
    for stack, run in pinned.items():
        endpoint = run.one("aws:sagemaker/endpoint:Endpoint")
        assert endpoint.inputs["name"] == endpoint_name("seattle_weather", stack)
        model = run.one("aws:sagemaker/model:Model")
        url = model.inputs["primaryContainer"]["modelDataUrl"]
        assert url.endswith("/" + model_data_key("seattle_weather", "3")), url
        assert model.inputs["primaryContainer"]["image"].endswith(":abc123")
        config = run.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
        assert endpoint.inputs["endpointConfigName"] == config.state["name"]
        routing = endpoint.inputs["deploymentConfig"]["blueGreenUpdatePolicy"][
            "trafficRoutingConfiguration"
        ]
        if stack == PRODUCTION:
            assert routing["type"] == "LINEAR" and routing["linearStepSize"]["value"] == 25
        else:
            assert routing["type"] == "ALL_AT_ONCE", "one instance cannot be shifted linearly"
        assert routing["waitIntervalInSeconds"] == 5 * 60, "bake_minutes from model.yaml"


def test_a_new_version_gets_a_new_endpoint_configuration_not_a_replacement(
    pinned_repo: Path, repo_factory: Any
) -> None:
    """The endpoint keeps its name; model and configuration are new resources per version."""
    stack = STACKS[0]
    before = run_main(stack, pinned_repo, image="img:1", **CLUSTER)
    newer = repo_factory(pins={stack: {"seattle_weather": ["3", "4"]}})
    after = run_main(stack, newer, image="img:1", **CLUSTER)
    names = lambda run, t: {r.name for r in run.of(t)}  # noqa: E731
    config = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
    assert names(before, config).isdisjoint(names(after, config))
    assert names(before, "aws:sagemaker/endpoint:Endpoint") == names(
        after, "aws:sagemaker/endpoint:Endpoint"
    )
    assert {r.inputs["name"] for r in before.of("aws:sagemaker/endpoint:Endpoint")} == {
        r.inputs["name"] for r in after.of("aws:sagemaker/endpoint:Endpoint")
    }


def test_a_pin_without_an_image_deploys_nothing_yet(pinned_repo: Path) -> None:
    run = run_main(PRODUCTION, pinned_repo)  # no `image` config
    assert not run.of("aws:sagemaker/endpoint:Endpoint")
    assert not run.of("kubernetes:apps/v1:Deployment")
    assert run.of("aws:sagemaker/modelPackageGroup:ModelPackageGroup")


def test_sagemaker_endpoints_get_a_scheduled_monitor(pinned: dict[str, Run]) -> None:
    for stack, run in pinned.items():
        schedule = run.one("aws:scheduler/schedule:Schedule")
        assert schedule.inputs["scheduleExpression"] == "cron(30 * * * ? *)", stack  # hourly
        request = json.loads(schedule.inputs["target"]["input"])
        assert request["AppSpecification"]["ContainerEntrypoint"][:2] == ["mlops", "monitor"]


def test_kubernetes_pins_run_on_kubernetes_with_a_canary_in_production(
    pinned: dict[str, Run],
) -> None:
    deployment = "kubernetes:apps/v1:Deployment"
    if UPSTREAM:
        upstream = {r.inputs["metadata"]["name"] for r in pinned[UPSTREAM].of(deployment)}
        assert upstream == {"penguins-stable"}, "no earlier version upstream: no canary"
    prod = {r.inputs["metadata"]["name"]: r for r in pinned[PRODUCTION].of(deployment)}
    assert set(prod) == {"penguins-stable", "penguins-canary"}
    assert prod["penguins-stable"].inputs["metadata"]["labels"]["mlops/version"] == "4"
    assert prod["penguins-canary"].inputs["metadata"]["labels"]["mlops/version"] == "5"
    for stack in SCRATCH:
        assert not pinned[stack].of(deployment), f"penguins is not pinned in {stack}"


def test_completing_a_rollout_leaves_only_the_pinned_version(pinned_repo: Path) -> None:
    run = run_main(PRODUCTION, pinned_repo, image="img:1", rollouts=["penguins@5"], **CLUSTER)
    deployments = run.of("kubernetes:apps/v1:Deployment")
    assert [d.inputs["metadata"]["name"] for d in deployments] == ["penguins-stable"]
    assert deployments[0].inputs["metadata"]["labels"]["mlops/version"] == "5"


def test_a_gitops_stack_leaves_the_workloads_to_the_controller(pinned_repo: Path) -> None:
    """kubernetesApply: gitops keeps only the cloud-bound objects in Pulumi's hands."""
    run = run_main(PRODUCTION, pinned_repo, image="img:1", kubernetesApply="gitops", **CLUSTER)
    # The drift monitor's CronJob stays Pulumi's too: it is the cloud job of the drift loop
    # (its IRSA role, its schedule), not a serving workload the pins PR renders.
    namespaced = [m for m in run.kubernetes_manifests() if m["metadata"].get("namespace")]
    serving = [m for m in namespaced if not m["metadata"]["name"].endswith("-monitor")]
    kinds = {m["kind"] for m in serving}
    assert {"ServiceAccount", "ConfigMap"} <= kinds
    assert not kinds & {"Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy"}
    assert "CronJob" in {m["kind"] for m in namespaced}
    assert run.of("aws:iam/role:Role"), "the pod role stays Pulumi's"


def test_one_monitor_instance_count_sizes_the_runs_of_both_targets(pinned_repo: Path) -> None:
    """modelMonitorInstanceCount: the Processing job's instances, the Indexed Job's pods."""
    run = run_main(PRODUCTION, pinned_repo, image="img:1", modelMonitorInstanceCount=3, **CLUSTER)
    (cron,) = [m for m in run.kubernetes_manifests() if m["kind"] == "CronJob"]
    job = cron["spec"]["jobTemplate"]["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 3, 3)
    requests = [
        json.loads(r.inputs["target"]["input"]) for r in run.of("aws:scheduler/schedule:Schedule")
    ]
    assert requests, "seattle_weather runs on SageMaker"
    for request in requests:
        assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3


def test_an_unknown_kubernetes_applier_is_refused_naming_the_setting(pinned_repo: Path) -> None:
    with pytest.raises(Exception, match="kubernetesApply"):
        run_main(PRODUCTION, pinned_repo, image="img:1", kubernetesApply="argo", **CLUSTER)


# --- policies, over every stack --------------------------------------------------------------


def test_every_stack_passes_every_policy(as_is: dict[str, Run], pinned: dict[str, Run]) -> None:
    rules = {**RESOURCE_RULES, "github-oidc-trust-scoped": oidc_trust_is_scoped(REPOSITORY)}
    problems = []
    for label, run in all_runs(as_is, pinned):
        for r in run.resources:
            for name, rule in rules.items():
                problems += [f"{label}: {r.name}: {name}: {m}" for m in rule(r.type, r.inputs)]
        for name, check in STACK_RULES.items():
            problems += [f"{label}: {name}: {m}" for m in check(run.for_rules())]
    assert problems == []


def test_no_bucket_is_public_or_unencrypted(pinned: dict[str, Run]) -> None:
    for run in pinned.values():
        for bucket in run.of("aws:s3/bucket:Bucket"):
            blocks = [
                r
                for r in run.of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
                if r.inputs["bucket"] == bucket.id
            ]
            assert blocks and all(
                blocks[0].inputs[k] is True
                for k in (
                    "blockPublicAcls",
                    "blockPublicPolicy",
                    "ignorePublicAcls",
                    "restrictPublicBuckets",
                )
            )
            encryption = [
                r
                for r in run.of(
                    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
                )
                if r.inputs["bucket"] == bucket.id
            ]
            algorithm = encryption[0].inputs["rules"][0]["applyServerSideEncryptionByDefault"][
                "sseAlgorithm"
            ]
            assert algorithm in ("aws:kms", "AES256")
        artifact = [
            r
            for r in run.of(
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
            )
            if r.name.endswith("-bucket-encryption")
        ]
        assert (
            artifact[0].inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"]
            == "aws:kms"
        )


def test_every_endpoint_captures_data_and_has_rollback_alarms(pinned: dict[str, Run]) -> None:
    for stack, run in pinned.items():
        alarms = {r.inputs["name"] for r in run.of("aws:cloudwatch/metricAlarm:MetricAlarm")}
        for config in run.of("aws:sagemaker/endpointConfiguration:EndpointConfiguration"):
            capture = config.inputs["dataCaptureConfig"]
            assert capture["enableCapture"] is True and capture["initialSamplingPercentage"] == 100
            assert capture["destinationS3Uri"].endswith(f"/captures/{stack}")
            assert capture["kmsKeyId"]
        for endpoint in run.of("aws:sagemaker/endpoint:Endpoint"):
            rollback = endpoint.inputs["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
            names = {a["alarmName"] for a in rollback}
            assert names == {
                f"{endpoint.inputs['name']}-latency-p99",
                f"{endpoint.inputs['name']}-5xx",
            }
            assert names <= alarms, "rollback alarms exist in the same stack"
        # The bucket is Pulumi's to know: pods read it from the namespace's cloud ConfigMap.
        cloud = {
            c.inputs["metadata"]["name"]: c.inputs["data"]
            for c in run.of("kubernetes:core/v1:ConfigMap")
            if "MODEL_BUCKET" in c.inputs.get("data", {})
        }
        for deployment in run.of("kubernetes:apps/v1:Deployment"):
            serve = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
            (source,) = serve["envFrom"]
            data = cloud[source["configMapRef"]["name"]]
            assert data["MLOPS_SERVE_CAPTURE_DESTINATION"].endswith(f"/captures/{stack}")


def test_no_iam_statement_allows_everything_on_everything(pinned: dict[str, Run]) -> None:
    for run in pinned.values():
        for policy in run.of("aws:iam/rolePolicy:RolePolicy"):
            for statement in policy_document(policy.inputs["policy"])["Statement"]:
                actions = (
                    statement["Action"]
                    if isinstance(statement["Action"], list)
                    else [statement["Action"]]
                )
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                if statement["Effect"] == "Allow":
                    assert not ("*" in actions and "*" in resources), (policy.name, statement)


def test_github_trust_is_limited_to_this_repository(pinned: dict[str, Run]) -> None:
    for run in pinned.values():
        github_roles = [
            r
            for r in run.of("aws:iam/role:Role")
            if "token.actions" in r.inputs["assumeRolePolicy"]
        ]
        assert len(github_roles) == 5, "deploy, preview, publish, tracking and registry"
        for role in github_roles:
            statement = policy_document(role.inputs["assumeRolePolicy"])["Statement"][0]
            subjects = statement["Condition"]["StringEquals"][
                "token.actions.githubusercontent.com:sub"
            ]
            assert subjects and all(
                s.startswith(f"repo:{REPOSITORY}:") and "*" not in s for s in subjects
            )
            assert "StringLike" not in statement["Condition"]


def test_every_taggable_resource_carries_model_environment_and_owner(
    pinned: dict[str, Run],
) -> None:
    checked = 0
    for stack, run in pinned.items():
        for r in run.resources:
            if taggable(r.type):
                tags = r.inputs.get("tags") or {}
                assert all(tags.get(k) for k in REQUIRED_TAGS), (r.type, r.name, tags)
                assert tags["environment"] == stack
                checked += 1
        per_model = [r for r in run.resources if r.type == "aws:sagemaker/endpoint:Endpoint"]
        assert all(r.inputs["tags"]["model"] == "seattle_weather" for r in per_model)
    assert checked > 50


def test_no_secret_is_in_any_stacks_config_or_state(pinned: dict[str, Run]) -> None:
    """Pull-request previews read the state (pulumi/pulumi#11024): nothing in it may be secret.
    The dispatch token goes to the connection outside Pulumi (`mlops retrain-token`)."""
    for stack, run in pinned.items():
        marked = [r.name for r in run.resources if SECRET_SIG in json.dumps(r.inputs)]
        assert marked == [], stack
        assert run.of("aws:secretsmanager/secretVersion:SecretVersion") == []
        connection = run.one("aws:cloudwatch/eventConnection:EventConnection").inputs
        assert connection["name"] == dispatch_connection_name(stack)
        assert connection["authParameters"]["apiKey"]["value"] == DISPATCH_TOKEN_PLACEHOLDER


@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_still_holding_the_github_token_is_told_how_to_move_it(
    stack: str, pinned_repo: Path
) -> None:
    with pytest.raises(DefinitionError, match="mlops retrain-token") as error:
        run_main(stack, pinned_repo, githubToken="ghp_x")
    assert error.value.field == "githubToken"
    assert f"Pulumi.{stack}.yaml" in str(error.value)


def _deploy_subjects(run: Run) -> list[str]:
    role = next(r for r in run.of("aws:iam/role:Role") if r.name.endswith("-ci-deploy"))
    statement = policy_document(role.inputs["assumeRolePolicy"])["Statement"][0]
    return statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]


def test_every_config_key_is_declared_described_and_read() -> None:
    """Pulumi.yaml declares exactly the keys __main__ reads, and stack files set only those."""
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    source = (REPO_ROOT / "infra" / "__main__.py").read_text()
    read = set(re.findall(r'config\.(?:require|get)\w*\("(\w+)"\)', source))
    assert read == set(declared)
    assert all(spec.get("description") for spec in declared.values())
    for stack in STACKS:
        stack_file = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        ours = {k.split(":", 1)[1] for k in stack_file if k.startswith(f"{PROJECT}:")}
        assert ours <= set(declared), (stack, ours - set(declared))
        providers = {k.split(":", 1)[0] for k in stack_file} - {PROJECT}
        assert providers <= {"aws"}, f"{stack}: keys outside the project's namespace {providers}"


def test_every_kubernetes_object_of_every_stack_is_schema_valid(pinned: dict[str, Run]) -> None:
    manifests = [m for run in pinned.values() for m in run.kubernetes_manifests()]
    expected = {"Deployment", "Service", "NetworkPolicy"}
    if any(read_monitoring_files(REPO_ROOT / "monitoring")):  # the monitoring part's files
        expected.add("ConfigMap")
    assert {m["kind"] for m in manifests} >= expected | {"ServiceMonitor"}
    custom = [m for m in manifests if m["apiVersion"] == OPERATOR_API]
    for manifest in manifests:
        if manifest not in custom:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    result = validate_crds(custom)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_no_stack_lets_a_branch_deploy_outside_its_environment(
    stack: str, pinned_repo: Path
) -> None:
    with pytest.raises(DefinitionError, match="trusts only its GitHub environments") as error:
        run_main(stack, pinned_repo, deployBranches=["main"])
    assert error.value.field == "deployBranches"
    assert f"Pulumi.{stack}.yaml" in str(error.value)


# --- what AWS would refuse, caught before a deploy --------------------------------------------


def _longest_valid_name(environment: str, target: str) -> int:
    return max(
        length
        for length in range(1, 64)
        if all(len(n.name) <= n.limit for n in cloud_names("m" * length, environment, target))
    )


def _renamed(repo: Path, names: dict[str, str]) -> Path:
    """The repository with models renamed (folder and `name`), their pins following them."""
    for old, new in names.items():
        (repo / "models" / old).rename(repo / "models" / new)
        path = repo / "models" / new / "model.yaml"
        data = yaml.safe_load(path.read_text())
        data["name"] = new
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    for pins in (repo / "environments").glob("*.yaml"):
        data = yaml.safe_load(pins.read_text())
        data["models"] = {names.get(m, m): pin for m, pin in (data.get("models") or {}).items()}
        pins.write_text(yaml.safe_dump(data, sort_keys=False))
    return repo


def _physical_name(resource: Any) -> Any:
    path, _ = NAME_LIMITS[resource.type]
    value = resource.inputs if path.startswith("metadata") else resource.state
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def test_the_longest_valid_model_names_deploy_with_every_name_within_its_limit(
    repo_factory: Any,
) -> None:
    """Under the mock runtime (which names resources as Pulumi does), at version 9999, every
    derived name fits, and one of them exactly: one character more would not."""
    stack = max(STACKS, key=len)
    sagemaker = "w" * _longest_valid_name(stack, "sagemaker")
    kubernetes = "p" * _longest_valid_name(stack, "kubernetes")
    repo = repo_factory(
        targets={"penguins": "kubernetes"},
        pins={stack: {"seattle_weather": ["9998", "9999"], "penguins": ["9999"]}},
    )
    repo = _renamed(repo, {"seattle_weather": sagemaker, "penguins": kubernetes})
    run = run_main(stack, repo, image="img:1", **CLUSTER)
    names = {
        r.name: (_physical_name(r), NAME_LIMITS[r.type][1])
        for r in run.resources
        if r.type in NAME_LIMITS
    }
    too_long = {k: v for k, (v, limit) in names.items() if len(v) > limit}
    assert too_long == {}
    assert any(len(v) == limit for v, limit in names.values() if sagemaker.replace("_", "-") in v)
    assert any(len(v) == limit for v, limit in names.values() if kubernetes in v)

    longer = _renamed(repo, {sagemaker: sagemaker + "w"})
    with pytest.raises(DefinitionError, match="is too long for environment") as error:
        run_main(stack, longer, image="img:1", **CLUSTER)
    assert error.value.field == "name"
    assert error.value.file == str(longer / "models" / (sagemaker + "w") / "model.yaml")


def test_the_names_policy_refuses_an_overlong_name() -> None:
    role = "r" * 65
    assert names_fit("aws:iam/role:Role", {"name": role}) == [
        f"name {role!r} is 65 characters; the limit is 64"
    ]
    assert names_fit("aws:iam/role:Role", {"name": "r" * 64}) == []
    assert names_fit("kubernetes:core/v1:Namespace", {"metadata": {"name": "n" * 64}})


@pytest.mark.parametrize("missing", sorted(CLUSTER))
def test_a_kubernetes_model_without_the_cluster_settings_is_refused(
    missing: str, pinned_repo: Path
) -> None:
    settings = {k: v for k, v in CLUSTER.items() if k != missing}
    with pytest.raises(DefinitionError, match=r"pins a model with deployment\.target: kubernetes"):
        run_main(PRODUCTION, pinned_repo, image="img:1", **settings)


def test_cluster_settings_of_the_wrong_shape_are_refused(pinned_repo: Path) -> None:
    wrong_issuer = {**CLUSTER, "eksOidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/OTHER"}
    with pytest.raises(DefinitionError, match="is not the IAM OIDC provider") as error:
        run_main(PRODUCTION, pinned_repo, image="img:1", **wrong_issuer)
    assert error.value.field == "eksOidcProviderArn"
    assert error.value.file == f"Pulumi.{PRODUCTION}.yaml"


def test_kubernetes_objects_go_through_the_stacks_own_cluster_provider(
    pinned: dict[str, Run],
) -> None:
    run = pinned[PRODUCTION]
    (provider,) = [r for r in run.resources if r.type == "pulumi:providers:kubernetes"]
    config = json.loads(provider.inputs["kubeconfig"])
    user = config["users"][0]["user"]["exec"]
    assert user["command"] == "aws" and user["args"][:4] == [
        "eks",
        "get-token",
        "--cluster-name",
        CLUSTER["eksClusterName"],
    ]
    assert config["clusters"][0]["cluster"]["server"].startswith("https://")
    # The pods get credentials: IRSA is always there with a Kubernetes model.
    accounts = run.of("kubernetes:core/v1:ServiceAccount")
    assert accounts and all(
        "eks.amazonaws.com/role-arn" in a.inputs["metadata"].get("annotations", {})
        for a in accounts
    )


def test_the_owning_stack_keeps_its_own_image_and_the_listed_ones(pinned_repo: Path) -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:" + "a" * 40
    run = run_main(PRODUCTION, pinned_repo, image=image, protectedImageTags=["b" * 40], **CLUSTER)
    rules = json.loads(run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])["rules"]
    kept = [r["selection"]["tagPatternList"] for r in rules if "tagPatternList" in r["selection"]]
    assert kept == [["a" * 40], ["b" * 40]]


def test_a_protected_image_tag_that_is_no_ecr_tag_is_refused(pinned_repo: Path) -> None:
    with pytest.raises(DefinitionError, match="is not an ECR image tag") as error:
        run_main(PRODUCTION, pinned_repo, protectedImageTags=["prod-*"])
    assert error.value.field == "protectedImageTags"


def test_the_stack_outputs_the_configuration_each_endpoint_should_run(pinned_repo: Path) -> None:
    settings = StackSettings(
        stack=PRODUCTION,
        owner="ml-platform@example.com",
        github_repository="o/r",
        image="i:1",
        eks_cluster_name=CLUSTER["eksClusterName"],
        eks_oidc_provider_arn=CLUSTER["eksOidcProviderArn"],
        eks_oidc_issuer=CLUSTER["eksOidcIssuer"],
    )
    run = run_program(lambda: build(settings, pinned_repo), stack=PRODUCTION)
    configs = {
        r.state["name"] for r in run.of("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    }
    claimed = run.outputs["endpoint_configs"]
    assert claimed and set(claimed.values()) <= configs
    assert set(claimed) <= set(run.outputs["endpoints"])
    # The next `up` that built no image re-applies this one (pipelines/gitops/deploy_image.py).
    assert run.outputs["image"] == "i:1"


@pytest.mark.parametrize("count", [0, 21, -1, True, "3"])
def test_a_monitor_instance_count_outside_1_to_20_is_refused_naming_the_key(count: Any) -> None:
    from infra.stack import StackSettings, build

    settings = StackSettings(
        stack=PRODUCTION,
        owner="o",
        github_repository=REPOSITORY,
        model_monitor_instance_count=count,
    )
    with pytest.raises(DefinitionError, match="modelMonitorInstanceCount") as error:
        build(settings, REPO_ROOT)
    assert error.value.field == "modelMonitorInstanceCount"
    assert f"Pulumi.{PRODUCTION}.yaml" in str(error.value) and "1 to 20" in str(error.value)
