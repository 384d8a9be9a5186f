"""Training as a SageMaker training job, then the same evaluation and gates as ``mlops train``.

``submit`` uploads the code (``sourcedir.tar.gz``), the definition and the data to S3 and sends
the ``CreateTrainingJob`` request the ``sagemaker`` SDK's SKLearn estimator would send (the
prebuilt scikit-learn image in script mode; boto3 is used because the SDK is not installed),
then waits for the job with progress. On AWS the job runs the entry point and writes
``model.tar.gz`` to the output path. moto records the job but runs nothing, so on the local
stack (``run_locally``) the same entry point runs here, in the job's ``/opt/ml`` layout under a
folder of our own, and its ``model.tar.gz`` is uploaded to the job's output path, which is where
AWS would have put it. Either way the archive is read back from S3 and the run it names goes
through the gates.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.aws.sagemaker_entry import RUN_FILE
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
from pipelines.core.definitions import load_model
from pipelines.core.errors import MlopsError
from pipelines.core.fingerprints import git_commit
from pipelines.core.registry import registry_errors
from pipelines.core.tags import SAGEMAKER_MODEL_DATA_TAG, SAGEMAKER_TRAINING_JOB_TAG
from pipelines.stages.candidate import load_candidate
from pipelines.stages.run import evaluate_stage, gate_stage
from pipelines.stages.train import runtime_requirements

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.definitions import Model
    from pipelines.core.settings import Settings
    from pipelines.stages.gates import GateReport

# The job gets the whole pipelines package and, at the top of the archive, its entry point.
PIPELINE_DIR = Path(__file__).resolve().parents[1]
ENTRY_POINT = "sagemaker_entry.py"
ENTRY_SCRIPT = Path(__file__).resolve().with_name(ENTRY_POINT)
# The prebuilt scikit-learn image's registry account per region (what the SDK's
# image_uris.retrieve("sklearn", region, "1.2-1") returns); override with MLOPS_AWS_TRAINING_IMAGE.
SKLEARN_IMAGE_ACCOUNTS = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-2": "246618743249",
    "eu-west-1": "141502667606",
    "eu-central-1": "492215442770",
}
SKLEARN_IMAGE_TAG = "1.2-1-cpu-py3"
TERMINAL = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class TrainingResult:
    job_name: str
    run_id: str
    model_data: str
    gates: GateReport


def training_image(aws: AwsSettings) -> str:
    if aws.training_image:
        return aws.training_image
    region = aws.region_name()
    account = SKLEARN_IMAGE_ACCOUNTS.get(region)
    if account is None:
        raise MlopsError(
            f"no known scikit-learn image for region {region}; set MLOPS_AWS_TRAINING_IMAGE",
            field="MLOPS_AWS_TRAINING_IMAGE",
        )
    return f"{account}.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:{SKLEARN_IMAGE_TAG}"


def source_requirements() -> str:
    """requirements.txt for the image to install before running the entry point: the versions
    this machine trains with, so the job's model loads in the serving image."""
    from importlib.metadata import PackageNotFoundError, version

    pinned = runtime_requirements()
    for package in ("mlflow", "pydantic", "pydantic-settings", "PyYAML"):
        try:
            pinned.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return "\n".join(pinned) + "\n"


def source_archive(out: Path) -> Path:
    """``sourcedir.tar.gz``: the entry point at the top, the pipelines package beside it, and
    the requirements the image installs first (script mode's convention)."""
    requirements = out.with_name("requirements.txt")
    requirements.write_text(source_requirements(), encoding="utf-8")
    with tarfile.open(out, "w:gz") as archive:
        archive.add(ENTRY_SCRIPT, arcname=ENTRY_POINT)
        archive.add(requirements, arcname="requirements.txt")
        archive.add(
            PIPELINE_DIR,
            arcname="pipelines",
            filter=lambda info: None if "__pycache__" in info.name else info,
        )
    return out


