"""The streamed window's memory is bounded by the model's width, not by the traffic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from serving.capture import make_record

pytestmark = pytest.mark.monitoring

# Folds a capture folder the way `mlops monitor` does and prints the peak RSS in KiB. The exact
# limit is small so that the numeric columns pass it and run on their sketches.
FOLD = """
import resource, sys
import numpy as np
from monitoring.drift import profile
from monitoring.window import fold_window, new_state
from pipelines.core.datasets import ColumnSpec
from serving.capture import capture_files

names = ["a", "b", "c"]
schema = {n: ColumnSpec.model_validate({"type": "float"}) for n in names}
schema["island"] = ColumnSpec.model_validate({"type": "string"})
kinds = {n: "numeric" for n in names} | {"island": "categorical"}
edges = {n: profile(n, "numeric", np.arange(100.0)).psi_edges for n in names}
state = new_state(sys.argv[1], kinds, edges, "categorical", np.zeros(0), exact_limit=5000)
fold_window(state, capture_files(sys.argv[1]), schema)
assert state.records == int(sys.argv[2]), state.records
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _write(folder: Path, requests: int) -> None:
    """``requests`` JSON captures of two rows each, 5,000 to a file, in hour folders."""
    per_file = 5000
    for start in range(0, requests, per_file):
        hour = folder / "penguins" / "AllTraffic" / "2026" / "01" / "01" / f"{start // 40000:02d}"
        hour.mkdir(parents=True, exist_ok=True)
        lines = []
        for k in range(start, min(start + per_file, requests)):
            data = [[k % 97 + 0.5, k % 89 * 1.5, k % 13, ["Biscoe", "Dream"][k % 2]]] * 2
            body = {"dataframe_split": {"columns": ["a", "b", "c", "island"], "data": data}}
            record = make_record(
                orjson.dumps(body), "application/json", b'{"predictions": ["x", "y"]}',
                "application/json", event_id=str(k),
            )  # fmt: skip
            lines.append(orjson.dumps(record))
        (hour / f"{start:08d}.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def _peak_kib(folder: Path, requests: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", FOLD, str(folder), str(requests)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_peak_memory_at_4x_the_records_is_within_10_percent_of_1x(tmp_path: Path) -> None:
    """Holding rows would cost about 1 KB a request: 60,000 more requests would show."""
    one, four = tmp_path / "1x", tmp_path / "4x"
    _write(one, 20_000)
    _write(four, 80_000)
    small, large = _peak_kib(one, 20_000), _peak_kib(four, 80_000)
    assert large <= small * 1.10, f"peak {large} KiB at 4x vs {small} KiB at 1x"
