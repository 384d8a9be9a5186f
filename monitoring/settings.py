"""The monitor's settings from the environment: where captures are, and how to reach GitHub.

The token is a ``SecretStr``: it is sent in one header and never printed, logged or written to a
report. ``GITHUB_REPOSITORY`` and ``GITHUB_API_URL`` are the names GitHub Actions already sets, so
a workflow needs no extra configuration beyond the token.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.core.conventions import JOB_COMPLETION_INDEX, MONITOR_RUN_ID, MONITOR_SHARD_COUNT


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_MONITOR_", extra="ignore")

    captures: str | None = Field(
        default=None,
        description="Capture folder or s3:// prefix read when --captures is not given.",
    )
    environment: str = Field(
        default="local", description="Environment label on exported metrics (CloudWatch dimension)."
    )
    pushgateway: str | None = Field(
        default=None, description="Prometheus Pushgateway address, e.g. http://127.0.0.1:9091."
    )
    github_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MLOPS_MONITOR_GITHUB_TOKEN", "GITHUB_TOKEN"),
        description="Token allowed to create repository_dispatch events (contents: write).",
    )
    github_repository: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLOPS_MONITOR_GITHUB_REPOSITORY", "GITHUB_REPOSITORY"),
        description="owner/name of the repository whose retrain workflow is triggered.",
    )
    github_api_url: str = Field(
        default="https://api.github.com",
        validation_alias=AliasChoices("MLOPS_MONITOR_GITHUB_API_URL", "GITHUB_API_URL"),
        description="GitHub API base URL (GitHub Enterprise, or a local server in tests).",
    )
    dispatch_timeout_seconds: float = Field(default=10.0, gt=0)
    workers: int = Field(
        default=0,
        ge=0,
        description="Processes that read the window's capture files (0: one per core when the "
        "window is large enough to repay the forks; monitoring.parallel).",
    )
    kms_key: str | None = Field(
        default=None,
        description="KMS key the partial states of --shard auto are put on S3 with (the "
        "stack's artifact key, as the reports); default: the bucket's default encryption.",
    )
    resource_config: Path = Field(
        default=Path("/opt/ml/config/resourceconfig.json"),
        description="SageMaker's description of the job's hosts, read by --shard auto.",
    )
    # The three below are kept as text: monitoring.cluster checks them, so that a bad value is
    # an error naming the variable rather than a validation trace.
    job_completion_index: str | None = Field(
        default=None,
        validation_alias=JOB_COMPLETION_INDEX,
        description="Set by Kubernetes in each pod of an Indexed Job (0-based): the host index "
        "of --shard auto there, which takes precedence over resourceconfig.json.",
    )
    shard_count: str | None = Field(
        default=None,
        validation_alias=MONITOR_SHARD_COUNT,
        description="The Indexed Job's completions, set by the monitor's manifest: the host "
        "count of --shard auto on Kubernetes.",
    )
    run_id: str | None = Field(
        default=None,
        validation_alias=MONITOR_RUN_ID,
        description="The Job's name, set by the monitor's manifest through the downward API: "
        "the run that --shard-states must name on Kubernetes.",
    )