def training_request(
    aws: AwsSettings,
    job: str,
    model: Model,
    prefix: str,
    overrides: dict[str, Any],
    environment: dict[str, str],
) -> dict[str, Any]:
    """The CreateTrainingJob request of a script-mode scikit-learn job."""
    base = f"s3://{aws.bucket}/{prefix}"

    def channel(name: str) -> dict[str, Any]:
        source = {"S3DataType": "S3Prefix", "S3Uri": f"{base}/input/{name}/",
                  "S3DataDistributionType": "FullyReplicated"}  # fmt: skip
        return {"ChannelName": name, "DataSource": {"S3DataSource": source}}

    return {
        "TrainingJobName": job,
        "AlgorithmSpecification": {
            "TrainingImage": training_image(aws),
            "TrainingInputMode": "File",
        },
        "RoleArn": aws.role_arn,
        "HyperParameters": {
            "model": model.name,
            "overrides": json.dumps(overrides, sort_keys=True),
            # Script mode: the image downloads the code and runs the program with these.
            "sagemaker_program": ENTRY_POINT,
            "sagemaker_submit_directory": f"{base}/source/sourcedir.tar.gz",
        },
        "InputDataConfig": [channel("train"), channel("definition")],
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
    with tempfile.TemporaryDirectory(prefix="mlops-sm-") as tmp:
        uploads = {
            f"{prefix}/source/sourcedir.tar.gz": source_archive(Path(tmp) / "sourcedir.tar.gz"),
            f"{prefix}/input/definition/model.yaml": model.path,
            f"{prefix}/input/definition/dataset.yaml": model.dataset.path,
            f"{prefix}/input/train/{Path(model.dataset.source).name}": Path(model.dataset.source),
        }
        for key, path in uploads.items():
            with aws_errors(f"uploading s3://{aws.bucket}/{key}", s3):
                s3.upload_file(str(path), aws.bucket, key)
    environment = {
        "MLFLOW_TRACKING_URI": settings.resolved_tracking_uri(),
        "GITHUB_SHA": git_commit(settings.root),
    }
    request = training_request(aws, job, model, prefix, overrides, environment)
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
    """Run the job's entry point in SageMaker's /opt/ml layout under ``folder``, then upload."""
    ml = folder / "opt" / "ml"
    shutil.rmtree(folder, ignore_errors=True)
    channels = {}
    for channel in request["InputDataConfig"]:
        target = ml / "input" / "data" / channel["ChannelName"]
        _download_prefix(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], target)
        channels[channel["ChannelName"]] = target
    code = ml / "code"
    code.mkdir(parents=True)
    hyper = request["HyperParameters"]
    archive = code / "sourcedir.tar.gz"
    _download(s3, hyper["sagemaker_submit_directory"], archive)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(code, filter="data")
    archive.unlink()
    config = ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyper), encoding="utf-8")
    model_dir, output_dir = ml / "model", ml / "output" / "data"
    model_dir.mkdir(parents=True)
    output_dir.mkdir(parents=True)
    args = [f"--{k}={v}" for k, v in hyper.items() if not k.startswith("sagemaker_")]
    env = {
        **_base_env(),
        **request["Environment"],
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(output_dir),
        "SM_INPUT_DIR": str(ml / "input"),
        "SM_HPS": json.dumps(hyper),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        **{f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()},
    }
    log = folder / "training.log"
    progress(f"running {hyper['sagemaker_program']} locally in {ml} (log: {log})")
    with open(log, "wb") as out:
        done = subprocess.run(
            [sys.executable, str(code / hyper["sagemaker_program"]), *args],
            cwd=code,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=request["StoppingCondition"]["MaxRuntimeInSeconds"],
            check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        raise AwsError(f"the training entry point failed (exit {done.returncode}):\n{tail}")
    job = request["TrainingJobName"]
    output = f"{request['OutputDataConfig']['S3OutputPath']}/{job}/output/model.tar.gz"
    tarball = package_model(model_dir, folder / "model.tar.gz")
    bucket, _, key = output.removeprefix("s3://").partition("/")
    with aws_errors(f"uploading {output}", s3):
        s3.upload_file(str(tarball), bucket, key)


def _base_env() -> dict[str, str]:
    import os

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
            raise AwsError(f"{model_data} has no {RUN_FILE}: not written by {ENTRY_POINT}")
        return str(json.loads(record.read_text(encoding="utf-8"))["run_id"])
