"""Deployment target ``sagemaker``: package, register, approve, deploy, roll back, with boto3.

The same calls go to AWS or to moto on the local stack; only ``AWS_ENDPOINT_URL`` (which boto3
reads itself) and the credentials differ. The ``sagemaker`` SDK is not used: its current
releases require ``rich<15`` and ``importlib-metadata<7``, older than ``requirements.lock``'s
pins, and its model-package and monitoring helpers are thin wrappers over these calls; every
request here is the one the SDK would send.

Registration is all or nothing, like ``pipelines.stages.register``: the MLflow version, the
``model.tar.gz`` in S3 and the model package are created in that order, and a failure at any
step undoes what was created before it. The model package is created last, so nothing can fail
after it exists except one MLflow tag; if that tag fails the package is deleted again (or, where
``DeleteModelPackage`` is refused, as on moto, marked ``Rejected`` and named in the error).

Not implemented by moto 5.2 (the local stack), so untested there: ``UpdateEndpoint`` (a second
deployment to an existing endpoint, and ``rollback``), ``DeleteModelPackage``,
``DeleteModelPackageGroup`` and ``StopTrainingJob``. The requests ``deploy`` and ``rollback``
send to ``UpdateEndpoint`` are checked with botocore's Stubber instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.core.conventions import (
    IMAGE_REPOSITORY,
    capture_uri,
    endpoint_name,
    image_uri,
    model_data_key,
    package_group_name,
)
from pipelines.core.errors import MlopsError, RegistryError
from pipelines.core.registry import CHALLENGER, aliases_of, get_run, registry_errors
from pipelines.core.tags import (
    DATASET_TAG,
    FINGERPRINT_TAG,
    GIT_COMMIT_TAG,
    PIPELINE_VERSION_TAG,
    REGISTERED_VERSION_TAG,
    SAGEMAKER_MODEL_DATA_TAG,
    SAGEMAKER_TRAINING_IMAGE_TAG,
    model_package_tag,
)
from pipelines.stages.register import register

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.settings import Settings

VARIANT = "AllTraffic"  # infra/components/sagemaker_endpoint.py and the capture layout use it
APPROVED = "Approved"
PENDING = "PendingManualApproval"
REJECTED = "Rejected"
CAPTURE_CONTENT_TYPES = {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}

Progress = Callable[[str], None]


def package_arn_tag(environment: str) -> str:
    """MLflow version tag holding the version's model package ARN in one environment."""
    return model_package_tag(environment)


class AwsError(MlopsError):
    """AWS (or the local stack standing in for it) is unreachable or refused a request."""


class AwsSettings(BaseSettings):
    """Where the SageMaker flow puts things, from ``MLOPS_AWS_*``; the endpoint is boto3's."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_AWS_", extra="ignore")

    bucket: str = Field(default="mlops-artifacts", description="Model data and capture bucket.")
    region: str | None = Field(default=None, description="Default: AWS_DEFAULT_REGION.")
    role_arn: str = Field(
        default="arn:aws:iam::123456789012:role/mlops-sagemaker",
        description="Execution role of models and training jobs (moto accepts any).",
    )
    serving_image: str | None = Field(
        default=None,
        description="The serving image in ECR for versions not trained by a SageMaker job; "
        "those are served by the image they trained in. Default: `latest` of image_repository "
        "in the role's account (the local stack accepts any).",
    )
    image_repository: str = Field(
        default=IMAGE_REPOSITORY,
        description="ECR repository the image workflow pushes the serving image to.",
    )
    training_image: str | None = Field(
        default=None,
        description="Default: the serving image of the current commit in image_repository, "
        "the image that is served is the image that trains.",
    )
    capture_percent: int = Field(default=100, ge=0, le=100)
    connect_timeout: float = Field(default=3.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)

    def region_name(self) -> str:
        import os

        return self.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    def default_serving_image(self) -> str:
        """The image of runs trained elsewhere; the account comes from the role, not a literal,
        so an adopted repository serves from its own registry."""
        if self.serving_image:
            return self.serving_image
        account = self.role_arn.split(":")[4]
        return image_uri(account, self.region_name(), self.image_repository, "latest")


def aws_client(service: str, aws: AwsSettings) -> Any:
    """A boto3 client with short timeouts and bounded retries; the one place clients are made."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=aws.connect_timeout,
        read_timeout=60,
        retries={"max_attempts": aws.max_attempts, "mode": "standard"},
    )
    return boto3.client(service, region_name=aws.region_name(), config=config)


