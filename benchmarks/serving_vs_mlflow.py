"""This model server against `mlflow models serve --env-manager local`, on the same model.

Both servers run on 127.0.0.1 and get the same payloads (1 row and 100 rows, MLflow's
``dataframe_split`` JSON) at concurrency 1 and 8 from keep-alive client threads. Each round is
bounded by a request count and a time limit, and rounds alternate between the servers so that
machine noise hits both alike. For each case it prints requests/s, p50 and p99 latency, the
ratio between the servers, and the in-process ``predict`` time of the same rows as the floor:
the predict the server runs (``serving.fast_path`` when it reproduces the estimator exactly),
with the estimator's own ``predict`` beside it.

    .venv/bin/python benchmarks/serving_vs_mlflow.py --model-uri models:/penguins@staging
    .venv/bin/python benchmarks/serving_vs_mlflow.py --model-uri path/to/model/folder

Registry URIs use the usual MLOPS_ROOT / MLOPS_HOME / MLFLOW_TRACKING_URI settings.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited with {process.returncode} before answering /ping")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"no answer on /ping from port {port} in {STARTUP_SECONDS} s")


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own, so stopping it also stops the workers it spawns (mlflow does).
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def load_round(
    port: int,
    body: bytes,
    concurrency: int,
    requests: int,
    seconds: float,
    path: str = "/invocations",
    headers: dict[str, str] | None = None,
) -> tuple[float, list[float], int]:
    """(requests/s, latencies in s, errors) for one bounded round."""
    per_client = max(1, requests // concurrency)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    headers = headers or {"Content-Type": "application/json"}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        failed = 0
        for _ in range(per_client):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            failed += response.status != 200
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process(
    model_dir: Path, frames: dict[str, Any], repeats: int, fast_path: bool = True
) -> dict[str, float]:
    import warnings

    from serving.model import load

    model = load(model_dir, fast_path=fast_path)
    # As a server worker predicts (serving.app silences warnings once the model is loaded):
    # scikit-learn's forests pay per tree for every active warnings filter.
    warnings.resetwarnings()
    warnings.simplefilter("ignore")
    floors = {}
    for name, frame in frames.items():
        model.predict(frame)
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.predict(frame)
            timings.append(time.perf_counter() - started)
        floors[name] = statistics.median(timings)
    return floors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True, help="Model folder or registry URI.")
    parser.add_argument("--requests", type=int, default=400, help="Requests per round.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Time limit per round.")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds per server and case.")
    args = parser.parse_args()

    import pandas as pd

    from serving.model import load, resolve

    model_dir = resolve(args.model_uri)
    model = load(model_dir)
    example = json.loads((model_dir / "input_example.json").read_text())
    rows = [example["data"][i % len(example["data"])] for i in range(100)]
    payloads = {
        "1 row": {"dataframe_split": {"columns": example["columns"], "data": rows[:1]}},
        "100 rows": {"dataframe_split": {"columns": example["columns"], "data": rows}},
    }
    bodies = {name: json.dumps(p).encode() for name, p in payloads.items()}
    frames = {
        name: pd.DataFrame(p["dataframe_split"]["data"], columns=model.columns)
        for name, p in payloads.items()
    }
    floors = in_process(model_dir, frames, repeats=200)
    # What the estimator's own predict costs, for comparison (the server uses the fast path
    # when it reproduces the estimator exactly; `fast path` below says whether it did).
    estimator_floors = in_process(model_dir, frames, repeats=100, fast_path=False)

    # mlflow serve starts `uvicorn` by name: the venv's bin must be on PATH.
    env = {
        **os.environ,
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    ours_port, peer_port = free_port(), free_port()
    servers = {
        "this server": start(
            [sys.executable, "-m", "serving", "--model-uri", str(model_dir), "--port",
             str(ours_port), "--host", "127.0.0.1"], env,
        ),
        "mlflow serve": start(
            [str(BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager",
             "local", "-h", "127.0.0.1", "-p", str(peer_port)], env,
        ),
    }  # fmt: skip
    ports = {"this server": ours_port, "mlflow serve": peer_port}
    try:
        for name, process in servers.items():
            wait_ready(ports[name], process)
        results: dict[tuple[str, int, str], tuple[list[float], float, int]] = {}
        for payload, body in bodies.items():
            for concurrency in (1, 8):
                for name in servers:  # warm-up, not measured
                    load_round(ports[name], body, concurrency, 50, 5)
                for _ in range(args.rounds):
                    for name in servers:
                        rate, latencies, errors = load_round(
                            ports[name], body, concurrency, args.requests, args.seconds
                        )
                        key = (payload, concurrency, name)
                        old = results.get(key, ([], 0.0, 0))
                        results[key] = (old[0] + latencies, old[1] + rate / args.rounds,
                                        old[2] + errors)  # fmt: skip
    finally:
        for process in servers.values():
            stop(process)

    print(f"{'payload':9s} {'conc':>4s} {'server':13s} {'req/s':>8s} {'p50 ms':>8s} "
          f"{'p99 ms':>8s} {'errors':>6s}")  # fmt: skip
    for payload in bodies:
        for concurrency in (1, 8):
            for name in servers:
                latencies, rate, errors = results[(payload, concurrency, name)]
                print(
                    f"{payload:9s} {concurrency:4d} {name:13s} {rate:8.1f} "
                    f"{percentile(latencies, 0.5) * 1000:8.2f} "
                    f"{percentile(latencies, 0.99) * 1000:8.2f} {errors:6d}"
                )
            ours = results[(payload, concurrency, "this server")]
            peer = results[(payload, concurrency, "mlflow serve")]
            print(
                f"{'':9s} {'':4s} ratio: throughput x{ours[1] / peer[1]:.1f}, p99 "
                f"{percentile(ours[0], 0.99) / percentile(peer[0], 0.99):.2f} of mlflow's; "
                f"overhead over in-process predict (p50) "
                f"{(percentile(ours[0], 0.5) - floors[payload]) * 1000:.2f} ms"
            )
    print(f"fast path: {'on' if model.fast is not None else 'off (see the server log)'}")
    for payload, floor in floors.items():
        print(
            f"in-process predict as served, {payload}: median {floor * 1000:.2f} ms "
            f"(the estimator's own predict: {estimator_floors[payload] * 1000:.2f} ms)"
        )


if __name__ == "__main__":
    main()
