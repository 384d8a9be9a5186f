"""A model trained once for the suite and a server started on 127.0.0.1 for the HTTP tests.

The server is a real subprocess started with the image's entry point (``python -m serving``,
which is what ``serve`` runs), configured through the same environment variables the image
uses, and stopped by its process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from examples_root import copy_examples

from pipelines.core.settings import Settings

STARTUP_SECONDS = 60


@dataclass
class Trained:
    settings: Settings
    version: str
    model_dir: Path  # a local copy of the logged model, for in-process predictions

    @property
    def uri(self) -> str:
        return f"models:/penguins/{self.version}"


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    capture_dir: Path
    log: Path
    max_body_bytes: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MLOPS_", "SAGEMAKER_", "SM_"))
    }
    env.update(extra)
    return env


# Session scope: training is the slow part, and every module here serves the same model.
@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One penguins model through every stage into a scratch registry."""
    import mlflow

    from pipelines.core.registry import connect
    from pipelines.stages.run import run_model

    base = tmp_path_factory.mktemp("serving")
    root = copy_examples(base / "repo")
    settings = Settings(root=root, home=base / "state", tracking_uri=None)
    client = connect(settings)
    # This suite tests the server, not the model: a busy test machine must not fail the gate.
    outcome = run_model(client, settings, "penguins", overrides={"gates.latency.p99_ms": 60000})
    while mlflow.active_run():
        mlflow.end_run("FAILED")
    assert outcome.version, f"training the test model failed: {outcome.rejected}"
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/penguins/{outcome.version}", dst_path=str(base / "model")
    )
    return Trained(settings, outcome.version, Path(local))


def start_server(trained: Trained, workdir: Path, **env: str) -> RunningServer:
    port = free_port()
    capture_dir = workdir / "capture"
    log = workdir / "server.log"
    max_body = env.pop("max_body", "200000")
    environment = clean_env(
        **{
            "MLOPS_ROOT": str(trained.settings.root),
            "MLOPS_HOME": str(trained.settings.state_dir),
            "MLOPS_SERVE_MODEL_URI": trained.uri,
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "MLOPS_SERVE_CAPTURE_DESTINATION": str(capture_dir),
            "MLOPS_SERVE_CAPTURE_FLUSH_SECONDS": "0.2",
            "MLOPS_SERVE_MAX_BODY_BYTES": max_body,
            **env,
        }
    )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving", "serve"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return RunningServer(url, process, capture_dir, log, int(max_body))
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    stop_server(process)
    raise AssertionError(f"the server did not answer /ping in {STARTUP_SECONDS} s")


def stop_server(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return int(process.returncode)


@pytest.fixture(scope="module")
def server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(trained, tmp_path_factory.mktemp("server"))
    yield running
    stop_server(running.process)


@pytest.fixture(scope="module")
def start(
    trained: Trained, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., RunningServer]]:
    """Start another server with extra environment; every one started is stopped at the end."""
    started: list[RunningServer] = []

    def _start(**env: str) -> RunningServer:
        running = start_server(trained, tmp_path_factory.mktemp("server"), **env)
        started.append(running)
        return running

    yield _start
    for running in started:
        stop_server(running.process)


@pytest.fixture
def stop() -> Callable[[subprocess.Popen[bytes]], int]:
    return stop_server
