"""Each component alone under the mock runtime: what it declares and the safety it keeps."""

from __future__ import annotations

import json
from typing import Any

import ecr_lifecycle
import pytest
from pulumi_mocks import Run, policy_document, run_program

from infra.components.artifact_store import ArtifactStore, ArtifactStoreArgs
from infra.components.budget import Budget, BudgetArgs
from infra.components.ci_access import CiAccess, CiAccessArgs, subjects, trust_policy
from infra.components.drift_to_retrain import DriftToRetrain, DriftToRetrainArgs
from infra.components.monitoring import (
    MonitoredModel,
    Monitoring,
    MonitoringArgs,
)
from infra.components.registries import (
    Registries,
    RegistriesArgs,
    ecr_lifecycle_policy,
    image_tag,
)
from infra.components.sagemaker_endpoint import (
    SagemakerEndpoint,
    SagemakerEndpointArgs,
    instances_after_update,
    traffic_routing,
)
from infra.components.scheduled_monitor import (
    EXECUTION_ID,
    SHARD_TIMEOUT_SECONDS,
    ScheduledMonitor,
    ScheduledMonitorArgs,
    scheduler_expression,
    window_hours,
)
from infra.policy.rules import RESOURCE_RULES, buckets_are_private_and_encrypted
from pipelines.core.conventions import (
    DISPATCH_TOKEN_PLACEHOLDER,
    GITHUB_API_HEADERS,
    MONITORING_PREFIX,
    RETRAIN_EVENT_TYPE,
    SHARED,
    dispatch_connection_name,
    tags,
)
from pipelines.core.definitions import Deployment
from pipelines.core.deploy_limits import Fleet
from serving import metrics

pytestmark = pytest.mark.infra

OWNER = "ml-platform@example.com"
SHARED_TAGS = tags("shared", "dev", OWNER)
MODEL_TAGS = tags("seattle_weather", "dev", OWNER)
BUCKET_ARN = "arn:aws:s3:::mlops-dev-bucket"
REPOSITORY_ARN = "arn:aws:ecr:us-east-1:123456789012:repository/mlops"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops:abc123"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/k"
BOUNDARY_ARN = "arn:aws:iam::123456789012:policy/mlops-ci/dev/mlops-dev-workload-boundary"


def no_rule_violations(run: Run) -> list[str]:
    return [
        f"{r.name}: {name}: {message}"
        for r in run.resources
        for name, rule in RESOURCE_RULES.items()
        for message in rule(r.type, r.inputs)
    ]


# --- artifact store ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store() -> Run:
    return run_program(lambda: ArtifactStore("mlops-dev", ArtifactStoreArgs(tags=SHARED_TAGS)))


