"""How long `mlops --help` takes, against MLflow's own CLI (`mlflow --help`) in the same run.

The target: `mlops --help` answers in under half a second because MLflow, pandas and
scikit-learn load only inside the commands that use them. Runs alternate between the two
commands so that machine noise hits both alike.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    commands = {
        "mlops --help": [str(BIN / "mlops"), "--help"],
        "mlflow --help": [str(BIN / "mlflow"), "--help"],
    }
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():
        _time(command)  # warm the file cache once
    for _ in range(runs):
        for name, command in commands.items():
            timings[name].append(_time(command))
    ours, peer = (statistics.median(timings[n]) for n in commands)
    for name, values in timings.items():
        median_ms, max_ms = statistics.median(values) * 1000, max(values) * 1000
        print(f"{name:14s} median {median_ms:7.1f} ms  max {max_ms:7.1f} ms")
    print(f"ratio mlops/mlflow: {ours / peer:.2f} ({runs} alternating runs each)")
    print(f"target < 500 ms: {'met' if ours < 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
