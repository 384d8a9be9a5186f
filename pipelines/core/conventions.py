"""Where things live in the cloud: names and S3 keys that more than one part relies on.

The packaging step that uploads a model version, the Pulumi program that points an endpoint at
it, the Kubernetes init container that downloads it and the drift monitor that reads captures
all derive their paths here, so they cannot drift apart. Importing this module has no side
effects and does not import Pulumi.
"""

from __future__ import annotations

import re

MODELS_PREFIX = "models"
CAPTURES_PREFIX = "captures"
BASELINES_PREFIX = "baselines"
MONITORING_PREFIX = "monitoring-reports"
MODEL_ARCHIVE = "model.tar.gz"
# SageMaker endpoint, model package group and Kubernetes names allow no underscore.
_SLUG_INVALID = re.compile(r"[^a-z0-9-]+")

TAG_MODEL = "model"
TAG_ENVIRONMENT = "environment"
TAG_OWNER = "owner"
REQUIRED_TAGS = (TAG_MODEL, TAG_ENVIRONMENT, TAG_OWNER)
SHARED = "shared"  # the model tag of resources that serve every model (bucket, ECR, budget)


def slug(name: str) -> str:
    """A model name as SageMaker and Kubernetes accept it: lowercase, digits and hyphens."""
    return _SLUG_INVALID.sub("-", name.lower()).strip("-")


def model_data_key(model: str, version: str) -> str:
    """S3 key of a registered version's archive: ``models/<model>/<version>/model.tar.gz``.

    The archive holds the MLflow model folder at its root, as SageMaker extracts it into
    ``/opt/ml/model``; the Kubernetes init container extracts the same archive there too.
    """
    return f"{MODELS_PREFIX}/{model}/{version}/{MODEL_ARCHIVE}"


def model_data_url(bucket: str, model: str, version: str) -> str:
    return f"s3://{bucket}/{model_data_key(model, version)}"


def endpoint_name(model: str, environment: str) -> str:
    """One stable endpoint per model and environment; versions change behind it in place.

    Never cut short (two models could then share it): ``pipelines.core.deploy_limits`` refuses a
    model whose names would not fit, before anything is deployed.
    """
    return f"{slug(model)}-{slug(environment)}"


def package_group_name(model: str, environment: str) -> str:
    """The SageMaker model package group of a model in one environment."""
    return f"{slug(model)}-{slug(environment)}"


def capture_prefix(environment: str) -> str:
    """Data Capture root of an environment; the endpoint name and variant follow it.

    SageMaker and the serving image both write ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``,
    which is the layout ``serving.capture.read_captures`` reads.
    """
    return f"{CAPTURES_PREFIX}/{environment}"


def capture_uri(bucket: str, environment: str) -> str:
    return f"s3://{bucket}/{capture_prefix(environment)}"


def baseline_prefix(model: str, version: str) -> str:
    """Where ``mlops monitor-baseline`` freezes a deployed version's monitoring reference."""
    return f"{BASELINES_PREFIX}/{model}/{version}"


# `mlops monitor --shard auto` in a Kubernetes Indexed Job (monitoring.cluster): Kubernetes sets
# the pod's index (0-based) itself; the monitor's manifest (infra/components/kubernetes_monitor.py)
# sets the count, the Job's completions, and the run's id, the Job's name, from this label.
JOB_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
MONITOR_SHARD_COUNT = "MLOPS_MONITOR_SHARD_COUNT"
MONITOR_RUN_ID = "MLOPS_MONITOR_RUN_ID"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


# The repository_dispatch event a drift alarm sends (monitoring.retrain, the EventBridge API
# destination in infra) and the retrain workflow listens for.
RETRAIN_EVENT_TYPE = "drift-detected"
# The headers of every GitHub REST call the platform makes (GitHub's documented media type and
# the API version its requests were written against).
GITHUB_API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
# The Authorization header's value is set on the connection by `mlops retrain-token`, never by
# the Pulumi program: Pulumi state (which pull-request previews read) holds this placeholder.
DISPATCH_TOKEN_PLACEHOLDER = "Bearer unset: run `mlops retrain-token --env <stack>`"


def dispatch_connection_name(environment: str) -> str:
    """The EventBridge connection that carries a stack's repository_dispatch token."""
    return f"mlops-{slug(environment)}-github-dispatch"


def tags(model: str, environment: str, owner: str) -> dict[str, str]:
    """The tags every taggable resource carries, so cost and ownership can be traced."""
    return {
        TAG_MODEL: model,
        TAG_ENVIRONMENT: environment,
        TAG_OWNER: owner,
        "managed-by": "pulumi",
    }


def slug_collisions(names: list[str]) -> dict[str, list[str]]:
    """Names that would share one cloud name (``a-b`` and ``a_b`` both become ``a-b``)."""
    by_slug: dict[str, list[str]] = {}
    for name in names:
        by_slug.setdefault(slug(name), []).append(name)
    return {key: sorted(group) for key, group in by_slug.items() if len(group) > 1}


# The serving image's ECR repository: the image workflow's default `repository` input
# (.github/workflows/image.yml) and the Pulumi config `imageRepository` the template ships.
IMAGE_REPOSITORY = "mlops-serving"


def image_uri(account: str, region: str, repository: str, commit: str) -> str:
    """The one image built from ``commit``, as the image workflow pushes it: tagged by commit
    (``$REGISTRY/$REPOSITORY:$GITHUB_SHA``, never ``latest``), in the account's own registry.

    Endpoints serve it and training jobs train in it, so what is trained is what is served.
    """
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}:{commit}"