@contextlib.contextmanager
def aws_errors(action: str, client: Any = None) -> Iterator[None]:
    """Turn botocore's exceptions into one clear error that says what was being done, where."""
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    where = f" at {client.meta.endpoint_url}" if client is not None else ""
    try:
        yield
    except ParamValidationError as exc:
        # botocore checked the request before sending it: bad input, AWS was never asked.
        detail = " ".join(str(exc).split())[:300]
        raise AwsError(f"{action}: the request is not valid ({detail})") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        message = str(error.get("Message") or "").strip().splitlines()
        detail = message[0][:200] if message and not message[0].startswith("<") else ""
        if str(code) == "500" and "<title>500" in str(error.get("Message", "")):
            detail = "the service does not implement this call (moto does not)"
        raise AwsError(f"{action}: AWS{where} refused it ({code}: {detail})") from exc
    except BotoCoreError as exc:
        raise AwsError(
            f"{action}: AWS{where} is unreachable ({type(exc).__name__}: {exc})"
        ) from exc


@dataclass(frozen=True)
class Published:
    model: str
    version: str
    model_data: str
    package_arn: str


@dataclass(frozen=True)
class EndpointDeployment:
    """What `deploy` did: the endpoint, the config and model it now runs, created or updated."""

    endpoint: str
    endpoint_config: str
    model_name: str
    version: str
    created: bool  # False: an existing endpoint was updated


