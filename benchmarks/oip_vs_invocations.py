"""The Open Inference Protocol's infer path against ``/invocations``, on one server and model.

One server on 127.0.0.1 gets the same rows (1 and 100, from the model's input example) through
``POST /invocations`` (MLflow's ``dataframe_split`` JSON), ``POST /v2/models/{name}/infer`` with
JSON tensors, and the same with the binary tensor extension (what tritonclient sends by
default), at concurrency 1 and 8 from keep-alive client threads. Rounds alternate between the
paths, each round starting with the next one, so that machine noise and the order hit all alike.
For each case it prints each path's median latency, its median overhead over the in-process
predict of the same rows (the predict the server runs), and the OIP paths' difference from
``/invocations``, against the issue's target of 0.2 ms. ``/invocations`` is also measured a
second time as a path of its own ("invocations again"): its difference from the first is the
noise alone, the smallest difference this run can resolve.

Over HTTP the clients share the cores with the server, so on a small or busy machine the
differences move by tenths of a millisecond between runs. A second table therefore times each
path through the server's ASGI app in this process (the same app, model, checks, batcher and
encoding, no sockets and no client threads), alternating paths in rounds: the per-request cost
each protocol adds, with little noise.

    .venv/bin/python benchmarks/oip_vs_invocations.py --model-uri models:/penguins@staging
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import struct
import sys
import time
from typing import Any

# The sibling script's server and load helpers (this folder is on sys.path when run as a script).
from serving_vs_mlflow import free_port, in_process, load_round, percentile, start, stop, wait_ready

TARGET_MS = 0.2
# "invocations again" is the same request as "invocations", measured as a path of its own: its
# difference is what this machine's noise alone makes of two identical paths (an A/A control).
CASES = ("invocations", "invocations again", "oip json", "oip binary")


def oip_bodies(
    columns: list[str], rows: list[list[Any]], inputs: list[dict[str, Any]]
) -> tuple[bytes, tuple[bytes, str]]:
    """The rows as OIP JSON tensors, and in the binary tensor extension with its header length."""
    datatypes = {i["name"]: i["datatype"] for i in inputs}
    tensors = []
    binary: list[bytes] = []
    for i, name in enumerate(columns):
        values = [r[i] for r in rows]
        tensors.append(
            {"name": name, "datatype": datatypes[name], "shape": [len(rows)], "data": values}
        )
        binary.append(_binary(datatypes[name], values))
    header = {
        "inputs": [
            {k: v for k, v in t.items() if k != "data"}
            | {"parameters": {"binary_data_size": len(b)}}
            for t, b in zip(tensors, binary, strict=True)
        ]
    }
    head = json.dumps(header).encode()
    return json.dumps({"inputs": tensors}).encode(), (head + b"".join(binary), str(len(head)))


def _binary(datatype: str, values: list[Any]) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
    code = {"FP64": "d", "FP32": "f", "INT64": "q", "INT32": "i", "BOOL": "?"}[datatype]
    return struct.pack(f"<{len(values)}{code}", *values)


def in_app(
    model_dir: str, requests: dict[str, dict[str, tuple[str, bytes, dict[str, str]]]], repeats: int
) -> dict[tuple[str, str], float]:
    """Median seconds per request through the ASGI app, by (payload, path), rounds alternating."""
    from serving.app import create_app
    from serving.settings import ServeSettings

    app = create_app(ServeSettings(model_uri=model_dir))

    async def call(path: str, body: bytes, extra: dict[str, str]) -> int:
        headers = {"content-type": "application/json", "content-length": str(len(body)), **extra}
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = [0]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # the client never disconnects
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        await app(scope, receive, send)
        return status[0]

    async def run() -> dict[tuple[str, str], float]:
        timings: dict[tuple[str, str], list[float]] = {}
        async with app.router.lifespan_context(app):
            for _ in range(600):  # the model loads in a thread; bounded wait
                if app.state.server.model is not None:
                    break
                await asyncio.sleep(0.1)
            for payload, cases in requests.items():
                for _ in range(5):
                    for case, (path, body, extra) in cases.items():
                        if await call(path, body, extra) != 200:
                            raise SystemExit(f"{case} answered non-200 in process")
                        mine = []
                        for _ in range(repeats):
                            started = time.perf_counter()
                            await call(path, body, extra)
                            mine.append(time.perf_counter() - started)
                        timings.setdefault((payload, case), []).append(statistics.median(mine))
        return {key: statistics.median(values) for key, values in timings.items()}

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True, help="Model folder or registry URI.")
    parser.add_argument("--requests", type=int, default=400, help="Requests per round.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Time limit per round.")
    parser.add_argument("--rounds", type=int, default=12, help="Rounds per path and case.")
    parser.add_argument(
        "--app-repeats", type=int, default=1000, help="Requests per in-app round (5 rounds)."
    )
    args = parser.parse_args()

    import pandas as pd

    from serving.model import load, resolve

    model_dir = resolve(args.model_uri)
    model = load(model_dir)
    example = json.loads((model_dir / "input_example.json").read_text())
    columns = example["columns"]
    all_rows = [example["data"][i % len(example["data"])] for i in range(100)]
    payloads = {"1 row": all_rows[:1], "100 rows": all_rows}
    frames = {n: pd.DataFrame(r, columns=columns)[model.columns] for n, r in payloads.items()}
    floors = in_process(model_dir, frames, repeats=200)

    port = free_port()
    server = start(
        [sys.executable, "-m", "serving", "--model-uri", str(model_dir), "--port", str(port),
         "--host", "127.0.0.1"], dict(os.environ),
    )  # fmt: skip
    results: dict[tuple[str, int, str], list[float]] = {}
    per_round: dict[tuple[str, int, str], list[float]] = {}  # each round's median
    by_payload: dict[str, dict[str, tuple[str, bytes, dict[str, str]]]] = {}
    errors = 0
    try:
        wait_ready(port, server)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/v2/models/{model.name}")
        inputs = json.loads(conn.getresponse().read())["inputs"]
        conn.close()
        infer = f"/v2/models/{model.name}/infer"
        for payload, rows in payloads.items():
            oip_json, (oip_binary, header_length) = oip_bodies(columns, rows, inputs)
            split = {"dataframe_split": {"columns": columns, "data": rows}}
            requests = {
                "invocations": ("/invocations", json.dumps(split).encode(), {}),
                "invocations again": ("/invocations", json.dumps(split).encode(), {}),
                "oip json": (infer, oip_json, {}),
                "oip binary": (
                    infer,
                    oip_binary,
                    {"Inference-Header-Content-Length": header_length},
                ),
            }
            by_payload[payload] = requests
            for concurrency in (1, 8):
                for path, body, extra in requests.values():  # warm-up, not measured
                    headers = {"Content-Type": "application/json", **extra}
                    load_round(port, body, concurrency, 50, 5, path, headers)
                for round_number in range(args.rounds):
                    # Each round starts with the next path, so no path always runs first or last.
                    order = list(requests)
                    shift = round_number % len(order)
                    for case in order[shift:] + order[:shift]:
                        path, body, extra = requests[case]
                        headers = {"Content-Type": "application/json", **extra}
                        _, latencies, failed = load_round(
                            port, body, concurrency, args.requests, args.seconds, path, headers
                        )
                        results.setdefault((payload, concurrency, case), []).extend(latencies)
                        per_round.setdefault((payload, concurrency, case), []).append(
                            percentile(latencies, 0.5)
                        )
                        errors += failed
    finally:
        stop(server)

    print(f"{'payload':9s} {'conc':>4s} {'path':17s} {'p50 ms':>8s} {'overhead ms':>11s} "
          f"{'vs /invocations':>15s}")  # fmt: skip
    for payload in payloads:
        for concurrency in (1, 8):
            overheads = {}
            for case in CASES:
                latencies = results[(payload, concurrency, case)]
                p50 = percentile(latencies, 0.5)
                overheads[case] = (p50 - floors[payload]) * 1000
                difference = overheads[case] - overheads["invocations"]
                verdict = ""
                if case != "invocations":
                    verdict = "within" if difference <= TARGET_MS else "OVER"
                    verdict = f"{difference:+.3f} ({verdict} {TARGET_MS})"
                print(
                    f"{payload:9s} {concurrency:4d} {case:17s} {p50 * 1000:8.3f} "
                    f"{overheads[case]:11.3f} {verdict:>15s}"
                )
    for payload, floor in floors.items():
        print(f"in-process predict as served, {payload}: median {floor * 1000:.3f} ms")
    print_paired(per_round, list(payloads))
    app_times = in_app(str(model_dir), by_payload, repeats=args.app_repeats)
    print(f"\n{'payload':9s} {'path':17s} {'in-app ms':>9s} {'overhead ms':>11s} "
          f"{'vs /invocations':>15s}")  # fmt: skip
    for payload in payloads:
        base = app_times[(payload, "invocations")]
        for case in CASES:
            seconds = app_times[(payload, case)]
            difference = (seconds - base) * 1000
            verdict = "within" if difference <= TARGET_MS else "OVER"
            shown = "" if case == "invocations" else f"{difference:+.3f} ({verdict} {TARGET_MS})"
            print(
                f"{payload:9s} {case:17s} {seconds * 1000:9.3f} "
                f"{(seconds - floors[payload]) * 1000:11.3f} {shown:>15s}"
            )
    print(f"non-200 answers: {errors}")
    if errors:
        raise SystemExit(1)


def print_paired(per_round: dict[tuple[str, int, str], list[float]], payloads: list[str]) -> None:
    """Each round's median minus /invocations' median in the same round, then the median of
    those differences and their interquartile range. Paired by round, so a slow minute of the
    machine (which moves every path's medians together by up to a millisecond at eight clients)
    cancels out instead of landing on whichever path ran then."""
    print(f"\n{'payload':9s} {'conc':>4s} {'path':17s} {'paired median diff ms':>21s} "
          f"{'IQR ms':>15s}")  # fmt: skip
    for payload in payloads:
        for concurrency in (1, 8):
            base = per_round[(payload, concurrency, "invocations")]
            for case in CASES[1:]:
                rounds = per_round[(payload, concurrency, case)]
                diffs = sorted((a - b) * 1000 for a, b in zip(rounds, base, strict=True))
                q1, median, q3 = statistics.quantiles(diffs, n=4, method="inclusive")
                verdict = "within" if median <= TARGET_MS else "OVER"
                print(
                    f"{payload:9s} {concurrency:4d} {case:17s} "
                    f"{median:+8.3f} ({verdict} {TARGET_MS}) {q1:+7.3f}..{q3:+.3f}"
                )


if __name__ == "__main__":
    main()
