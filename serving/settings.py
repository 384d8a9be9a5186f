"""How the server is configured: the environment, read once at start-up.

Every setting is ``MLOPS_SERVE_<NAME>``; the two that SageMaker sets on its containers,
``SAGEMAKER_BIND_TO_PORT`` and ``SAGEMAKER_MODEL_SERVER_WORKERS``, win over ours so the same
image behaves as SageMaker expects without extra configuration.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SAGEMAKER_MODEL_DIR = "/opt/ml/model"


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_SERVE_", extra="ignore")

    model_uri: str | None = Field(
        default=None,
        description="Local MLflow model folder, file:// path, or models:/NAME@ALIAS | "
        "models:/NAME/VERSION | runs:/ID/PATH; default $SM_MODEL_DIR or /opt/ml/model.",
    )
    # Loopback by default: the image sets 0.0.0.0 explicitly, a laptop never exposes by accident.
    host: str = "127.0.0.1"
    port: int = Field(
        default=8080,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("SAGEMAKER_BIND_TO_PORT", "MLOPS_SERVE_PORT"),
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        validation_alias=AliasChoices("SAGEMAKER_MODEL_SERVER_WORKERS", "MLOPS_SERVE_WORKERS"),
    )
    # SageMaker's real-time endpoints refuse payloads over 6 MB; refuse the same here.
    max_body_bytes: int = Field(default=6 * 1024 * 1024, ge=1)
    batch_max_wait_ms: float = Field(
        default=2.0, ge=0, description="Longest a request waits for others to share its batch."
    )
    batch_max_rows: int = Field(default=1024, ge=1, description="Most rows in one predict call.")
    capture_destination: str | None = Field(
        default=None,
        description="Local folder or s3://bucket/prefix for Data Capture; off if unset.",
    )
    capture_percent: float = Field(default=100.0, ge=0, le=100)
    capture_flush_seconds: float = Field(default=5.0, gt=0)
    capture_flush_bytes: int = Field(default=1024 * 1024, ge=1)
    endpoint_name: str | None = Field(
        default=None, description="First folder of the capture layout; the model's name if unset."
    )
    variant_name: str = Field(default="AllTraffic", description="SageMaker's default variant.")
    fast_path: bool = Field(
        default=True,
        description="Predict through serving.fast_path when it matches the estimator exactly.",
    )
    silence_warnings: bool = Field(
        default=True,
        description="Ignore Python warnings once the model is loaded (see serving.app).",
    )
    log_level: str = "info"
    access_log: bool = False