def package_model(model_dir: Path, out: Path) -> Path:
    """``model.tar.gz`` with the MLflow model folder's files at its root.

    SageMaker extracts the archive into ``/opt/ml/model``, where the serving image looks for
    the ``MLmodel`` file (``serving.model``): so ``MLmodel`` must be at the top, not in a folder.
    """
    if not (model_dir / "MLmodel").is_file():
        raise MlopsError("not an MLflow model folder (no MLmodel file)", file=model_dir)
    with tarfile.open(out, "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    return out


def extract_model(archive: Path, target: Path) -> Path:
    """Unpack ``model.tar.gz`` the way SageMaker does, refusing paths that leave ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")
    if not (target / "MLmodel").is_file():
        raise MlopsError("the archive has no MLmodel file at its root", file=archive)
    return target


def check_reachable(s3: Any, aws: AwsSettings) -> None:
    """One cheap call before anything is written, so an unreachable endpoint changes nothing."""
    try:
        with aws_errors(f"checking bucket {aws.bucket}", s3):
            s3.head_bucket(Bucket=aws.bucket)
    except AwsError as exc:
        raise AwsError(f"{exc.message}. Nothing was changed.") from exc


def ensure_package_group(sagemaker: Any, model: str, group: str) -> None:
    """The group ``pulumi up`` creates; created here too so the local stack needs no Pulumi."""
    from botocore.exceptions import ClientError

    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return
    except ClientError:
        pass  # missing: create it below (a group holds no version, so creating it is harmless)
    with aws_errors(f"creating model package group {group}", sagemaker):
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"Versions of {model} from models/{model}/model.yaml.",
        )


def register_package(
    client: MlflowClient,
    settings: Settings,
    aws: AwsSettings,
    model: str,
    environment: str,
    run_id: str | None = None,
    progress: Progress = lambda _: None,
) -> Published:
    """Register a gated run in MLflow and as a model package pending approval, or neither.

    The package goes to the model's group in ``environment`` (``<model>-<environment>``, the
    group the environment's Pulumi stack owns).
    """

    s3, sagemaker = aws_client("s3", aws), aws_client("sagemaker", aws)
    check_reachable(s3, aws)
    run = get_run(client, model, run_id, settings)
    already = run.data.tags.get(REGISTERED_VERSION_TAG)
    existing: dict[str, str] = {}
    if already:
        with registry_errors():
            existing = client.get_model_version(model, already).tags
        if package_arn_tag(environment) in existing:
            arn = existing[package_arn_tag(environment)]
            return Published(model, already, existing[SAGEMAKER_MODEL_DATA_TAG], arn)
    group = package_group_name(model, environment)
    ensure_package_group(sagemaker, model, group)
    challenger = aliases_of(client, model).get(CHALLENGER)
    version = register(client, settings, model, run.info.run_id)  # MLflow version, or raises
    progress(f"{model}: MLflow version {version} registered")
    uploaded: list[str] = []
    package_arn: str | None = None
    metrics_key = f"models/{model}/{version}/metrics.json"
    try:
        if SAGEMAKER_MODEL_DATA_TAG in existing:
            # Packaged for another environment already: reuse it, and never undo it here.
            model_data = existing[SAGEMAKER_MODEL_DATA_TAG]
        else:
            model_data = _upload_model_data(client, s3, aws, model, version, uploaded)
            metrics = {k: {"value": v} for k, v in sorted(run.data.metrics.items())}
            with aws_errors(f"uploading s3://{aws.bucket}/{metrics_key}", s3):
                s3.put_object(
                    Bucket=aws.bucket,
                    Key=metrics_key,
                    Body=json.dumps({"model": model, "version": version, "metrics": metrics}),
                    ContentType="application/json",
                )
            uploaded.append(metrics_key)
        progress(f"{model}: model data at {model_data}")
        with aws_errors(f"creating a model package in group {group}", sagemaker):
            package_arn = sagemaker.create_model_package(
                **package_request(aws, group, model, version, run, model_data, metrics_key)
            )["ModelPackageArn"]
        progress(f"{model}: model package {package_arn} ({PENDING})")
        with registry_errors():
            client.set_model_version_tag(model, version, SAGEMAKER_MODEL_DATA_TAG, model_data)
            client.set_model_version_tag(
                model, version, package_arn_tag(environment), str(package_arn)
            )
    except BaseException as exc:
        undone = _undo(client, s3, sagemaker, aws, model, version, run.info.run_id, bool(already),
                       uploaded, package_arn)  # fmt: skip
        if challenger and not already:
            with contextlib.suppress(Exception):
                client.set_registered_model_alias(model, CHALLENGER, challenger)
        if isinstance(exc, MlopsError):
            raise type(exc)(f"{exc.message}; {undone}", file=exc.file, field=exc.field) from exc
        raise
    return Published(model, version, model_data, str(package_arn))


def _upload_model_data(
    client: MlflowClient, s3: Any, aws: AwsSettings, model: str, version: str, uploaded: list[str]
) -> str:
    import mlflow

    key = model_data_key(model, version)
    with tempfile.TemporaryDirectory(prefix="mlops-package-") as tmp:
        with registry_errors():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model}/{version}", dst_path=str(Path(tmp) / "model")
            )
        archive = package_model(Path(local), Path(tmp) / "model.tar.gz")
        with aws_errors(f"uploading s3://{aws.bucket}/{key}", s3):
            s3.put_object(
                Bucket=aws.bucket,
                Key=key,
                Body=archive.read_bytes(),
                ContentType="application/gzip",
            )
    uploaded.append(key)
    return f"s3://{aws.bucket}/{key}"


def serving_image(aws: AwsSettings, run: Any) -> str:
    """The image a version is served by: the one its SageMaker training job trained in (same
    lock, same code), else ``MLOPS_AWS_SERVING_IMAGE`` (default: ``latest`` of the image
    repository in the execution role's account) for runs trained elsewhere."""
    trained_in: str | None = run.data.tags.get(SAGEMAKER_TRAINING_IMAGE_TAG)
    return trained_in or aws.default_serving_image()


def package_request(
    aws: AwsSettings,
    group: str,
    model: str,
    version: str,
    run: Any,
    model_data: str,
    metrics_key: str,
) -> dict[str, Any]:
    """The CreateModelPackage request: the image and data, metrics, and the lineage."""
    tags = run.data.tags
    lineage = {
        "mlflow_model": model,
        "mlflow_version": version,
        "mlflow_run_id": run.info.run_id,
        **{
            key.removeprefix("mlops.").replace(".", "_"): value[:256]
            for key, value in sorted(tags.items())
            if key.startswith((FINGERPRINT_TAG, DATASET_TAG, PIPELINE_VERSION_TAG))
        },
    }
    return {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": f"MLflow {model} v{version}, run {run.info.run_id}",
        "ModelApprovalStatus": PENDING,
        "InferenceSpecification": {
            "Containers": [{"Image": serving_image(aws, run), "ModelDataUrl": model_data}],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{aws.bucket}/{metrics_key}",
                }
            }
        },
        "MetadataProperties": {
            "CommitId": tags.get(GIT_COMMIT_TAG, "unknown")[:1024],
            "GeneratedBy": f"mlflow-run:{run.info.run_id}",
            "ProjectId": model,
        },
        "CustomerMetadataProperties": lineage,
        "Tags": [
            {"Key": "mlops:model", "Value": model},
            {"Key": "mlops:version", "Value": version},
        ],
    }


