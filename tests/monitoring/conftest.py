"""Fixtures for the monitoring suite: a promoted penguins champion and capture files to read.

The champion is trained once per session into a scratch registry (training is the slow part).
Captures are written with the server's own ``CaptureWriter``, so they are in exactly the format
a running server (or SageMaker) writes; the demo test covers the real server end to end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from examples_root import EXAMPLE_DATA, copy_examples
from monitoring_helpers import FEATURES, Champion, Writer

from pipelines.core.settings import Settings


def _clear_pins(root: Path) -> None:
    from pipelines.core.pins import environment_path, list_environments, load_environment, render

    for name in list_environments(root / "environments"):
        environment = load_environment(root / "environments", name)
        empty = environment.model_copy(update={"models": {}})
        environment_path(root / "environments", name).write_text(render(empty), encoding="utf-8")


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """penguins trained, gated, registered and promoted to staging and prod (the champion)."""
    import mlflow

    from pipelines.core.registry import connect
    from pipelines.stages.run import run_model

    base = tmp_path_factory.mktemp("monitoring")
    root = copy_examples(base / "repo")
    _clear_pins(root)
    settings = Settings(root=root, home=base / "state", tracking_uri=None)
    client = connect(settings)
    # These tests are about monitoring, not the model: a busy machine must not fail the gate.
    outcome = run_model(
        client,
        settings,
        "penguins",
        overrides={"gates.latency.p99_ms": 60000},
        promote_to=["staging", "prod"],
    )
    while mlflow.active_run():
        mlflow.end_run("FAILED")
    assert outcome.version, f"training the test model failed: {outcome.rejected}"
    return Champion(settings, outcome.version)


@pytest.fixture(scope="session")
def seattle(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """seattle_weather (a regression with a per-feature PSI override) as the champion."""
    import mlflow

    from pipelines.core.registry import connect
    from pipelines.stages.run import run_model

    base = tmp_path_factory.mktemp("monitoring-seattle")
    root = copy_examples(base / "repo")
    _clear_pins(root)
    settings = Settings(root=root, home=base / "state", tracking_uri=None)
    outcome = run_model(
        connect(settings),
        settings,
        "seattle_weather",
        overrides={"gates.latency.p99_ms": 60000, "estimator.params.max_iter": 50},
        promote_to=["staging", "prod"],
    )
    while mlflow.active_run():
        mlflow.end_run("FAILED")
    assert outcome.version, f"training the test model failed: {outcome.rejected}"
    return Champion(settings, outcome.version)


@pytest.fixture(scope="session")
def penguins() -> pd.DataFrame:
    return pd.read_csv(EXAMPLE_DATA / "penguins" / "penguins.csv")


@pytest.fixture
def write_captures(tmp_path: Path) -> Iterator[Writer]:
    """``write_captures(frame, dest=None, rows=5, shape='csv')``: one record per ``rows`` rows."""
    from serving.capture import CaptureWriter

    def write(
        frame: pd.DataFrame,
        dest: str | Path | None = None,
        rows: int = 5,
        shape: str = "csv",
        columns: list[str] | None = None,
    ) -> Path:
        destination = str(dest or tmp_path / "capture")
        writer = CaptureWriter(destination, "penguins", flush_seconds=60)
        cols = columns or FEATURES
        for start in range(0, len(frame), rows):
            chunk = frame.iloc[start : start + rows]
            predictions = chunk["species"].tolist()
            if shape == "csv":
                body, kind = chunk[cols].to_csv(index=False).encode(), "text/csv"
            elif shape == "split":
                split = {"columns": cols, "data": chunk[cols].to_numpy().tolist()}
                body = json.dumps({"dataframe_split": split}).encode()
                kind = "application/json"
            else:
                body = chunk[cols].to_json(orient="records").encode()
                body = b'{"dataframe_records": ' + body + b"}"
                kind = "application/json"
            out = ('{"predictions": [' + ",".join(f'"{p}"' for p in predictions) + "]}").encode()
            writer.capture(body, kind, out, "application/json")
        writer.close()
        return Path(destination) if not destination.startswith("s3://") else Path("/")

    yield write


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(7)
