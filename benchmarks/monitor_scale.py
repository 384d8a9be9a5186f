"""`mlops monitor` at scale: wall time, requests/s and peak memory against the parse floor.

Generates Data Capture files of the penguins model (two rows a request, JSON
``dataframe_split`` or CSV payloads, ten hour folders), then runs `mlops monitor` as a whole
process on them and, in the same run, the parse floor: one process doing nothing but
``orjson.loads`` of every line and of its inner payload (the JSON body, or the CSV body split
into rows) and response. Start-up (imports, finding and profiling the reference) is measured
by running the monitor on a window of 100 requests; "past start-up" subtracts it.

    .venv/bin/python benchmarks/monitor_scale.py [--requests 100000 1000000] [--ten-million]
        [--shape json csv] [--workdir /tmp/monitor-scale] [--reference baseline|registry]

The issue's targets: peak under 1 GiB at 10 M requests, within 1.5x of the parse floor past
start-up (at least 150,000 requests/s), start-up under 2 s.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]
PER_FILE = 50_000
HOURS = 10


def _rows() -> list[list[object]]:
    with open(ROOT / "data" / "penguins" / "penguins.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    rows = []
    for r in table:
        try:
            numbers: list[object] = [float(r[f]) for f in FEATURES[:4]]
        except ValueError:
            continue  # the few rows with gaps
        rows.append([*numbers, r["island"]])
    return rows


def generate(folder: Path, requests: int, shape: str) -> Path:
    """``requests`` captures under ``folder`` (reused when already complete)."""
    from serving.capture import make_record

    done = folder / ".complete"
    if done.exists():
        return folder
    rows, species = _rows(), ["Adelie", "Gentoo", "Chinstrap"]
    pick = random.Random(17)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    per_hour = -(-requests // HOURS)
    written = 0
    while written < requests:
        hour = start + timedelta(hours=written // per_hour)
        path = folder / "penguins" / "AllTraffic" / hour.strftime("%Y/%m/%d/%H")
        path.mkdir(parents=True, exist_ok=True)
        count = min(PER_FILE, requests - written, per_hour - written % per_hour)
        lines = []
        for _ in range(count):
            data = [pick.choice(rows), pick.choice(rows)]
            if shape == "json":
                body = orjson.dumps({"dataframe_split": {"columns": FEATURES, "data": data}})
                kind = "application/json"
            else:
                text = io.StringIO()
                csv.writer(text, lineterminator="\n").writerows([FEATURES, *data])
                body, kind = text.getvalue().encode(), "text/csv"
            out = orjson.dumps({"predictions": [pick.choice(species), pick.choice(species)]})
            lines.append(orjson.dumps(make_record(body, kind, out, "application/json", hour)))
        (path / f"{written:09d}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        written += count
    done.touch()
    return folder


def parse_floor(folder: Path) -> tuple[float, int, int]:
    """Seconds to orjson.loads every line and its inner payloads, with the records and bytes."""
    records = size = 0
    started = time.perf_counter()
    for name in sorted(folder.rglob("*.jsonl")):
        with open(name, "rb") as handle:
            for line in handle:
                size += len(line)
                record = orjson.loads(line)
                data = record["captureData"]
                request = data["endpointInput"]
                if request["observedContentType"] == "text/csv":
                    list(csv.reader(io.StringIO(request["data"])))
                else:
                    orjson.loads(request["data"])
                orjson.loads(data["endpointOutput"]["data"])
                records += 1
    return time.perf_counter() - started, records, size


def freeze_baseline(workdir: Path, state: Path) -> Path:
    """The frozen reference the scheduled job reads: penguins trained once, its baseline written."""
    baseline = workdir / "baseline"
    if (baseline / "baseline.json").exists():
        return baseline
    env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_HOME": str(state)}
    for unset in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING_URI"):
        env.pop(unset, None)
    subprocess.run([str(BIN / "mlops"), "run", "penguins"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([str(BIN / "mlops"), "monitor-baseline", "penguins", "--version", "1",
                    "--to", str(baseline)], env=env, check=True)  # fmt: skip
    return baseline


def run_monitor(
    folder: Path, state: Path, baseline: Path | None = None
) -> tuple[float, float, int]:
    """Wall seconds and peak RSS (MiB) of one whole `mlops monitor` process, and its exit code."""
    env = {
        **os.environ,
        "MLOPS_ROOT": str(ROOT),
        "MLOPS_HOME": str(state),
        "COLUMNS": "200",
    }
    for unset in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING_URI", "MLOPS_MONITOR_CAPTURES"):
        env.pop(unset, None)
    command = [str(BIN / "mlops"), "monitor", "penguins", "--captures", str(folder),
               "--output-dir", str(state / "reports")]  # fmt: skip
    if baseline is not None:
        command += ["--baseline", str(baseline)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.exit(f"mlops monitor failed ({code}):\n{output.decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--ten-million", action="store_true", help="add 10 M requests")
    parser.add_argument("--shape", nargs="+", choices=["json", "csv"], default=["json", "csv"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/monitor-scale"))
    parser.add_argument(
        "--reference",
        choices=["baseline", "registry"],
        default="baseline",
        help="baseline: --baseline, as the scheduled job runs (default); registry: the "
        "registry's champion or the dataset's training split, as on a laptop",
    )
    args = parser.parse_args()
    sizes = [*args.requests, *([10_000_000] if args.ten_million else [])]
    state = args.workdir / "state"
    baseline = freeze_baseline(args.workdir, state) if args.reference == "baseline" else None
    cores = len(os.sched_getaffinity(0))
    workers = os.environ.get("MLOPS_MONITOR_WORKERS", "0")
    print(f"reference: {args.reference}; {cores} cores; MLOPS_MONITOR_WORKERS={workers} "
          "(0: one process per core for a large window)")  # fmt: skip
    print("| payload | requests | capture MB | wall s | start-up s | requests/s past start-up "
          "| peak MiB | parse floor s | floor requests/s | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shape in args.shape:
        small = generate(args.workdir / f"{shape}-100", 100, shape)
        run_monitor(small, state, baseline)  # warm the file cache and the registry
        startup = min(run_monitor(small, state, baseline)[0] for _ in range(3))
        for n in sizes:
            folder = generate(args.workdir / f"{shape}-{n}", n, shape)
            floor, records, size = parse_floor(folder)
            wall, peak, _ = run_monitor(folder, state, baseline)
            past = max(wall - startup, 1e-9)
            print(
                f"| {shape} | {records:,} | {size / 1e6:,.0f} | {wall:.2f} | {startup:.2f} "
                f"| {records / past:,.0f} | {peak:,.0f} | {floor:.2f} | {records / floor:,.0f} "
                f"| {past / floor:.2f} |",
                flush=True,
            )
    print("ratio: monitor seconds past start-up / parse floor seconds (target <= 1.5)")


if __name__ == "__main__":
    main()
