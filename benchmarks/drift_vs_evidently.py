"""Drift detection: this project's ``monitoring.drift`` against Evidently 0.7.23's DataDriftPreset.

Both sides read the same reference and current data (parquet; numeric and categorical columns,
some shifted) and decide per column with their default tests. Each run is a whole process
(start-up, reading the data, the computation), timed from outside, with its peak resident memory
read from ``wait4``; the two sides alternate, round after round, so machine noise hits both alike.
Evidently 0.7.23 does not import under pandas 3, so it runs in its own virtualenv under
``.mlops/bench-evidently`` (created on first use, with pandas < 3). Its per-column verdicts come
from ``include_tests=True``.

    .venv/bin/python benchmarks/drift_vs_evidently.py [--rows 100000 1000000] [--rounds 2]

Reported: per-column verdict agreement, the largest score difference, time and peak memory of
both, and the ratios. Targets (at 1M rows): identical verdicts, scores within 1e-6, at least
50x faster, at most half the peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_VENV = ROOT / ".mlops" / "bench-evidently"
DATA = ROOT / ".mlops" / "bench-drift"
EVIDENTLY = "evidently==0.7.23"
METHODS = {  # Evidently's display names -> ours
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensen_shannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chi2",
    "Z-test p_value": "z",
}


# -- data ---------------------------------------------------------------------------------------


def make_data(rows: int, numeric: int, categorical: int, seed: int = 0) -> Path:
    """Reference and current parquet files; every other column of each kind drifts a little."""
    import numpy as np
    import pandas as pd

    folder = DATA / f"{rows}x{numeric}n{categorical}c"
    if (folder / "current.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for i in range(numeric):
        scale = 1 + i
        ref[f"num_{i}"] = rng.normal(10 * i, scale, rows)
        # Shifts from none to a third of a standard deviation: verdicts on both sides of 0.1.
        cur[f"num_{i}"] = rng.normal(10 * i + scale * 0.02 * i, scale, rows)
    labels = np.array(["a", "b", "c", "d", "e", "f"])
    for i in range(categorical):
        ref[f"cat_{i}"] = labels[rng.integers(0, 5, rows)]
        p = np.array([0.2, 0.2, 0.2, 0.2, 0.2 - 0.04 * i, 0.04 * i])
        cur[f"cat_{i}"] = labels[rng.choice(6, rows, p=p / p.sum())]
    pd.DataFrame(ref).to_parquet(folder / "reference.parquet", index=False)
    pd.DataFrame(cur).to_parquet(folder / "current.parquet", index=False)
    return folder


def ensure_evidently() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV} with {EVIDENTLY} and pandas<3 ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import evidently, pandas; print(evidently.__version__)"],
        capture_output=True, text=True,
    )  # fmt: skip
    if probe.returncode != 0 or probe.stdout.strip() != EVIDENTLY.split("==")[1]:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             EVIDENTLY, "pandas<3", "pyarrow"],
            check=True,
        )  # fmt: skip
    return python


# -- workers (each runs as a whole process) -----------------------------------------------------


def numbers(column: Any) -> Any:
    """A float64 Arrow column as a numpy view, without pyarrow's to_numpy (it imports pandas)."""
    import numpy as np

    array = column.combine_chunks()
    if array.null_count or str(array.type) != "double":
        return array.to_numpy(zero_copy_only=False)
    return np.frombuffer(
        array.buffers()[1], dtype=np.float64, count=len(array), offset=array.offset * 8
    )


