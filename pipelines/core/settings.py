"""Where the pipeline keeps its state and finds its definitions, read from the environment.

The embedded default keeps MLflow's SQLite database and artifacts under one ignored folder
(``.mlops/``); setting ``MLFLOW_TRACKING_URI`` points every command at a real server instead,
with no code change.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def find_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` that holds models/, so any subfolder works."""
    for folder in (start, *start.parents):
        if (folder / "models").is_dir():
            return folder
    return start


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    root: Path = Field(default_factory=lambda: find_root(Path.cwd()), description="The checkout.")
    home: Path | None = Field(
        default=None, description="State folder for the embedded default; <root>/.mlops if unset."
    )
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLOPS_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="MLflow tracking and registry URI; SQLite under home if unset.",
    )
    registry_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long to wait for a remote tracking server to answer."
    )

    @property
    def state_dir(self) -> Path:
        return (self.home or self.root / ".mlops").resolve()

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def environments_dir(self) -> Path:
        return self.root / "environments"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def artifact_root(self) -> Path:
        return self.state_dir / "artifacts"

    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def is_embedded(self) -> bool:
        # An empty value counts as unset: CI sets the variable from a secret that may not exist.
        return not self.tracking_uri