def _undo(
    client: MlflowClient,
    s3: Any,
    sagemaker: Any,
    aws: AwsSettings,
    model: str,
    version: str,
    run_id: str,
    version_existed: bool,
    uploaded: list[str],
    package_arn: str | None,
) -> str:
    """Best-effort undo while the original error propagates; says what was left behind."""

    left: list[str] = []
    if package_arn:
        try:
            sagemaker.delete_model_package(ModelPackageName=package_arn)
        except Exception:
            # moto does not implement DeleteModelPackage: at least make it undeployable.
            try:
                sagemaker.update_model_package(
                    ModelPackageArn=package_arn,
                    ModelApprovalStatus=REJECTED,
                    ApprovalDescription="registration failed; this package is not a version",
                )
                left.append(f"model package {package_arn} (marked {REJECTED})")
            except Exception:
                left.append(f"model package {package_arn}")
    for key in uploaded:
        try:
            s3.delete_object(Bucket=aws.bucket, Key=key)
        except Exception:
            left.append(f"s3://{aws.bucket}/{key}")
    if not version_existed:
        try:
            client.delete_model_version(model, version)
            client.delete_tag(run_id, REGISTERED_VERSION_TAG)
        except Exception:
            left.append(f"MLflow version {model}/{version}")
    if left:
        return "could not undo: " + ", ".join(left)
    if version_existed:
        return f"nothing was registered (MLflow version {version} existed before)"
    return "nothing was registered"


def package_arn_of(client: MlflowClient, model: str, version: str, environment: str) -> str:

    with registry_errors():
        tags = client.get_model_version(model, version).tags
    if package_arn_tag(environment) not in tags:
        raise RegistryError(
            f"{model} v{version} has no SageMaker model package in {environment}; run "
            f"`mlops sagemaker register {model} --env {environment}` on its run first"
        )
    return tags[package_arn_tag(environment)]


def set_approval(
    client: MlflowClient,
    aws: AwsSettings,
    model: str,
    version: str,
    environment: str,
    status: str = APPROVED,
    note: str = "",
) -> str:
    """Move a version's model package to Approved (or Rejected); return its previous status."""
    sagemaker = aws_client("sagemaker", aws)
    arn = package_arn_of(client, model, version, environment)
    with aws_errors(f"reading model package {arn}", sagemaker):
        before = sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
    with aws_errors(f"setting {arn} to {status}", sagemaker):
        sagemaker.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=note or f"{status} with `mlops sagemaker approve`",
        )
    return str(before)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def deploy(
    client: MlflowClient,
    aws: AwsSettings,
    model: str,
    environment: str,
    version: str,
    *,
    instance_type: str = "ml.m5.large",
    instance_count: int = 1,
    canary_percent: int | None = None,
    progress: Progress = lambda _: None,
) -> EndpointDeployment:
    """Create the model, a versioned endpoint config with data capture, and the endpoint.

    Refuses a version whose package is not Approved before creating anything. With
    ``canary_percent`` and an endpoint already serving a version, the new config keeps the old
    variant and sends that percentage to the new one (shift the rest with ``shift_traffic``).
    If the endpoint call fails, the model and endpoint config created for it are deleted.
    """
    from botocore.exceptions import ClientError

    sagemaker = aws_client("sagemaker", aws)
    arn = package_arn_of(client, model, version, environment)
    with aws_errors(f"reading model package {arn}", sagemaker):
        status = sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
    if status != APPROVED:
        raise AwsError(
            f"{model} v{version}: model package {arn} is {status}, not {APPROVED}; approve it "
            f"with `mlops sagemaker approve {model} --env {environment} --version {version}`. "
            "Nothing was deployed."
        )
    endpoint = endpoint_name(model, environment)
    current: dict[str, Any] | None = None
    try:
        current = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "400"):
            with aws_errors(f"reading endpoint {endpoint}", sagemaker):
                raise
    stamp = _stamp()
    model_name = f"{model}-v{version}-{stamp}"
    config_name = f"{endpoint}-v{version}-{stamp}"
    variants = [_variant(model_name, VARIANT, instance_type, instance_count, 1.0)]
    if canary_percent is not None and current is not None:
        old = _current_variants(sagemaker, current)
        if old:
            weight = canary_percent / 100
            canary = f"v{version}"  # beside the running variant, which keeps its name
            variants = [
                {**old[0], "InitialVariantWeight": 1 - weight},
                {**variants[0], "VariantName": canary, "InitialVariantWeight": weight},
            ]
    created: list[tuple[str, str]] = []
    try:
        with aws_errors(f"creating model {model_name}", sagemaker):
            sagemaker.create_model(
                ModelName=model_name,
                PrimaryContainer={
                    "ModelPackageName": arn,
                    "Environment": {"MLOPS_SERVE_ENDPOINT_NAME": endpoint},
                },
                ExecutionRoleArn=aws.role_arn,
                Tags=[{"Key": "mlops:model", "Value": model}],
            )
        created.append(("model", model_name))
        with aws_errors(f"creating endpoint config {config_name}", sagemaker):
            sagemaker.create_endpoint_config(
                EndpointConfigName=config_name,
                ProductionVariants=variants,
                DataCaptureConfig=data_capture_config(aws, environment),
                Tags=[{"Key": "mlops:version", "Value": version}],
            )
        created.append(("config", config_name))
        if current is None:
            with aws_errors(f"creating endpoint {endpoint}", sagemaker):
                sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        else:
            # Not implemented by moto: on the local stack a second deployment stops here.
            with aws_errors(f"updating endpoint {endpoint}", sagemaker):
                sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
    except BaseException:
        for kind, name in reversed(created):
            with contextlib.suppress(Exception):
                if kind == "config":
                    sagemaker.delete_endpoint_config(EndpointConfigName=name)
                else:
                    sagemaker.delete_model(ModelName=name)
        raise
    progress(f"{endpoint}: {'created' if current is None else 'updated'} with {config_name}")
    return EndpointDeployment(endpoint, config_name, model_name, version, current is None)


