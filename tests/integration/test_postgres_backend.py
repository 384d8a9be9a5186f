"""``--db postgresql``: MLflow's backend is a private PostgreSQL cluster from Debian's packages.

Skipped only where PostgreSQL is not installed (CI installs just Prometheus); it runs here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from integration_stack import free_port

from pipelines.aws.local_stack import Stack, postgres_bindir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        postgres_bindir() is None,
        reason="PostgreSQL (Debian's postgresql package) is not installed",
    ),
]


def test_mlflow_runs_on_postgresql_and_down_stops_the_cluster() -> None:
    import psycopg
    from mlflow import MlflowClient

    # Not under pytest's tmp folder: that is private to this user, and PostgreSQL refuses to run
    # as root, so the stack runs it as the postgres user, who must reach its data folder.
    home = Path(tempfile.mkdtemp(prefix="mlops-pg-test-"))
    home.chmod(0o755)
    ports = {f"{name}_port": free_port() for name in ("moto", "mlflow", "model", "postgres")}
    stack = Stack(home, {**ports, "db": "postgresql", "prometheus_bin": "/nonexistent"})
    try:
        stack.up()
        assert stack.backend_store_uri().startswith("postgresql+psycopg://")
        uri = stack.client_env()["MLFLOW_TRACKING_URI"]
        MlflowClient(uri, uri).create_experiment("on-postgres")
        dsn = f"host=127.0.0.1 port={ports['postgres_port']} user=mlops dbname=mlflow"
        with psycopg.connect(dsn) as connection:
            names = {row[0] for row in connection.execute("select name from experiments")}
        assert "on-postgres" in names
        pid = next(s.pid for s in stack.status() if s.name == "postgres")
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    assert pid is not None
    assert (
        not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes()
    ), "postgres survived `down`"
