"""MLFLOW_TRACKING_URI=<tracking server ARN>: what the stacks' managed registry needs on the client.

Issue 15, item 3: the `arn:` scheme only resolves with AWS's `sagemaker-mlflow` plugin, which
the locks now install. Resolved offline (no request is made while the stores are built).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.code

SERVER = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/mlops-prod"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SAGEMAKER_PRESIGNED_URL_UPLOAD_ENABLED", raising=False)


def test_a_tracking_server_arn_resolves_to_the_managed_stores_in_its_own_region() -> None:
    from mlflow.tracking._model_registry.utils import _get_store as registry_store
    from mlflow.tracking._tracking_service.utils import _get_store as tracking_store

    tracking = tracking_store(SERVER)
    assert type(tracking).__module__.startswith("sagemaker_mlflow.")
    # The server's region, not the client's default: the ARN says where the server is.
    assert tracking.get_host_creds().host == "https://eu-west-1.experiments.sagemaker.aws"
    assert type(registry_store(SERVER)).__module__.startswith("sagemaker_mlflow.")


def test_the_plugin_keeps_mlflows_own_s3_artifact_behaviour() -> None:
    """It registers the `s3` scheme too; by default that must be MLflow's S3 repository (what
    the moto tests exercise), not presigned uploads through the server."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    repository = get_artifact_repository("s3://bucket/mlflow/1/run/artifacts")
    assert isinstance(repository, S3ArtifactRepository)
    assert getattr(repository, "_use_presigned", False) is False