def _variant(
    model_name: str, name: str, instance_type: str, count: int, weight: float
) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model_name,
        "InitialInstanceCount": count,
        "InstanceType": instance_type,
        "InitialVariantWeight": weight,
    }


def _current_variants(sagemaker: Any, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    with aws_errors(f"reading endpoint config {endpoint['EndpointConfigName']}", sagemaker):
        config = sagemaker.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]
        )
    keys = ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType")
    return [{k: v[k] for k in keys if k in v} for v in config["ProductionVariants"]][-1:]


def data_capture_config(aws: AwsSettings, environment: str) -> dict[str, Any]:
    """Capture every request and response to S3, in the layout the monitor reads."""
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": aws.capture_percent,
        "DestinationS3Uri": capture_uri(aws.bucket, environment),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": CAPTURE_CONTENT_TYPES,
    }


def shift_traffic(
    aws: AwsSettings, model: str, environment: str, weights: dict[str, float]
) -> None:
    """Set variant weights on a canary endpoint (e.g. ``{"v1": 0, "v2": 1}`` to finish)."""
    sagemaker = aws_client("sagemaker", aws)
    endpoint = endpoint_name(model, environment)
    with aws_errors(f"shifting traffic on {endpoint}", sagemaker):
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": name, "DesiredWeight": weight} for name, weight in weights.items()
            ],
        )


def rollback(aws: AwsSettings, model: str, environment: str) -> str:
    """Point the endpoint back at the endpoint config it ran before the current one."""
    sagemaker = aws_client("sagemaker", aws)
    endpoint = endpoint_name(model, environment)
    with aws_errors(f"reading endpoint {endpoint}", sagemaker):
        current = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        configs = sagemaker.list_endpoint_configs(
            NameContains=f"{endpoint}-v", SortBy="CreationTime", SortOrder="Descending"
        )["EndpointConfigs"]
    names = [c["EndpointConfigName"] for c in configs]
    older = names[names.index(current) + 1 :] if current in names else []
    if not older:
        raise AwsError(f"{endpoint} runs {current} and has no earlier endpoint config to return to")
    with aws_errors(f"updating endpoint {endpoint} to {older[0]}", sagemaker):
        # Not implemented by moto; tested against botocore's Stubber.
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=older[0])
    return str(older[0])


def download_model_data(aws: AwsSettings, model_data: str, target: Path) -> Path:
    """Fetch a version's ``model.tar.gz`` and extract it like SageMaker into ``target``."""
    s3 = aws_client("s3", aws)
    bucket, _, key = model_data.removeprefix("s3://").partition("/")
    buffer = io.BytesIO()
    with aws_errors(f"downloading {model_data}", s3):
        s3.download_fileobj(bucket, key, buffer)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        archive = Path(tmp) / "model.tar.gz"
        archive.write_bytes(buffer.getvalue())
        return extract_model(archive, target)
