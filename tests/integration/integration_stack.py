"""What the integration tests share: the running stack's handle, free ports, CLI runs.

Imported by name (``from integration_stack import ...``): pytest puts this folder on sys.path.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from pipelines.aws.local_stack import Stack
from pipelines.cli.main import app

REPO_ROOT = Path(__file__).resolve().parents[2]
GIT_SHA = "feedfacefeedfacefeedfacefeedfacefeedface"
# The gates guard models, not this machine's load: no latency gate on a busy CI runner (and faster).
FAST_GATES = "gates.latency=null"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalStack:
    stack: Stack
    root: Path
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.stack.client_env(),
            "MLOPS_ROOT": str(self.root),
            "MLOPS_HOME": str(self.home),
            "GITHUB_SHA": GIT_SHA,
            "COLUMNS": "250",  # rich must not wrap the messages the tests look for
        }

    def mlops(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        """One CLI command in-process; an unexpected exception is raised, not read as exit 1."""
        result = CliRunner().invoke(app, list(args), env={**self.env, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.env["MLFLOW_TRACKING_URI"], self.env["MLFLOW_TRACKING_URI"])

    def boto(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
