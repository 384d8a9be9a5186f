"""The entry point as the image runs it: shutdown flushes captures, `mlops predict` and
`mlops serve` go through the same code path."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import orjson
import pytest
import requests

from serving.capture import read_captures

pytestmark = pytest.mark.serving

COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]


def test_graceful_shutdown_writes_buffered_captures(start: Any, stop: Any) -> None:
    # A flush period far longer than the test: only the shutdown can write the record.
    running = start(MLOPS_SERVE_CAPTURE_FLUSH_SECONDS="3600")
    body = {"dataframe_split": {"columns": COLUMNS, "data": [[39.1, 18.7, 181.0, 3750.0, "Dream"]]}}
    response = requests.post(
        f"{running.url}/invocations",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200
    assert list(read_captures(running.capture_dir)) == []
    # uvicorn re-raises SIGTERM once its graceful shutdown is done: that is a clean stop.
    assert stop(running.process) in (0, -signal.SIGTERM)
    assert len(list(read_captures(running.capture_dir))) == 1


def _mlops(trained: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "MLOPS_ROOT": str(trained.settings.root),
        "MLOPS_HOME": str(trained.settings.state_dir),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_mlops_predict_scores_a_file_like_the_server(trained: Any, tmp_path: Any) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(",".join(COLUMNS) + "\n39.1,18.7,181,3750,Torgersen\n50,15,220,5000,Biscoe\n")
    target = tmp_path / "out" / "predictions.json"
    result = _mlops(
        trained, "predict", "penguins", "--version", trained.version,
        "--input", str(source), "--output", str(target),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert orjson.loads(target.read_bytes()) == {"predictions": ["Adelie", "Gentoo"]}


def test_mlops_predict_rejects_bad_rows_with_exit_2_naming_the_column(
    trained: Any, tmp_path: Any
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(",".join(COLUMNS) + "\n39.1,18.7,181,3750,Atlantis\n")
    target = tmp_path / "predictions.csv"
    result = _mlops(
        trained, "predict", "penguins", "--version", trained.version,
        "--input", str(source), "--output", str(target),
    )  # fmt: skip
    assert result.returncode == 2
    assert "island" in result.stderr and "Atlantis" in result.stderr
    assert not target.exists()


def test_mlops_serve_without_a_registered_alias_is_exit_2(trained: Any) -> None:
    result = _mlops(trained, "serve", "penguins", "--alias", "nowhere", "--port", "1")
    assert result.returncode == 2
    assert "nowhere" in result.stderr


def test_image_healthcheck_passes_only_while_the_server_answers_ping(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from serving.healthcheck import main as healthcheck

    monkeypatch.setenv("MLOPS_SERVE_PORT", server.url.rsplit(":", 1)[1])
    assert healthcheck() == 0
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        monkeypatch.setenv("MLOPS_SERVE_PORT", str(unused.getsockname()[1]))
        assert healthcheck() == 1


def test_metrics_of_several_workers_add_up_whichever_worker_answers_the_scrape(
    start: Any, stop: Any
) -> None:
    """With several workers, /metrics is the sum over all, not the view of one process."""
    server = start(MLOPS_SERVE_WORKERS="3")
    sent = 40
    row = {"dataframe_split": {"columns": COLUMNS, "data": [[39.1, 18.7, 181.0, 3750.0, "Dream"]]}}
    for _ in range(sent):
        # Sent as soon as one worker's /ping said ready: a worker still loading its model
        # must not take any of them (it once answered 503).
        answer = requests.post(f"{server.url}/invocations", json=row, timeout=10)
        assert answer.status_code == 200, answer.text
    totals = set()
    for _ in range(6):  # each scrape may land on either worker
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        totals.add(_requests_total(text))
    assert totals == {sent}, f"scrapes disagreed or missed requests: {totals}"
    assert stop(server.process) in (0, -signal.SIGTERM)


def _requests_total(exposition: str) -> int:
    from prometheus_client.parser import text_string_to_metric_families

    from serving.metrics import REQUESTS

    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == REQUESTS
        )
    )


def test_the_fast_path_is_on_by_default_and_answers_as_the_estimator_does(
    start: Any, stop: Any
) -> None:
    rows = [
        [35.0 + (i % 25), 14.0 + (i % 8) / 2, 175.0 + (i % 45), 3000.0 + 7 * i,
         ["Biscoe", "Dream", "Torgersen"][i % 3]]
        for i in range(300)
    ]  # fmt: skip
    body = orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows}})
    answers, logged = {}, {}
    for setting in ("true", "false"):
        running = start(MLOPS_SERVE_FAST_PATH=setting)
        response = requests.post(
            f"{running.url}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200
        answers[setting] = response.json()["predictions"]
        stop(running.process)
        loaded = [
            orjson.loads(line)
            for line in running.log.read_text().splitlines()
            if '"model loaded"' in line
        ]
        logged[setting] = loaded[0]["fast_path"]
    assert logged == {"true": True, "false": False}
    assert answers["true"] == answers["false"]


def test_a_model_that_cannot_load_stops_a_multi_worker_server_with_exit_2(
    trained: Any, tmp_path: Any
) -> None:
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(trained.model_dir, broken)
    for pickled in broken.glob("*.pkl"):
        pickled.write_bytes(b"not a pickle")
    env = {"PATH": "/usr/bin:/bin", "MLOPS_SERVE_WORKERS": "2", "MLOPS_SERVE_PORT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "serving", "serve", "--model-uri", str(broken)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot load the model" in result.stderr
