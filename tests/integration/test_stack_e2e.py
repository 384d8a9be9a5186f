"""One model through the AWS path on the local stack, in order, then the stack stops.

train (a SageMaker training job, run here in its /opt/ml layout) -> gates -> register (MLflow
version + model.tar.gz in S3 + model package) -> approve -> deploy (model, endpoint config
with data capture, endpoint) -> a request to the model server running that model.tar.gz ->
capture in S3 -> the drift monitor reading the capture back -> the scheduled monitor job
publishing DriftDetected -> the drift alarm in ALARM and its rule's repository_dispatch -> stack
down.

The tests share one stack and run in file order; each names the step it guards.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from integration_stack import FAST_GATES, REPO_ROOT, LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("local_stack")]

MODEL = "penguins"
ENV = "staging"
ENDPOINT = f"{MODEL}-{ENV}"
GROUP = f"{MODEL}-{ENV}"  # the package group the staging Pulumi stack owns
CAPTURES = f"s3://mlops-artifacts/captures/{ENV}"
PACKAGE_TAG = f"mlops.sagemaker.{ENV}.model_package_arn"
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    """What one step hands to the next."""
    return {}


def test_up_twice_is_harmless_and_status_reports_every_service(local_stack: LocalStack) -> None:
    before = {s.name: s.pid for s in local_stack.stack.status()}
    result = local_stack.mlops("stack", "up")
    assert result.exit_code == 0, result.output
    after = json.loads(local_stack.mlops("stack", "status", "--json").stdout)
    states = {s["name"]: s["state"] for s in after}
    assert states == {
        "moto": "running",
        "mlflow": "running",
        "model": "not started",  # nothing deployed yet
        "prometheus": "running",
    }
    assert {s["name"]: s["pid"] for s in after} == before  # nothing restarted
    assert (local_stack.stack.logs / "mlflow.log").stat().st_size > 0


def test_mlflow_runs_on_sqlite_with_artifacts_in_s3(local_stack: LocalStack) -> None:
    assert local_stack.stack.backend_store_uri().startswith("sqlite:///")
    assert (local_stack.stack.dir / "mlflow.db").is_file()
    s3 = local_stack.boto("s3")
    assert s3.head_bucket(Bucket="mlops-artifacts")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_sagemaker_training_job_runs_the_projects_image_and_passes_the_gates(
    local_stack: LocalStack, state: dict[str, Any]
) -> None:
    result = local_stack.mlops("sagemaker", "train", MODEL, "--set", FAST_GATES)
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip().splitlines()[-1]
    run = local_stack.client().get_run(run_id)
    assert run.data.tags["mlops.gates.passed"] == "true"
    assert run.data.tags["mlops.git_commit"] == "feedfacefeedfacefeedfacefeedfacefeedface"
    job = run.data.tags["mlops.sagemaker.training_job"]
    described = local_stack.boto("sagemaker").describe_training_job(TrainingJobName=job)
    # The project's own image, of the commit that trains, in the (moto) account's registry: the
    # image the endpoint serves. It runs its `train` program; nothing else is downloaded.
    assert described["AlgorithmSpecification"]["TrainingImage"] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:"
        "feedfacefeedfacefeedfacefeedfacefeedface"
    )
    assert described["RoleArn"] == "arn:aws:iam::123456789012:role/mlops-sagemaker"
    assert set(described["HyperParameters"]) == {"model", "overrides"}
    # The job's model.tar.gz in S3 is the layout /opt/ml/model expects: MLmodel at the top.
    model_data = run.data.tags["mlops.sagemaker.model_data"]
    assert model_data.endswith(f"/{job}/output/model.tar.gz")
    names = _tar_names(local_stack, model_data)
    assert "MLmodel" in names and "mlops_training.json" in names
    state["run_id"] = run_id


def test_register_creates_version_model_data_and_pending_package(
    local_stack: LocalStack, state: dict[str, Any]
) -> None:
    result = local_stack.mlops("sagemaker", "register", MODEL, "--run-id", state["run_id"])
    assert result.exit_code == 0, result.output
    published = json.loads(result.stdout.strip().splitlines()[-1])
    version = published["version"]
    assert published["model_data"] == f"s3://mlops-artifacts/models/{MODEL}/{version}/model.tar.gz"
    assert "MLmodel" in _tar_names(local_stack, published["model_data"])
    package = local_stack.boto("sagemaker").describe_model_package(
        ModelPackageName=published["model_package_arn"]
    )
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ModelPackageGroupName"] == GROUP
    # Served by the image it was trained in: what is trained is what is served.
    (container,) = package["InferenceSpecification"]["Containers"]
    run = local_stack.client().get_run(state["run_id"])
    assert container["Image"] == run.data.tags["mlops.sagemaker.training_image"]
    assert container["Image"].endswith("/mlops-serving:feedfacefeedfacefeedfacefeedfacefeedface")
    lineage = package["CustomerMetadataProperties"]
    assert lineage["mlflow_run_id"] == state["run_id"]
    assert lineage["mlflow_version"] == version
    assert lineage["fingerprint_data"].startswith("sha256:")
    assert package["MetadataProperties"]["CommitId"] == "feedfacefeedfacefeedfacefeedfacefeedface"
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    metrics = json.loads(_get(local_stack, metrics_uri))
    assert metrics["metrics"]["test_f1_macro"]["value"] >= 0.9
    tags = local_stack.client().get_model_version(MODEL, version).tags
    assert tags[PACKAGE_TAG] == published["model_package_arn"]
    # Registering the same run again is idempotent: no second version, no second package.
    again = local_stack.mlops("sagemaker", "register", MODEL, "--run-id", state["run_id"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.strip().splitlines()[-1]) == published
    state["version"] = version


def test_approve_moves_the_package_to_approved(
    local_stack: LocalStack, state: dict[str, Any]
) -> None:
    result = local_stack.mlops(
        "sagemaker", "approve", MODEL, "--env", ENV, "--version", state["version"]
    )
    assert result.exit_code == 0, result.output
    assert "PendingManualApproval -> Approved" in result.stdout
    arn = local_stack.client().get_model_version(MODEL, state["version"]).tags[PACKAGE_TAG]
    package = local_stack.boto("sagemaker").describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Approved"


def test_deploy_creates_endpoint_with_capture_and_serves_the_model_tarball(
    local_stack: LocalStack, state: dict[str, Any]
) -> None:
    version = state["version"]
    result = local_stack.mlops("sagemaker", "deploy", MODEL, "--env", ENV, "--version", version)
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.stdout.strip().splitlines()[-1])
    sagemaker = local_stack.boto("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == deployed["endpoint_config"]
    assert deployed["endpoint_config"].startswith(f"{ENDPOINT}-v{version}-")  # versioned
    config = sagemaker.describe_endpoint_config(EndpointConfigName=deployed["endpoint_config"])
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["DestinationS3Uri"] == CAPTURES
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["AllTraffic"]
    model = sagemaker.describe_model(ModelName=deployed["model"])
    arn = local_stack.client().get_model_version(MODEL, version).tags[PACKAGE_TAG]
    assert model["PrimaryContainer"]["ModelPackageName"] == arn
    # The stack's model server runs the extracted model.tar.gz, as SageMaker would.
    assert (local_stack.stack.model_dir / "MLmodel").is_file()
    assert local_stack.stack.running("model")


def test_request_to_the_served_model_is_captured_to_s3(
    local_stack: LocalStack, state: dict[str, Any]
) -> None:
    rows = _training_rows(local_stack, 80)
    url = local_stack.stack.url("model")
    for chunk in (rows.iloc[:40], rows.iloc[40:]):
        response = requests.post(
            f"{url}/invocations",
            data=chunk[FEATURES].to_csv(index=False),
            headers={"Content-Type": "text/csv"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == len(chunk)
    records = _wait_for_captures(local_stack, 2)
    sent = pd.concat(
        [pd.read_csv(StringIO(r["captureData"]["endpointInput"]["data"])) for r in records]
    )
    pd.testing.assert_frame_equal(
        sent.reset_index(drop=True), rows[FEATURES].reset_index(drop=True), check_dtype=False
    )
    state["captured_rows"] = len(rows)


def test_prometheus_scrapes_the_model_server(local_stack: LocalStack) -> None:
    url = local_stack.stack.url("prometheus")
    deadline = time.monotonic() + 30
    health = None
    while time.monotonic() < deadline:
        targets = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        health = [t["health"] for t in targets if t["labels"]["job"] == "model"]
        if health == ["up"]:
            break
        time.sleep(1)
    assert health == ["up"]


def test_drift_monitor_reads_the_capture_back_from_s3(
    local_stack: LocalStack, state: dict[str, Any]
) -> None:
    captures = f"{CAPTURES}/{ENDPOINT}"
    args = ("monitor", MODEL, "--captures", captures, "--version", state["version"], "--json")
    calm = local_stack.mlops(*args)
    assert calm.exit_code == 0, calm.output  # training rows: no drift
    report = json.loads(calm.stdout[calm.stdout.index("{") :])
    assert report["current"]["rows"] == state["captured_rows"]
    assert report["reference"]["version"] == state["version"]
    # Shifted traffic through the same endpoint: the same check now finds drift (exit 3).
    shifted = _training_rows(local_stack, 300, seed=1)
    shifted["body_mass_g"] = 6200.0
    shifted["flipper_length_mm"] = 232.0
    shifted["bill_length_mm"] = 58.0
    response = requests.post(
        f"{local_stack.stack.url('model')}/invocations",
        data=shifted[FEATURES].to_csv(index=False),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    _wait_for_captures(local_stack, 3)
    drifted = local_stack.mlops(*args)
    assert drifted.exit_code == 3, drifted.output


def test_the_scheduled_monitor_job_publishes_drift_detected_from_the_baseline(
    local_stack: LocalStack, state: dict[str, Any], tmp_path: Path
) -> None:
    """What EventBridge Scheduler starts every hour, in the job's own layout.

    ``mlops monitor-baseline`` freezes the version's reference into S3 (the deploy does this
    before ``pulumi up``); then the schedule's CreateProcessingJob request is taken as the
    Pulumi program builds it, and its command runs as SageMaker would run it in the image: a
    separate process in an empty folder, with only the request's environment and the AWS
    endpoint, no registry and no ``models/``. The drift it finds must reach CloudWatch as the
    metric the drift alarm watches.
    """
    import subprocess
    import sys

    import boto3

    from infra.components.scheduled_monitor import REPORT_PATH, processing_request
    from pipelines.core.conventions import baseline_prefix
    from serving.metrics import CLOUDWATCH_NAMESPACE, CW_DRIFT_DETECTED

    frozen = local_stack.mlops("monitor-baseline", MODEL, "--version", state["version"])
    assert frozen.exit_code == 0, frozen.output
    bucket = local_stack.env["MLOPS_AWS_BUCKET"]
    assert f"s3://{bucket}/{baseline_prefix(MODEL, state['version'])}" in frozen.output
    request = processing_request(
        model=MODEL, version=state["version"], environment=ENV, endpoint=ENDPOINT, bucket=bucket,
        key_arn="arn:aws:kms:us-east-1:123456789012:key/k", role_arn="arn:aws:iam::1:role/r",
        image_uri="image", region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        schedule="0 * * * *", instance_type="ml.m5.large", tags={},
    )  # fmt: skip
    reports = tmp_path / "opt-ml-processing-output-report"
    command = [
        str(reports) if word == REPORT_PATH else word
        for word in request["AppSpecification"]["ContainerEntrypoint"]
    ]
    empty = tmp_path / "app"  # the image's WORKDIR holds no models/ or data/
    empty.mkdir()
    aws = {k: v for k, v in local_stack.env.items() if k.startswith("AWS_")}
    job_env = {
        "PATH": os.environ["PATH"], **aws, **request["Environment"],
        "MLOPS_HOME": str(tmp_path / "home"), "MLOPS_ROOT": str(empty),
    }  # fmt: skip
    mlops = str(Path(sys.executable).with_name("mlops"))
    job = subprocess.run(
        [mlops, *command[1:]], cwd=empty, env=job_env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert job.returncode == 0, job.stdout + job.stderr  # drift is a finding, not a failure
    assert "drift detected" in job.stdout
    assert json.loads((reports / "drift.json").read_text())["drift_detected"] is True
    cloudwatch = boto3.client("cloudwatch")
    points = cloudwatch.get_metric_statistics(
        Namespace=CLOUDWATCH_NAMESPACE,
        MetricName=CW_DRIFT_DETECTED,
        Dimensions=[{"Name": "Model", "Value": MODEL}, {"Name": "Environment", "Value": ENV}],
        StartTime=time.time() - 3600,
        EndTime=time.time() + 60,
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert points and max(p["Maximum"] for p in points) == 1.0


def test_the_drift_alarm_goes_to_alarm_and_its_rule_dispatches_the_retrain_workflow(
    local_stack: LocalStack,
) -> None:
    """The last arrow: DriftDetected -> the drift alarm -> EventBridge -> repository_dispatch.

    The alarm, rule, target, API destination and connection are taken from the Pulumi program
    of this stack, run under the mock runtime on this checkout. The alarm goes into moto as the
    provider would create it; its state is decided from the datapoints the scheduled job just
    published (``evaluate_alarm``: moto does not evaluate alarms) and set with SetAlarmState.
    Moto's rule engine then judges the documented state-change event against the declared
    pattern (a rule with a queue standing in for the API destination, since moto 5.2.5 lacks
    TestEventPattern and sends no body to API destinations): only this alarm entering ALARM may
    pass. The delivered event goes through the declared input transformer, and the body is
    sent as the API destination would send it, to a fake GitHub that refuses what GitHub
    refuses; the workflow listening for its event_type is found among the workflows.
    """
    from urllib.parse import urlsplit

    from alarm_dispatch import (
        API_DESTINATION,
        CONNECTION,
        EVENT_RULE,
        EVENT_TARGET,
        METRIC_ALARM,
        alarm_state_change_event,
        declared_stack,
        evaluate_alarm,
        put_metric_alarm_request,
        transform_input,
    )
    from workflow_helpers import FakeGitHub, load_workflows

    from pipelines.core.conventions import RETRAIN_EVENT_TYPE

    declared = declared_stack(ENV, local_stack.root)

    def the_one(type_token: str, where: Any) -> Any:
        (found,) = [r for r in declared.of(type_token) if where(r)]
        return found

    # The model's rule, and from it whatever it references: the wiring of the program itself.
    rule = the_one(EVENT_RULE, lambda r: r.inputs["tags"]["model"] == MODEL)
    pattern = rule.inputs["eventPattern"]
    (alarm_arn,) = json.loads(pattern)["resources"]
    alarm = the_one(METRIC_ALARM, lambda a: a.state["arn"] == alarm_arn)
    target = the_one(EVENT_TARGET, lambda t: t.inputs["rule"] == rule.state["name"])
    destination = the_one(API_DESTINATION, lambda d: d.state["arn"] == target.inputs["arn"])
    connection = the_one(
        CONNECTION, lambda c: c.state["arn"] == destination.inputs["connectionArn"]
    )

    # The alarm as the program declares it, judged on what the scheduled job published.
    cloudwatch = local_stack.boto("cloudwatch")
    request = put_metric_alarm_request(alarm.inputs)
    cloudwatch.put_metric_alarm(**request)
    (before,) = cloudwatch.describe_alarms(AlarmNames=[request["AlarmName"]])["MetricAlarms"]
    assert before["AlarmArn"] == alarm_arn, "the rule names the alarm by the ARN AWS gives it"
    now = time.time()
    datapoints = cloudwatch.get_metric_statistics(
        Namespace=before["Namespace"], MetricName=before["MetricName"],
        Dimensions=before["Dimensions"], Statistics=[before["Statistic"]],
        Period=before["Period"], StartTime=now - before["Period"] * before["EvaluationPeriods"],
        EndTime=now + 60,
    )["Datapoints"]  # fmt: skip
    verdict = evaluate_alarm(before, datapoints)
    assert verdict == "ALARM", f"{before['AlarmName']} on {datapoints}: {verdict}"
    reason = {
        "version": "1.0", "statistic": before["Statistic"], "period": before["Period"],
        "threshold": before["Threshold"],
        "recentDatapoints": [p[before["Statistic"]] for p in datapoints],
    }  # fmt: skip
    cloudwatch.set_alarm_state(
        AlarmName=before["AlarmName"], StateValue=verdict, StateReasonData=json.dumps(reason),
        StateReason=f"Threshold Crossed: {before['Statistic']} {max(reason['recentDatapoints'])}"
        f" >= {before['Threshold']}",
    )  # fmt: skip
    (after,) = cloudwatch.describe_alarms(AlarmNames=[before["AlarmName"]])["MetricAlarms"]
    # (A new alarm starts in INSUFFICIENT_DATA on AWS and in OK on moto: either way, not ALARM.)
    assert before["StateValue"] != "ALARM" and after["StateValue"] == "ALARM"

    # The rule, as declared, on moto's event bus: a queue receives what the pattern lets pass.
    _, _, _, region, account, *_ = alarm_arn.split(":")
    entered = alarm_state_change_event(after, before, account=account, region=region)
    calm = {**after, "StateValue": "OK"}
    left = alarm_state_change_event(calm, after, account=account, region=region)
    other_arn = alarm_arn.replace(after["AlarmName"], "other-drift")
    other = {**after, "AlarmName": "other-drift", "AlarmArn": other_arn}
    elsewhere = alarm_state_change_event(other, before, account=account, region=region)
    sqs, events = local_stack.boto("sqs"), local_stack.boto("events")
    queue = sqs.create_queue(QueueName=f"{rule.state['name']}-deliveries")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    events.put_rule(Name=rule.state["name"], EventPattern=pattern)
    deliveries = {"Id": "deliveries", "Arn": attributes["Attributes"]["QueueArn"]}
    events.put_targets(Rule=rule.state["name"], Targets=[deliveries])
    # AWS keeps "aws." sources for its services; moto lets a test put CloudWatch's events.
    for event in (left, elsewhere, entered):
        put = events.put_events(
            Entries=[
                {"Source": event["source"], "DetailType": event["detail-type"],
                 "Resources": event["resources"], "Detail": json.dumps(event["detail"])}
            ]
        )  # fmt: skip
        assert put["FailedEntryCount"] == 0, put
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    through = [json.loads(m["Body"]) for m in messages]
    passed = [(e["resources"], e["detail"]["state"]["value"]) for e in through]
    assert passed == [([alarm_arn], "ALARM")], f"the rule let through {passed}"
    (delivered,) = through
    assert delivered["detail"] == entered["detail"]

    # The API destination's request: the transformed event, with the connection's headers.
    body = transform_input(target.inputs["inputTransformer"], delivered)
    endpoint = urlsplit(destination.inputs["invocationEndpoint"])
    assert (endpoint.scheme, endpoint.netloc) == ("https", "api.github.com")
    auth = connection.inputs["authParameters"]
    headers = {h["key"]: h["value"] for h in auth["invocationHttpParameters"]["headers"]}
    headers[auth["apiKey"]["key"]] = auth["apiKey"]["value"]  # `mlops retrain-token` sets it
    headers["Content-Type"] = "application/json"  # API destinations' default content type
    github = FakeGitHub([])
    try:
        response = requests.request(
            destination.inputs["httpMethod"], f"{github.url}{endpoint.path}", data=body,
            headers=headers, timeout=10,
        )  # fmt: skip
    finally:
        github.stop()
    assert response.status_code == 204, response.text
    (dispatch,) = github.dispatches
    assert dispatch["path"] == endpoint.path and dispatch["path"].endswith("/dispatches")
    assert set(headers) <= set(dispatch["headers"])
    assert dispatch["body"]["event_type"] == RETRAIN_EVENT_TYPE
    payload = dispatch["body"]["client_payload"]
    assert (payload["model"], payload["environment"]) == (MODEL, ENV)
    assert payload["alarm"] == after["AlarmName"]
    listening = []
    for name, doc in load_workflows().items():
        on = doc["on"] if isinstance(doc["on"], dict) else {}
        if dispatch["body"]["event_type"] in (on.get("repository_dispatch") or {}).get("types", []):
            listening.append(name)
    assert listening, f"no workflow listens for repository_dispatch {RETRAIN_EVENT_TYPE}"
    for name in listening:  # and it retrains the model the payload names
        text = (REPO_ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8")
        assert "github.event.client_payload.model" in text, name


def test_shift_sets_variant_weights_and_names_an_unknown_variant(local_stack: LocalStack) -> None:
    unknown = local_stack.mlops("sagemaker", "shift", MODEL, "--env", ENV, "--weight", "v9=1")
    assert unknown.exit_code == 2
    assert "shifting traffic on penguins-staging" in unknown.stderr and "v9" in unknown.stderr
    result = local_stack.mlops(
        "sagemaker", "shift", MODEL, "--env", ENV, "--weight", "AllTraffic=1"
    )
    assert result.exit_code == 0, result.output
    variants = local_stack.boto("sagemaker").describe_endpoint(EndpointName=ENDPOINT)[
        "ProductionVariants"
    ]
    assert [(v["VariantName"], v["DesiredWeight"]) for v in variants] == [("AllTraffic", 1.0)]


def test_a_second_deploy_stops_cleanly_where_moto_lacks_update_endpoint(
    local_stack: LocalStack, state: dict[str, Any]
) -> None:
    sagemaker = local_stack.boto("sagemaker")
    configs_before = sagemaker.list_endpoint_configs()["EndpointConfigs"]
    models_before = sagemaker.list_models()["Models"]
    result = local_stack.mlops(
        "sagemaker", "deploy", MODEL, "--env", ENV, "--version", state["version"]
    )
    assert result.exit_code == 2
    assert "updating endpoint" in result.stderr and "does not implement" in result.stderr
    # The model and endpoint config created for the failed update were deleted again.
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == configs_before
    assert sagemaker.list_models()["Models"] == models_before


def test_down_stops_every_process_by_pid(local_stack: LocalStack) -> None:
    pids = [s.pid for s in local_stack.stack.status() if s.pid]
    assert len(pids) == 4
    result = local_stack.mlops("stack", "down", "--purge")
    assert result.exit_code == 0, result.output
    for pid in pids:
        assert not _alive(pid), f"pid {pid} survived `mlops stack down`"
    states = {s.name: s.state for s in local_stack.stack.status()}
    assert set(states.values()) == {"not started"}
    assert not local_stack.stack.dir.exists()  # --purge: database, logs, model removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def _get(local_stack: LocalStack, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body: bytes = local_stack.boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _tar_names(local_stack: LocalStack, uri: str) -> list[str]:
    with tarfile.open(fileobj=BytesIO(_get(local_stack, uri)), mode="r:gz") as archive:
        return archive.getnames()


def _training_rows(local_stack: LocalStack, n: int, seed: int = 0) -> pd.DataFrame:
    frame = pd.read_csv(local_stack.root / "data" / "penguins" / "penguins.csv")
    return frame.sample(n=n, random_state=seed).reset_index(drop=True)


def _wait_for_captures(local_stack: LocalStack, records: int) -> list[dict[str, Any]]:
    from serving.capture import read_captures

    deadline = time.monotonic() + 20
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = list(read_captures(f"{CAPTURES}/{ENDPOINT}/AllTraffic/"))
        if len(found) >= records:
            break
        time.sleep(0.5)
    assert len(found) == records, f"{len(found)} capture records in S3, expected {records}"
    return found