def worker_ours(folder: Path) -> dict[str, Any]:
    """This project's drift: one column at a time from parquet, columns in parallel threads."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from monitoring.drift import Counts, detect_columns
    from pipelines.core.definitions import Drift

    reference = pq.ParquetFile(folder / "reference.parquet")
    current = pq.ParquetFile(folder / "current.parquet")
    names = reference.schema_arrow.names
    kinds: dict[str, Any] = {n: "numeric" if n.startswith("num_") else "categorical" for n in names}

    def column(source: Any, name: str) -> Any:
        array = source.read(columns=[name]).column(0)
        if kinds[name] == "numeric":
            return numbers(array)
        counted = pc.value_counts(array)  # counted by Arrow, handed over as counts
        return Counts.of(counted.field("values").to_pylist(), counted.field("counts").to_pylist())

    result = detect_columns(
        kinds, lambda n: column(reference, n), lambda n: column(current, n), Drift()
    )
    return {
        f.feature: {"method": f.method, "score": f.score, "drifted": f.drifted}
        for f in result.features
    }


def worker_evidently(folder: Path) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(folder / "reference.parquet")
    current = pd.read_parquet(folder / "current.parquet")
    definition = DataDefinition(
        numerical_columns=[c for c in reference.columns if c.startswith("num_")],
        categorical_columns=[c for c in reference.columns if c.startswith("cat_")],
    )
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    doc = snapshot.dict()
    out: dict[str, Any] = {}
    by_metric: dict[str, str] = {}
    for metric in doc["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            out[config["column"]] = {
                "method": METHODS.get(config["method"], config["method"]),
                "score": float(metric["value"]),
            }
            by_metric[metric["id"]] = config["column"]
    for test in doc["tests"]:
        column = by_metric.get(test["metric_config"]["metric_id"])
        if column is not None:
            out[column]["drifted"] = test["status"] == "FAIL"
    return out


# -- the driver ---------------------------------------------------------------------------------


def run_whole(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, Any]:
    """Wall seconds, peak RSS (MiB) and the JSON the worker printed, for one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]} failed with {process.returncode}")
    return seconds, usage.ru_maxrss / 1024, json.loads(output)


def compare_results(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    columns = sorted(theirs)
    same_method = sum(ours[c]["method"] == theirs[c]["method"] for c in columns)
    same_verdict = sum(ours[c]["drifted"] == theirs[c]["drifted"] for c in columns)
    differences = [abs(ours[c]["score"] - theirs[c]["score"]) for c in columns]
    return {
        "columns": len(columns),
        "same_method": same_method,
        "same_verdict": same_verdict,
        "drifted": sum(theirs[c]["drifted"] for c in columns),
        "max_score_difference": max(differences),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--numeric", type=int, default=16)
    parser.add_argument("--categorical", type=int, default=4)
    parser.add_argument("--worker", choices=["ours", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work = worker_ours if args.worker == "ours" else worker_evidently
        print(json.dumps(work(args.data)))
        return

    evidently_python = ensure_evidently()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows_out = []
    for rows in args.rows:
        folder = make_data(rows, args.numeric, args.categorical)
        commands = {
            "ours": [sys.executable, __file__, "--worker", "ours", "--data", str(folder)],
            "evidently": [str(evidently_python), __file__, "--worker", "evidently", "--data",
                          str(folder)],
        }  # fmt: skip
        timings: dict[str, list[float]] = {"ours": [], "evidently": []}
        memory: dict[str, list[float]] = {"ours": [], "evidently": []}
        results: dict[str, Any] = {}
        for round_ in range(args.rounds):
            order = ["ours", "evidently"] if round_ % 2 == 0 else ["evidently", "ours"]
            for side in order:
                seconds, rss, results[side] = run_whole(commands[side], env)
                timings[side].append(seconds)
                memory[side].append(rss)
                print(f"{rows:>9} rows  {side:<9} {seconds:7.2f} s  {rss:7.0f} MiB", flush=True)
        agreement = compare_results(results["ours"], results["evidently"])
        ours_s, theirs_s = (statistics.median(timings[s]) for s in ("ours", "evidently"))
        ours_m, theirs_m = (max(memory[s]) for s in ("ours", "evidently"))
        rows_out.append((rows, agreement, ours_s, theirs_s, ours_m, theirs_m))

    print()
    print(
        f"{args.numeric} numeric + {args.categorical} categorical columns, reference and current "
        f"of the same size, {args.rounds} alternating rounds (median time, max peak RSS)"
    )
    print()
    print(
        "| rows | same verdict | same test | drifted (Evidently) | max score difference "
        "| time ours / Evidently | speed-up | peak RSS ours / Evidently | memory ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for rows, a, ours_s, theirs_s, ours_m, theirs_m in rows_out:
        print(
            f"| {rows:,} | {a['same_verdict']}/{a['columns']} | {a['same_method']}/{a['columns']} "
            f"| {a['drifted']} | {a['max_score_difference']:.1e} | {ours_s:.2f} s / "
            f"{theirs_s:.2f} s | {theirs_s / ours_s:.1f}x | {ours_m:.0f} / {theirs_m:.0f} MiB "
            f"| {ours_m / theirs_m:.2f} |"
        )


if __name__ == "__main__":
    main()
