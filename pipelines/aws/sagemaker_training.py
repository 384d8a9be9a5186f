"""Training as a SageMaker job in the project's own image, then the gates of ``mlops train``.

``submit`` uploads the definition and the data to S3 and sends ``CreateTrainingJob`` for the
serving image built from this commit (``serving/Dockerfile``, which SageMaker runs as ``train``:
``pipelines.aws.sagemaker_entry``), so the job trains with the runtime lock the endpoint serves
with. It then waits for the job with progress. On AWS the job writes ``model.tar.gz`` to the
output path. moto records the job but runs nothing, so on the local stack (``run_locally``) the
same ``train`` program runs here, in the job's ``/opt/ml`` layout under a folder of our own, and
its ``model.tar.gz`` is uploaded to the job's output path, which is where AWS would have put it.
Either way the archive is read back from S3 and the run it names goes through the gates.

The requests are boto3's, not the ``sagemaker`` SDK's (``Estimator(image_uri=..., role=...)
.fit(channels)`` sends this same ``CreateTrainingJob``): every SDK release (v2 and v3, through
``sagemaker-core``) requires ``rich<15`` and ``importlib-metadata<7``, older than the versions
``requirements.lock`` pins, so installing it would move existing pins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.aws.sagemaker_entry import CHANNELS, FAILURE_FILE, ML_ROOT_ENV, RUN_FILE
from pipelines.aws.sagemaker_flow import (
    AwsError,
    AwsSettings,
    Progress,
    aws_client,
    aws_errors,
    check_reachable,
    extract_model,
    package_model,
)
from pipelines.core.conventions import image_uri
from pipelines.core.definitions import load_model
from pipelines.core.errors import MlopsError
from pipelines.core.fingerprints import git_commit
from pipelines.core.registry import registry_errors
from pipelines.core.tags import (
    SAGEMAKER_MODEL_DATA_TAG,
    SAGEMAKER_TRAINING_IMAGE_TAG,
    SAGEMAKER_TRAINING_JOB_TAG,
)
from pipelines.stages.candidate import load_candidate
from pipelines.stages.run import evaluate_stage, gate_stage

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.definitions import Model
    from pipelines.core.settings import Settings
    from pipelines.stages.gates import GateReport

TERMINAL = ("Completed", "Failed", "Stopped")
PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder that holds ``pipelines/``


@dataclass(frozen=True)
class TrainingResult:
    job_name: str
    run_id: str
    model_data: str
    gates: GateReport


def training_image(aws: AwsSettings, sts: Any, commit: str, *, run_locally: bool) -> str:
    """The serving image of ``commit`` in this account's ECR repository, as the image workflow
    tags it; ``MLOPS_AWS_TRAINING_IMAGE`` overrides it (another commit's image or registry)."""
    if aws.training_image:
        return aws.training_image
    if not run_locally and (commit == "unknown" or commit.endswith("-dirty")):
        # No image is tagged by an uncommitted tree: the job would train other code than this.
        raise MlopsError(
            f"the checkout is at {commit!r}, and images are tagged by commit; commit (and let "
            "the image workflow push it) or set MLOPS_AWS_TRAINING_IMAGE",
            field="MLOPS_AWS_TRAINING_IMAGE",
        )
    with aws_errors("reading the account id (sts:GetCallerIdentity)", sts):
        account = str(sts.get_caller_identity()["Account"])
    return image_uri(account, aws.region_name(), aws.image_repository, commit)


def training_request(
    aws: AwsSettings,
    job: str,
    image: str,
    model: Model,
    prefix: str,
    overrides: dict[str, Any],
    environment: dict[str, str],
) -> dict[str, Any]:
    """The CreateTrainingJob request for the project's image: it runs ``train`` on the channels.

    Hyperparameter values are strings (the CreateTrainingJob API's HyperParameters map) and land
    in the container's hyperparameters.json, which ``sagemaker_entry`` reads.
    """
    base = f"s3://{aws.bucket}/{prefix}"

    def channel(name: str) -> dict[str, Any]:
        source = {"S3DataType": "S3Prefix", "S3Uri": f"{base}/input/{name}/",
                  "S3DataDistributionType": "FullyReplicated"}  # fmt: skip
        return {"ChannelName": name, "DataSource": {"S3DataSource": source}}

    return {
        "TrainingJobName": job,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": aws.role_arn,
        "HyperParameters": {
            "model": model.name,
            "overrides": json.dumps(overrides, sort_keys=True),
        },
        "InputDataConfig": [channel(name) for name in CHANNELS],
        "OutputDataConfig": {"S3OutputPath": f"{base}/output"},
        "ResourceConfig": {
            "InstanceType": model.definition.deployment.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Environment": environment,
        "Tags": [{"Key": "mlops:model", "Value": model.name}],
    }


def submit(
    client: MlflowClient,
    settings: Settings,
    aws: AwsSettings,
    name: str,
    overrides: dict[str, Any] | None = None,
    *,
    run_locally: bool,
    workdir: Path | None = None,
    timeout_seconds: float = 3600,
    progress: Progress = lambda _: None,
) -> TrainingResult:
    """Submit, wait, then evaluate and gate the run the job logged; raise if a gate fails."""

    overrides = overrides or {}
    if settings.is_embedded:
        raise MlopsError(
            "a training job logs its run to the tracking server, and the embedded SQLite "
            "registry is not one; set MLFLOW_TRACKING_URI (on the local stack: "
            'eval "$(mlops stack env)")',
            field="MLFLOW_TRACKING_URI",
        )
    model = load_model(settings.models_dir, settings.data_dir, name, overrides or None)
    s3, sagemaker = aws_client("s3", aws), aws_client("sagemaker", aws)
    check_reachable(s3, aws)
    job = f"{name}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    prefix = f"training/{name}/{job}"
    commit = git_commit(settings.root)
    image = training_image(aws, aws_client("sts", aws), commit, run_locally=run_locally)
    uploads = {
        f"{prefix}/input/definition/model.yaml": model.path,
        f"{prefix}/input/definition/dataset.yaml": model.dataset.path,
        f"{prefix}/input/train/{Path(model.dataset.source).name}": Path(model.dataset.source),
    }
    for key, path in uploads.items():
        with aws_errors(f"uploading s3://{aws.bucket}/{key}", s3):
            s3.upload_file(str(path), aws.bucket, key)
    environment = {"MLFLOW_TRACKING_URI": settings.resolved_tracking_uri(), "GITHUB_SHA": commit}
    request = training_request(aws, job, image, model, prefix, overrides, environment)
    with aws_errors(f"creating training job {job}", sagemaker):
        sagemaker.create_training_job(**request)
    progress(f"{name}: training job {job} submitted")
    if run_locally:
        # moto records the job and reports it Completed at once; do the work it skipped.
        folder = (workdir or settings.state_dir / "sagemaker") / job
        run_job_locally(s3, aws, request, folder, progress)
    status = wait(sagemaker, job, timeout_seconds, progress)
    if status["TrainingJobStatus"] != "Completed":
        raise AwsError(
            f"training job {job} ended {status['TrainingJobStatus']}: "
            f"{status.get('FailureReason', 'no reason given')}"
        )
    model_data = f"{request['OutputDataConfig']['S3OutputPath']}/{job}/output/model.tar.gz"
    run_id = _run_of(s3, model_data)
    progress(f"{name}: {model_data} holds run {run_id}; evaluating and gating it")
    with registry_errors():
        client.set_tag(run_id, SAGEMAKER_TRAINING_JOB_TAG, job)
        client.set_tag(run_id, SAGEMAKER_MODEL_DATA_TAG, model_data)
        client.set_tag(run_id, SAGEMAKER_TRAINING_IMAGE_TAG, image)
    candidate = load_candidate(client, settings, name, run_id)
    evaluation, pred = evaluate_stage(candidate, settings)
    report = gate_stage(client, settings, candidate, evaluation, pred)
    return TrainingResult(job, run_id, model_data, report)


def wait(sagemaker: Any, job: str, timeout_seconds: float, progress: Progress) -> dict[str, Any]:
    """Poll the job until it ends, reporting each change of its secondary status."""
    deadline = time.monotonic() + timeout_seconds
    last = ""
    delay = 0.5
    while True:
        with aws_errors(f"reading training job {job}", sagemaker):
            status: dict[str, Any] = sagemaker.describe_training_job(TrainingJobName=job)
        now = f"{status['TrainingJobStatus']}/{status.get('SecondaryStatus', '')}"
        if now != last:
            progress(f"{job}: {now}")
            last = now
        if status["TrainingJobStatus"] in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise AwsError(f"training job {job} still {now} after {timeout_seconds:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 30)


def run_job_locally(
    s3: Any, aws: AwsSettings, request: dict[str, Any], folder: Path, progress: Progress
) -> None:
    """What SageMaker does with the job, here: the channels and hyperparameters.json in an
    /opt/ml layout under ``folder``, the image's ``train`` program on them, then ``/opt/ml/model``
    archived and uploaded to the job's output path."""
    ml = folder / "opt" / "ml"
    shutil.rmtree(folder, ignore_errors=True)
    for channel in request["InputDataConfig"]:
        target = ml / "input" / "data" / channel["ChannelName"]
        _download_prefix(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], target)
    config = ml / "input" / "config"
    config.mkdir(parents=True)
    hyper = request["HyperParameters"]
    (config / "hyperparameters.json").write_text(json.dumps(hyper), encoding="utf-8")
    (ml / "model").mkdir(parents=True)
    env = {
        **_base_env(),
        **request["Environment"],
        "TRAINING_JOB_NAME": request["TrainingJobName"],  # SageMaker sets it in the container
        ML_ROOT_ENV: str(ml),
        # The job runs the code this process runs, wherever it was imported from (an editable
        # checkout, a relative PYTHONPATH), as the image runs the code it was built with.
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    log = folder / "training.log"
    progress(f"running the image's train program locally in {ml} (log: {log})")
    with open(log, "wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.aws.sagemaker_entry"],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=request["StoppingCondition"]["MaxRuntimeInSeconds"],
            check=False,
        )
    if done.returncode != 0:
        failure = ml / FAILURE_FILE
        reason = failure.read_text(errors="replace") if failure.is_file() else "no failure file"
        raise AwsError(
            f"training job {request['TrainingJobName']} failed (exit {done.returncode}): "
            f"{reason} (log: {log})"
        )
    job = request["TrainingJobName"]
    output = f"{request['OutputDataConfig']['S3OutputPath']}/{job}/output/model.tar.gz"
    tarball = package_model(ml / "model", folder / "model.tar.gz")
    bucket, _, key = output.removeprefix("s3://").partition("/")
    with aws_errors(f"uploading {output}", s3):
        s3.upload_file(str(tarball), bucket, key)


def _base_env() -> dict[str, str]:
    # The job sees only what SageMaker would give it, plus the AWS endpoint of the local stack.
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MLOPS_", "SM_", "SAGEMAKER_"))
    }


def _download(s3: Any, uri: str, target: Path) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    with aws_errors(f"downloading {uri}", s3):
        s3.download_file(bucket, key, str(target))


def _download_prefix(s3: Any, uri: str, target: Path) -> None:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    target.mkdir(parents=True, exist_ok=True)
    with aws_errors(f"listing {uri}", s3):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    for key in keys:
        _download(s3, f"s3://{bucket}/{key}", target / key.removeprefix(prefix).lstrip("/"))


def _run_of(s3: Any, model_data: str) -> str:
    """The MLflow run named inside the job's model.tar.gz: the link from the job to the gates."""
    with tempfile.TemporaryDirectory(prefix="mlops-sm-out-") as tmp:
        archive = Path(tmp) / "model.tar.gz"
        _download(s3, model_data, archive)
        folder = extract_model(archive, Path(tmp) / "model")
        record = folder / RUN_FILE
        if not record.is_file():
            raise AwsError(f"{model_data} has no {RUN_FILE}: not written by the train program")
        return str(json.loads(record.read_text(encoding="utf-8"))["run_id"])