def test_artifact_store_is_private_encrypted_versioned_and_logged(store: Run) -> None:
    assert buckets_are_private_and_encrypted(store.for_rules()) == []
    assert no_rule_violations(store) == []
    bucket = store.named("mlops-dev-bucket")
    key = store.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    encryption = store.named("mlops-dev-bucket-encryption").inputs["rules"][0]
    assert encryption["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": key.state["arn"],
    }
    versioning = store.named("mlops-dev-bucket-versioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    logging = store.one("aws:s3/bucketLogging:BucketLogging").inputs
    assert (
        logging["bucket"] == bucket.id
        and logging["targetBucket"] == store.named("mlops-dev-logs").id
    )
    policy = policy_document(store.named("mlops-dev-bucket-policy").inputs["policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_artifact_store_expires_old_versions_and_captures(store: Run) -> None:
    rules = {r["id"]: r for r in store.named("mlops-dev-bucket-lifecycle").inputs["rules"]}
    assert rules["expire-old-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert rules["expire-captures"]["filter"] == {"prefix": "captures/"}
    assert rules["expire-captures"]["expiration"]["days"] == 90


def test_a_bucket_without_its_protection_is_caught(store: Run) -> None:
    """The bucket rule fails when the public access block or the TLS policy is missing."""
    stripped = [
        r
        for r in store.for_rules()
        if r.name not in ("mlops-dev-bucket-public-access", "mlops-dev-bucket-policy")
    ]
    problems = buckets_are_private_and_encrypted(stripped)
    assert any("public access is not fully blocked" in p for p in problems)
    assert any("non-TLS" in p for p in problems)


# --- registries ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registries() -> Run:
    args = RegistriesArgs(
        environment="dev",
        tags=SHARED_TAGS,
        bucket_name="mlops-dev-bucket",
        bucket_arn=BUCKET_ARN,
        key_arn=KEY_ARN,
        models={"seattle_weather": MODEL_TAGS, "penguins": tags("penguins", "dev", OWNER)},
        boundary_arn=BOUNDARY_ARN,
    )
    return run_program(lambda: Registries("mlops-dev-registries", args))


def test_image_repository_is_immutable_scanned_and_pruned(registries: Run) -> None:
    repository = registries.one("aws:ecr/repository:Repository").inputs
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    rules = json.loads(registries.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])[
        "rules"
    ]
    assert {r["selection"]["tagStatus"] for r in rules} == {"untagged", "any"}


def test_one_model_package_group_per_model_named_as_sagemaker_allows(registries: Run) -> None:
    groups = registries.of("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
    assert {g.inputs["modelPackageGroupName"] for g in groups} == {
        "penguins-dev",
        "seattle-weather-dev",
    }
    assert all(g.inputs["tags"]["model"] in ("penguins", "seattle_weather") for g in groups)


def test_mlflow_server_stores_artifacts_in_the_bucket_with_a_scoped_role(registries: Run) -> None:
    server = registries.one("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer").inputs
    assert server["artifactStoreUri"] == "s3://mlops-dev-bucket/mlflow"
    policy = policy_document(registries.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    resources = {json.dumps(s["Resource"]) for s in policy["Statement"]}
    assert json.dumps(f"{BUCKET_ARN}/mlflow/*") in resources
    assert no_rule_violations(registries) == []


# --- SageMaker endpoint ---------------------------------------------------------------------


def sagemaker_args(deployment: dict[str, Any], **overrides: Any) -> SagemakerEndpointArgs:
    values: dict[str, Any] = {
        "model": "seattle_weather",
        "version": "7",
        "environment": "dev",
        "endpoint_name": "seattle-weather-dev",
        "deployment": Deployment.model_validate({"target": "sagemaker", **deployment}),
        "image_uri": "img:abc",
        "repository_arn": "arn:aws:ecr:us-east-1:123456789012:repository/mlops-serving",
        "bucket_name": "mlops-dev-bucket",
        "bucket_arn": BUCKET_ARN,
        "key_arn": KEY_ARN,
        "rollback_alarm_names": ["a-latency", "a-5xx"],
        "tags": MODEL_TAGS,
        "boundary_arn": BOUNDARY_ARN,
    }
    values.update(overrides)
    return SagemakerEndpointArgs(**values)


@pytest.fixture(scope="module")
def endpoint() -> Run:
    deployment = {
        "instance_count": 2,
        "strategy": {"type": "canary", "canary_percent": 10, "bake_minutes": 10},
        "autoscaling": {
            "min_instances": 2,
            "max_instances": 4,
            "target_invocations_per_instance": 300,
        },
    }
    return run_program(lambda: SagemakerEndpoint("seattle-weather-dev", sagemaker_args(deployment)))


def test_endpoint_deploys_blue_green_with_rollback_on_the_given_alarms(endpoint: Run) -> None:
    config = endpoint.one("aws:sagemaker/endpoint:Endpoint").inputs["deploymentConfig"]
    routing = config["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing == {
        "type": "CANARY",
        "waitIntervalInSeconds": 600,
        "canarySize": {"type": "CAPACITY_PERCENT", "value": 10},
    }
    assert config["autoRollbackConfiguration"]["alarms"] == [
        {"alarmName": "a-latency"},
        {"alarmName": "a-5xx"},
    ]
    assert no_rule_violations(endpoint) == []


def test_endpoint_captures_to_the_artifact_store_encrypted(endpoint: Run) -> None:
    config = endpoint.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert config["kmsKeyArn"] == KEY_ARN
    capture = config["dataCaptureConfig"]
    assert capture["destinationS3Uri"] == "s3://mlops-dev-bucket/captures/dev"
    assert [o["captureMode"] for o in capture["captureOptions"]] == ["Input", "Output"]
    variant = config["productionVariants"][0]
    # min 2, max 4: a version update starts at the most auto-scaling may have reached.
    assert variant["variantName"] == "AllTraffic" and variant["initialInstanceCount"] == 4


def test_endpoint_scales_on_invocations_per_instance(endpoint: Run) -> None:
    target = endpoint.one("aws:appautoscaling/target:Target").inputs
    assert target["resourceId"] == "endpoint/seattle-weather-dev/variant/AllTraffic"
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 4)
    policy = endpoint.one("aws:appautoscaling/policy:Policy").inputs
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["targetValue"] == 300
    assert (
        tracking["predefinedMetricSpecification"]["predefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )


def test_endpoint_role_reads_only_its_models_and_writes_only_captures(endpoint: Run) -> None:
    statements = policy_document(endpoint.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])[
        "Statement"
    ]
    by_sid = {s["Sid"]: s for s in statements}
    assert (
        by_sid["ReadModelArchives"]["Resource"]
        == f"{BUCKET_ARN}/models/seattle_weather/*/model.tar.gz"
    )
    assert by_sid["WriteCaptures"]["Resource"] == f"{BUCKET_ARN}/captures/dev/*"


def test_model_and_configuration_names_carry_the_version(endpoint: Run) -> None:
    assert endpoint.one("aws:sagemaker/model:Model").name.endswith("-model-v7")
    assert endpoint.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").name.endswith(
        "-config-v7"
    )


@pytest.mark.parametrize(("minimum", "initial", "maximum"), [(1, 1, 1), (2, 2, 6), (2, 3, 3)])
def test_a_version_update_never_starts_smaller_than_autoscaling_left_the_fleet(
    minimum: int, initial: int, maximum: int
) -> None:
    # The provider cannot ask UpdateEndpoint to retain the running count, so every count the
    # scaling target allows must be covered by the new configuration's initial count.
    size = Fleet(minimum, initial, maximum)
    assert all(instances_after_update(size) >= n for n in range(minimum, maximum + 1))
    assert instances_after_update(size) <= maximum


def test_a_versions_model_and_configuration_survive_being_dropped(endpoint: Run) -> None:
    # After a rollback they are what serves; the provider must not delete them.
    model = endpoint.one("aws:sagemaker/model:Model").name
    config = endpoint.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").name
    assert {model, config} <= endpoint.retained
    assert endpoint.one("aws:sagemaker/endpoint:Endpoint").name not in endpoint.retained


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (
            {"type": "all_at_once", "bake_minutes": 2},
            {"type": "ALL_AT_ONCE", "wait_interval_in_seconds": 120},
        ),
        ({"type": "linear", "step_percent": 5, "bake_minutes": 1}, {"type": "LINEAR", "step": 10}),
        ({"type": "linear", "step_percent": 80, "bake_minutes": 1}, {"type": "LINEAR", "step": 50}),
        (
            {"type": "canary", "canary_percent": 90, "bake_minutes": 600},
            {"type": "CANARY", "wait_interval_in_seconds": 3600},
        ),
    ],
)
def test_strategies_map_into_sagemakers_bounds(
    strategy: dict[str, Any], expected: dict[str, Any]
) -> None:
    routing = traffic_routing(Deployment.model_validate({"strategy": strategy}), 2)
    assert routing["type"] == expected["type"]
    if "step" in expected:
        assert routing["linear_step_size"]["value"] == expected["step"]  # type: ignore[index]
    if "wait_interval_in_seconds" in expected:
        assert routing["wait_interval_in_seconds"] == expected["wait_interval_in_seconds"]
    if expected["type"] == "CANARY":
        assert routing["canary_size"]["value"] == 50  # type: ignore[index]


@pytest.mark.parametrize(
    ("instance_type", "keyed"),
    [("ml.m5.large", True), ("ml.g4dn.xlarge", False), ("ml.g5.2xlarge", False)],
)
def test_the_volume_key_is_set_only_where_sagemaker_accepts_one(
    instance_type: str, keyed: bool
) -> None:
    deployment = {"instance_type": instance_type}
    run = run_program(lambda: SagemakerEndpoint("s", sagemaker_args(deployment)))
    config = run.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert ("kmsKeyArn" in config) is keyed
    assert config["dataCaptureConfig"]["kmsKeyId"] == KEY_ARN, "captures stay encrypted"
    assert no_rule_violations(run) == []


def test_a_one_instance_fleet_moves_all_at_once_and_still_bakes() -> None:
    strategy = {"type": "canary", "canary_percent": 10, "bake_minutes": 7}
    routing = traffic_routing(Deployment.model_validate({"strategy": strategy}), 1)
    assert routing == {"type": "ALL_AT_ONCE", "wait_interval_in_seconds": 420}


def test_scaled_down_endpoints_run_one_small_instance() -> None:
    deployment = {"instance_count": 3, "autoscaling": {"min_instances": 2, "max_instances": 5}}
    run = run_program(lambda: SagemakerEndpoint("s", sagemaker_args(deployment, scaled_down=True)))
    variant = run.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs[
        "productionVariants"
    ][0]
    assert (variant["instanceType"], variant["initialInstanceCount"]) == ("ml.t2.medium", 1)
    target = run.one("aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (1, 1)


# --- monitoring ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitoring() -> Run:
    args = MonitoringArgs(
        environment="dev",
        tags=SHARED_TAGS,
        models=[
            MonitoredModel(
                "seattle_weather", MODEL_TAGS, "seattle-weather-dev", latency_p99_ms=200
            ),
            MonitoredModel("penguins", tags("penguins", "dev", OWNER)),
        ],
        alert_emails=["oncall@example.com"],
    )

    def program() -> None:
        Monitoring("mlops-dev-monitoring", args)
        ScheduledMonitor(
            "seattle-weather-dev-monitor",
            ScheduledMonitorArgs(
                model="seattle_weather",
                version="7",
                environment="dev",
                endpoint_name="seattle-weather-dev",
                schedule="30 4 * * *",
                image_uri=IMAGE,
                repository_arn=REPOSITORY_ARN,
                bucket_name="mlops-dev-bucket",
                bucket_arn=BUCKET_ARN,
                key_arn=KEY_ARN,
                tags=MODEL_TAGS,
                boundary_arn=BOUNDARY_ARN,
            ),
        )

    return run_program(program)


def test_alarms_use_the_metric_names_contract(monitoring: Run) -> None:
    alarms = {
        a.inputs["name"]: a.inputs for a in monitoring.of("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert set(alarms) == {
        "seattle-weather-dev-drift",
        "penguins-dev-drift",
        "seattle-weather-dev-latency-p99",
        "seattle-weather-dev-5xx",
    }
    drift = alarms["penguins-dev-drift"]
    assert (drift["namespace"], drift["metricName"]) == (
        metrics.CLOUDWATCH_NAMESPACE,
        metrics.CW_DRIFT_DETECTED,
    )
    assert drift["dimensions"] == {"Model": "penguins", "Environment": "dev"}
    latency = alarms["seattle-weather-dev-latency-p99"]
    assert (latency["metricName"], latency["extendedStatistic"]) == (
        metrics.SM_MODEL_LATENCY,
        "p99",
    )
    assert latency["threshold"] == 200_000, "ModelLatency is in microseconds"
    assert alarms["seattle-weather-dev-5xx"]["metricName"] == metrics.SM_5XX


def test_alerts_go_to_an_encrypted_topic(monitoring: Run) -> None:
    topic = monitoring.one("aws:sns/topic:Topic")
    key = monitoring.one("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] == key.state["arn"]
    for alarm in monitoring.of("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == [topic.state["arn"]]
    subscription = monitoring.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "oncall@example.com")


def test_dashboards_cover_every_model_and_the_endpoint(monitoring: Run) -> None:
    bodies = {
        d.inputs["dashboardName"]: json.loads(d.inputs["dashboardBody"])
        for d in monitoring.of("aws:cloudwatch/dashboard:Dashboard")
    }
    assert set(bodies) == {"mlops-dev", "mlops-dev-seattle-weather"}
    text = json.dumps(bodies["mlops-dev"])
    assert "penguins" in text and metrics.CW_DRIFT_SHARE in text
    assert metrics.SM_MODEL_LATENCY in json.dumps(bodies["mlops-dev-seattle-weather"])


def _request(run: Run) -> dict[str, Any]:
    schedule = run.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["target"]["arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
    request: dict[str, Any] = json.loads(schedule["target"]["input"])
    return request


def test_the_scheduled_monitor_runs_mlops_monitor_on_the_versions_baseline(
    monitoring: Run,
) -> None:
    """Not Model Monitor: the project's image runs `mlops monitor` and publishes DriftDetected."""
    schedule = monitoring.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["scheduleExpression"] == "cron(30 4 * * ? *)"
    assert schedule["scheduleExpressionTimezone"] == "UTC"
    request = _request(monitoring)
    assert request["AppSpecification"]["ImageUri"] == IMAGE
    command = request["AppSpecification"]["ContainerEntrypoint"]
    assert command[:3] == ["mlops", "monitor", "seattle_weather"]
    flags = dict(zip(command[3::2], command[4::2], strict=False))
    assert flags["--baseline"] == "s3://mlops-dev-bucket/baselines/seattle_weather/7"
    assert flags["--captures"] == "s3://mlops-dev-bucket/captures/dev/seattle-weather-dev/"
    assert flags["--endpoint"] == "seattle-weather-dev"
    assert flags["--since-hours"] == "24", "a daily run reads the day since the last one"
    assert "--cloudwatch" in command and "--no-fail-on-drift" in command
    # Every run needs its own job name: Scheduler fills in the execution id.
    name = request["ProcessingJobName"]
    assert name.endswith(f"-{EXECUTION_ID}") and len(name) - len(EXECUTION_ID) + 22 <= 63
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == KEY_ARN, "reports stay encrypted"
    assert {t["Key"] for t in request["Tags"]} >= {"model", "environment", "owner"}
    assert no_rule_violations(monitoring) == []


def test_the_schedule_may_start_only_its_jobs_with_only_the_job_role(monitoring: Run) -> None:
    roles = {r.name: r for r in monitoring.of("aws:iam/role:Role")}
    job_role, cron_role = (
        roles["seattle-weather-dev-monitor-job"],
        roles["seattle-weather-dev-monitor-cron"],
    )
    trust = json.loads(cron_role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"], "no confused deputy"
    policies = {
        p.name: policy_document(p.inputs["policy"])
        for p in monitoring.of("aws:iam/rolePolicy:RolePolicy")
    }
    cron = {s["Sid"]: s for s in policies["seattle-weather-dev-monitor-cron-policy"]["Statement"]}
    assert cron["PassOnlyTheJobsRoleToSageMaker"]["Resource"] == job_role.state["arn"]
    start = cron["StartThisModelsMonitorJobs"]["Resource"]
    assert start.endswith(":processing-job/mlops-dev-seattle-weather-mon-*")
    job = {s["Sid"]: s for s in policies["seattle-weather-dev-monitor-job-policy"]["Statement"]}
    assert job["PublishThePlatformsMetricsOnly"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": metrics.CLOUDWATCH_NAMESPACE}
    }
    assert job["ReadTheEndpointsCapturesAndTheModelsBaselines"]["Resource"] == [
        f"{BUCKET_ARN}/captures/dev/seattle-weather-dev/*",
        f"{BUCKET_ARN}/baselines/seattle_weather/*/*",
    ]
    for role in (job_role, cron_role):
        assert role.inputs["permissionsBoundary"] == BOUNDARY_ARN


@pytest.mark.parametrize(
    ("instance_type", "keyed"), [("ml.m5.large", True), ("ml.m5d.large", False)]
)
def test_the_monitor_job_keys_its_volume_only_where_sagemaker_accepts_one(
    instance_type: str, keyed: bool
) -> None:
    args = ScheduledMonitorArgs(
        model="seattle_weather",
        version="7",
        environment="dev",
        endpoint_name="seattle-weather-dev",
        schedule="0 * * * *",
        image_uri=IMAGE,
        repository_arn=REPOSITORY_ARN,
        bucket_name="mlops-dev-bucket",
        bucket_arn=BUCKET_ARN,
        key_arn=KEY_ARN,
        tags=MODEL_TAGS,
        instance_type=instance_type,
        boundary_arn=BOUNDARY_ARN,
    )
    run = run_program(lambda: ScheduledMonitor("m", args))
    cluster = _request(run)["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceType"] == instance_type
    assert ("VolumeKmsKeyId" in cluster) is keyed
    assert no_rule_violations(run) == []


@pytest.mark.parametrize(
    ("instance_type", "keyed"), [("ml.m5.large", True), ("ml.m5d.large", False)]
)
def test_the_schedule_lets_sagemaker_grant_itself_the_volume_key_and_nothing_more(
    instance_type: str, keyed: bool
) -> None:
    """CreateProcessingJob with a VolumeKmsKeyId needs kms:CreateGrant from its caller when the
    job's role cannot grant the key (SageMaker's API permissions reference): without it every
    scheduled run on an instance without local storage fails to start."""
    from iam_evaluator import allows

    args = ScheduledMonitorArgs(
        model="seattle_weather", version="7", environment="dev",
        endpoint_name="seattle-weather-dev", schedule="0 * * * *", image_uri=IMAGE,
        repository_arn=REPOSITORY_ARN, bucket_name="mlops-dev-bucket", bucket_arn=BUCKET_ARN,
        key_arn=KEY_ARN, tags=MODEL_TAGS, instance_type=instance_type, boundary_arn=BOUNDARY_ARN,
    )  # fmt: skip
    run = run_program(lambda: ScheduledMonitor("m", args))
    policies = {
        p.name: policy_document(p.inputs["policy"]) for p in run.of("aws:iam/rolePolicy:RolePolicy")
    }
    cron, job = policies["m-cron-policy"], policies["m-job-policy"]
    through_sagemaker = {"kms:ViaService": "sagemaker.us-east-1.amazonaws.com"}
    assert not allows([job], "kms:CreateGrant", KEY_ARN, through_sagemaker), "the job only uses it"
    assert allows([cron], "kms:CreateGrant", KEY_ARN, through_sagemaker) is keyed
    assert not allows(
        [cron], "kms:CreateGrant", KEY_ARN, {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    )
    assert not allows(
        [cron], "kms:CreateGrant", "arn:aws:kms:us-east-1:123456789012:key/other", through_sagemaker
    )
    assert not allows([cron], "kms:Decrypt", KEY_ARN, through_sagemaker), (
        "the schedule reads nothing"
    )


def test_every_run_gets_a_valid_job_name_for_the_longest_names_the_schemas_allow() -> None:
    """ProcessingJobName: 1-63 characters matching ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
    (SageMaker API Reference, CreateProcessingJob). Scheduler fills in the execution id, a
    16-character token in its guide's example (d32c5kddcf5bb8c3, "Adding context attributes in
    EventBridge Scheduler"); the prefix leaves room for 22."""
    import re

    from infra.components.scheduled_monitor import JOB_PREFIX_MAX, processing_request
    from pipelines.core.datasets import NAME_PATTERN
    from pipelines.core.environment_chain import ENVIRONMENT_PATTERN

    def longest(pattern: str, unit: str) -> str:
        return max(
            ((unit * n)[:n] for n in range(1, 200) if re.fullmatch(pattern, (unit * n)[:n])),
            key=len,
        )

    model, environment = longest(NAME_PATTERN, "w_"), longest(ENVIRONMENT_PATTERN, "e")
    assert (len(model), len(environment)) == (63, 20)  # what the schemas allow today
    sagemaker_name = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    names = set()
    for name in (model, model[:-1] + "x"):  # differing only where a cut prefix would lose it
        request = processing_request(
            model=name, version="9999", environment=environment, endpoint="e",
            bucket="b", key_arn=KEY_ARN, role_arn="r", image_uri=IMAGE, region="us-east-1",
            schedule="0 * * * *", instance_type="ml.m5.large", tags={},
        )  # fmt: skip
        prefix = request["ProcessingJobName"].removesuffix(f"-{EXECUTION_ID}")
        assert len(prefix) <= JOB_PREFIX_MAX
        run_name = request["ProcessingJobName"].replace(EXECUTION_ID, "d32c5kddcf5bb8c3")
        assert sagemaker_name.fullmatch(run_name) and len(run_name) <= 63, run_name
        assert len(prefix) + 1 + 22 <= 63, "room for an execution id of 22 characters"
        names.add(prefix)
    assert len(names) == 2, "two long models never share a job prefix"


def _monitor_with(instance_count: int) -> Run:
    args = ScheduledMonitorArgs(
        model="seattle_weather", version="7", environment="dev",
        endpoint_name="seattle-weather-dev", schedule="0 * * * *", image_uri=IMAGE,
        repository_arn=REPOSITORY_ARN, bucket_name="mlops-dev-bucket", bucket_arn=BUCKET_ARN,
        key_arn=KEY_ARN, tags=MODEL_TAGS, instance_count=instance_count,
        boundary_arn=BOUNDARY_ARN,
    )  # fmt: skip
    return run_program(lambda: ScheduledMonitor("m", args))


def test_one_instance_runs_the_command_of_old_and_several_shard_and_merge_in_one_job() -> None:
    single, three = _monitor_with(1), _monitor_with(3)
    one = _request(single)
    assert one["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    command = one["AppSpecification"]["ContainerEntrypoint"]
    assert "--shard" not in command and "--shard-states" not in command
    assert "MLOPS_MONITOR_KMS_KEY" not in one["Environment"]
    request = _request(three)
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    sharded = request["AppSpecification"]["ContainerEntrypoint"]
    assert sharded[: len(command)] == command, "the same run, split"
    flags = dict(zip(sharded[len(command) :: 2], sharded[len(command) + 1 :: 2], strict=True))
    # Unique to the run (Scheduler fills in the execution id), beside the run's reports.
    reports = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert flags == {
        "--shard": "auto",
        "--shard-states": f"{reports}/shards",
        "--shard-timeout": str(SHARD_TIMEOUT_SECONDS),
    }
    assert EXECUTION_ID in flags["--shard-states"]
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] > SHARD_TIMEOUT_SECONDS
    assert request["Environment"]["MLOPS_MONITOR_KMS_KEY"] == KEY_ARN, "states encrypted"
    assert no_rule_violations(three) == []


def test_only_a_sharded_monitor_may_read_back_partial_states_and_only_its_models() -> None:
    from iam_evaluator import allows

    def job(run: Run) -> dict[str, Any]:
        (doc,) = [
            policy_document(p.inputs["policy"])
            for p in run.of("aws:iam/rolePolicy:RolePolicy")
            if p.name.endswith("-job-policy")
        ]
        return doc

    single, three = job(_monitor_with(1)), job(_monitor_with(3))
    reports = f"{MONITORING_PREFIX}/dev/seattle_weather"
    run = f"{reports}/a1b2c3/shards"
    state = f"{BUCKET_ARN}/{run}/shard-2-of-3.npz"
    listing = {"s3:prefix": f"{run}/"}
    # What the hosts do: put a state, the first host lists the run's states and gets them.
    assert allows([three], "s3:PutObject", state)
    assert allows([three], "s3:GetObject", state)
    assert allows([three], "s3:ListBucket", BUCKET_ARN, listing)
    assert not allows([single], "s3:GetObject", state), "one host reads no state back"
    assert not allows([single], "s3:ListBucket", BUCKET_ARN, listing)
    # Nothing wider: not the reports, not another model's states, no delete.
    assert not allows([three], "s3:GetObject", f"{BUCKET_ARN}/{reports}/a1b2c3/drift.json")
    other = f"{BUCKET_ARN}/{MONITORING_PREFIX}/dev/penguins/a1b2c3/shards/shard-1-of-3.npz"
    assert not allows([three], "s3:GetObject", other)
    assert not allows([three], "s3:DeleteObject", state)
    assert not allows([three], "s3:ListBucket", BUCKET_ARN, {"s3:prefix": f"{reports}/"})
    added = [s for s in three["Statement"] if s not in single["Statement"]]
    assert {s["Sid"] for s in added} == {"ReadTheRunsPartialStates", "ListTheRunsPartialStates"}


def test_model_yaml_cron_becomes_scheduler_cron_and_the_window_follows_it() -> None:
    assert scheduler_expression("0 * * * *") == "cron(0 * * * ? *)"
    assert scheduler_expression("30 */2 * * *") == "cron(30 */2 * * ? *)"
    # cron counts weekdays 0-6 from Sunday, Scheduler 1-7: Monday is 1 in one, 2 in the other.
    assert scheduler_expression("15 3 * * 1") == "cron(15 3 ? * 2 *)"
    assert scheduler_expression("15 3 * * 0,6") == "cron(15 3 ? * 1,7 *)"
    assert window_hours("0 * * * *") == 1 and window_hours("15 3 * * *") == 24


# --- drift to retrain ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def retrain() -> Run:
    args = DriftToRetrainArgs(
        repository="example-org/mlops-template",
        environment="prod",
        drift_alarm_arns={"penguins": "arn:aws:cloudwatch:us-east-1:1:alarm:penguins-prod-drift"},
        key_arn=KEY_ARN,
        tags=tags("shared", "prod", OWNER),
        boundary_arn=BOUNDARY_ARN,
    )
    return run_program(lambda: DriftToRetrain("mlops-prod-retrain", args), stack="prod")


def test_drift_alarm_triggers_repository_dispatch(retrain: Run) -> None:
    rule = retrain.one("aws:cloudwatch/eventRule:EventRule").inputs
    pattern = json.loads(rule["eventPattern"])
    assert pattern["resources"] == ["arn:aws:cloudwatch:us-east-1:1:alarm:penguins-prod-drift"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    destination = retrain.one("aws:cloudwatch/eventApiDestination:EventApiDestination").inputs
    assert (
        destination["invocationEndpoint"]
        == "https://api.github.com/repos/example-org/mlops-template/dispatches"
    )
    assert destination["httpMethod"] == "POST"
    target = retrain.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    assert (
        target["arn"]
        == retrain.one("aws:cloudwatch/eventApiDestination:EventApiDestination").state["arn"]
    )
    template = target["inputTransformer"]["inputTemplate"]
    body = json.loads(template.replace("<alarm>", '"penguins-prod-drift"'))
    assert body == {
        "event_type": RETRAIN_EVENT_TYPE,
        "client_payload": {
            "model": "penguins",
            "environment": "prod",
            "alarm": "penguins-prod-drift",
        },
    }


def test_the_connection_has_a_key_of_its_own_that_eventbridge_accepts(retrain: Run) -> None:
    connection = retrain.one("aws:cloudwatch/eventConnection:EventConnection").inputs
    key = retrain.named("mlops-prod-retrain-connection-key")
    # The artifact store's key (KEY_ARN) carries neither the tag nor the statement below.
    assert connection["kmsKeyIdentifier"] == key.state["arn"] != KEY_ARN
    assert key.inputs["tags"]["EventBridgeApiDestinations"] == "true"
    assert key.inputs["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in policy_document(key.inputs["policy"])["Statement"]}
    use = statements["EventBridgeConnectionsThroughSecretsManager"]
    assert sorted(use["Action"]) == ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
    assert (
        use["Condition"]["StringLike"]["kms:ViaService"] == "secretsmanager.us-east-1.amazonaws.com"
    )
    assert use["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"] == [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:events!connection/*"
    ]
    assert use["Condition"]["StringEquals"] == {
        "aws:ResourceTag/EventBridgeApiDestinations": "true"
    }
    # Nothing else may use the key: the account only administers it.
    admin = statements["AccountAdministersTheKey"]["Action"]
    assert not {"kms:*", "kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"} & set(admin)


def test_a_dispatch_that_keeps_failing_lands_in_an_encrypted_dead_letter_queue(
    retrain: Run,
) -> None:
    queue = retrain.one("aws:sqs/queue:Queue")
    assert queue.inputs["sqsManagedSseEnabled"] is True
    target = retrain.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    assert target["deadLetterConfig"] == {"arn": queue.state["arn"]}
    policy = policy_document(retrain.one("aws:sqs/queuePolicy:QueuePolicy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    rule_arn = retrain.one("aws:cloudwatch/eventRule:EventRule").state["arn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": [rule_arn]}}


def test_eventbridge_may_only_invoke_the_destination(retrain: Run) -> None:
    policy = policy_document(retrain.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    destination = retrain.one("aws:cloudwatch/eventApiDestination:EventApiDestination").state["arn"]
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "events:InvokeApiDestination", "Resource": destination}
    ]
    assert retrain.of("aws:secretsmanager/secret:Secret") == [], "EventBridge keeps the token"


def test_the_connection_holds_a_placeholder_that_deploys_never_restore(retrain: Run) -> None:
    connection = retrain.one("aws:cloudwatch/eventConnection:EventConnection").inputs
    assert connection["name"] == dispatch_connection_name("prod")
    assert connection["authParameters"]["apiKey"] == {
        "key": "Authorization",
        "value": DISPATCH_TOKEN_PLACEHOLDER,
    }
    headers = connection["authParameters"]["invocationHttpParameters"]["headers"]
    assert {h["key"]: h["value"] for h in headers} == GITHUB_API_HEADERS


# --- CI access -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ci() -> Run:
    args = CiAccessArgs(
        repository="example-org/mlops-template",
        environment="prod",
        tags=tags("shared", "prod", OWNER),
        bucket_arn=BUCKET_ARN,
        key_arn=KEY_ARN,
        repository_arn="arn:aws:ecr:us-east-1:123456789012:repository/mlops-serving",
        deploy_environments=["prod"],
    )
    return run_program(lambda: CiAccess("mlops-prod-ci", args), stack="prod")


def test_oidc_provider_trusts_github_for_sts_only(ci: Run) -> None:
    provider = ci.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").inputs
    assert provider["url"] == "https://token.actions.githubusercontent.com"
    assert provider["clientIdLists"] == ["sts.amazonaws.com"]


def test_each_ci_role_trusts_exact_subjects_of_this_repository(ci: Run) -> None:
    trusted = {}
    for role in ci.of("aws:iam/role:Role"):
        statement = policy_document(role.inputs["assumeRolePolicy"])["Statement"][0]
        trusted[role.name.rsplit("-", 1)[-1]] = statement["Condition"]["StringEquals"][
            "token.actions.githubusercontent.com:sub"
        ]
    repo = "repo:example-org/mlops-template"
    assert trusted == {
        "deploy": [f"{repo}:environment:prod"],
        "preview": [f"{repo}:pull_request"],
        "publish": [f"{repo}:ref:refs/heads/main"],
    }
    assert no_rule_violations(ci) == []


def test_ci_roles_live_on_the_ci_path_out_of_the_deploy_roles_reach(ci: Run) -> None:
    deploy = next(
        r for r in ci.of("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("deploy-policy")
    )
    statements = {s["Sid"]: s for s in policy_document(deploy.inputs["policy"])["Statement"]}
    roles = statements["WorkloadRolesOnlyWithTheBoundary"]
    assert roles["Resource"] == "arn:aws:iam::123456789012:role/mlops/prod/*"
    assert roles["Condition"] == {
        "StringEquals": {
            "iam:PermissionsBoundary": (
                "arn:aws:iam::123456789012:policy/mlops-ci/prod/mlops-prod-workload-boundary"
            )
        }
    }
    assert statements["NeverChangeCiAccess"]["Effect"] == "Deny"
    assert statements["NoLongLivedCredentials"]["Effect"] == "Deny"
    assert "iam:CreateAccessKey" in statements["NoLongLivedCredentials"]["Action"]
    assert all(r.inputs.get("path") == "/mlops-ci/prod/" for r in ci.of("aws:iam/role:Role"))


def test_a_role_needs_a_subject_and_a_shared_provider_is_named_by_arn() -> None:
    with pytest.raises(ValueError, match="at least one"):
        trust_policy("arn:provider", subjects("o/r"))
    args = CiAccessArgs(
        repository="o/r",
        environment="dev",
        tags=SHARED_TAGS,
        bucket_arn=BUCKET_ARN,
        key_arn=KEY_ARN,
        repository_arn="arn:ecr",
        deploy_environments=["dev"],
        create_provider=False,
    )
    run = run_program(lambda: CiAccess("c", args))
    assert not run.of("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    # The ARN is built, not looked up: a lookup by URL needs iam:ListOpenIDConnectProviders.
    provider = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    assert all(provider in r.inputs["assumeRolePolicy"] for r in run.of("aws:iam/role:Role"))


# --- budget --------------------------------------------------------------------------------


def test_budget_alerts_on_actual_and_forecast_spend_of_the_environment() -> None:
    args = BudgetArgs(
        environment="staging",
        monthly_limit_usd=300,
        tags=SHARED_TAGS,
        emails=["a@example.com"],
        topic_arn="arn:topic",
    )
    run = run_program(lambda: Budget("b", args), stack="staging")
    budget = run.one("aws:budgets/budget:Budget").inputs
    assert (budget["limitAmount"], budget["timeUnit"]) == ("300", "MONTHLY")
    assert budget["costFilters"] == [
        {"name": "TagKeyValue", "values": ["user:environment$staging"]}
    ]
    kinds = {(n["notificationType"], n["threshold"]) for n in budget["notifications"]}
    assert kinds == {("ACTUAL", 80), ("FORECASTED", 100)}
    assert all(n["subscriberSnsTopicArns"] == ["arn:topic"] for n in budget["notifications"])


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budgetMonthlyUsd"):
        run_program(lambda: Budget("b", BudgetArgs("dev", 0, SHARED_TAGS)))


def test_a_stack_that_does_not_own_the_image_repository_looks_it_up() -> None:
    args = RegistriesArgs(
        environment="dev",
        tags=SHARED_TAGS,
        bucket_name="b",
        bucket_arn=BUCKET_ARN,
        key_arn=KEY_ARN,
        create_repository=False,
        boundary_arn=BOUNDARY_ARN,
    )

    def program() -> Any:
        registries = Registries("r", args)
        return {"url": registries.repository_url}

    run = run_program(program)
    assert not run.of("aws:ecr/repository:Repository")
    assert run.outputs["url"].endswith("/mlops-serving")


def _lifecycle_images(deployed: str, newer: int) -> list[ecr_lifecycle.Image]:
    """``deployed`` pushed 200 days ago, ``newer`` images pushed since, one untagged leftover."""
    images = [ecr_lifecycle.Image("sha256:deployed", (deployed,), 200.0)]
    images += [ecr_lifecycle.Image(f"sha256:{n}", (f"{n:040x}",), float(n)) for n in range(newer)]
    return [*images, ecr_lifecycle.Image("sha256:untagged", (), 3.0)]


def test_ecr_lifecycle_keeps_a_deployed_image_behind_100_newer_ones() -> None:
    deployed = "a" * 40
    images = _lifecycle_images(deployed, newer=100)
    policy = json.loads(ecr_lifecycle_policy(30, [deployed, "b" * 40]))
    gone = ecr_lifecycle.expired(policy, images)
    assert "sha256:deployed" not in gone
    assert "sha256:untagged" in gone
    # Still pruned: everything past the newest 30 that no stack runs.
    assert gone == {"sha256:untagged", *(f"sha256:{n}" for n in range(30, 100))}


def test_ecr_lifecycle_without_protection_would_expire_the_deployed_image() -> None:
    # The evaluator can say no: the old policy (count only) deletes what prod runs.
    images = _lifecycle_images("a" * 40, newer=100)
    assert "sha256:deployed" in ecr_lifecycle.expired(json.loads(ecr_lifecycle_policy(30)), images)


def test_registries_protect_the_tags_they_are_given() -> None:
    args = RegistriesArgs(
        environment="prod",
        tags=tags(SHARED, "prod", OWNER),
        bucket_name="b",
        bucket_arn=BUCKET_ARN,
        key_arn=KEY_ARN,
        protected_tags=["c" * 40],
        boundary_arn=BOUNDARY_ARN,
        mlflow=False,
    )
    run = run_program(lambda: Registries("mlops-prod-registries", args))
    rules = json.loads(run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])["rules"]
    assert rules[0]["selection"]["tagPatternList"] == ["c" * 40]
    assert image_tag("1.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:" + "c" * 40) == "c" * 40
    assert image_tag("1.dkr.ecr.us-east-1.amazonaws.com/mlops-serving@sha256:00") is None
