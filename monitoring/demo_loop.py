"""``mlops demo-drift``: the drift-to-retrain loop on one machine, every step printed.

In a scratch copy of the repository (as ``mlops demo`` makes one) it trains and promotes the
penguins champion, serves it on 127.0.0.1 with Data Capture to a local folder, sends a bounded
amount of normal traffic and then shifted traffic (the birds of a new colony are larger), runs
the monitor on each window, prints the retrain trigger it would send, and retrains on fresh data
(the dataset plus the labelled shifted rows) through the same gates, promoting or rejecting.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.errors import MlopsError
from pipelines.core.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

MODEL = "penguins"
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]
# The new colony: longer bills, longer flippers, heavier birds, kept inside the declared ranges
# so that the server accepts (and captures) every request.
SHIFT = {"bill_length_mm": 6.0, "flipper_length_mm": 8.0, "body_mass_g": 500.0}
REQUESTS = 30  # per window
ROWS_PER_REQUEST = 8
STARTUP_SECONDS = 60.0
REQUEST_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(settings: Settings, model_uri: str, capture: Path, log: Path) -> Iterator[str]:
    """The model server as a subprocess on 127.0.0.1, stopped by its PID when the block ends."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MLOPS_", "SAGEMAKER_", "SM_"))
    }
    env.update(
        {
            "MLOPS_ROOT": str(settings.root),
            "MLOPS_HOME": str(settings.state_dir),
            "MLOPS_SERVE_MODEL_URI": model_uri,
            "MLOPS_SERVE_HOST": "127.0.0.1",
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "MLOPS_SERVE_CAPTURE_DESTINATION": str(capture),
            "MLOPS_SERVE_CAPTURE_FLUSH_SECONDS": "0.2",
        }
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving", "serve"], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise MlopsError(f"the model server exited with {process.returncode}", file=log)
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise MlopsError(
                    f"the model server did not answer in {STARTUP_SECONDS} s", file=log
                )
            time.sleep(0.2)
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def send(url: str, frame: pd.DataFrame) -> int:
    """Send the rows as CSV requests of ROWS_PER_REQUEST rows; returns how many were answered."""
    answered = 0
    for start in range(0, len(frame), ROWS_PER_REQUEST):
        body = frame.iloc[start : start + ROWS_PER_REQUEST][FEATURES].to_csv(index=False)
        request = urllib.request.Request(
            f"{url}/invocations", data=body.encode(), headers={"Content-Type": "text/csv"}
        )
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            answered += int(response.status == 200)
    return answered


def wait_for_captures(location: Path, records: int, timeout: float = 15.0) -> None:
    """Captures are written off the request path; wait (bounded) until they are on disk."""
    from serving.capture import read_captures

    deadline = time.monotonic() + timeout
    while sum(1 for _ in read_captures(location)) < records:
        if time.monotonic() > deadline:
            raise MlopsError(f"captures did not reach {records} records in {timeout} s")
        time.sleep(0.2)


def shifted(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The same birds, grown: each shifted column clipped to the dataset's declared range."""
    from pipelines.core.datasets import load_dataset_by_name

    columns = load_dataset_by_name(settings.data_dir, MODEL).definition.columns
    out = frame.copy()
    for name, delta in SHIFT.items():
        spec = columns[name]
        out[name] = (out[name] + delta).clip(spec.min, spec.max)
    return out


def run_drift_demo(
    settings: Settings, *, keep: bool = False, overrides: dict[str, Any] | None = None
) -> bool:
    """Run the loop; returns whether the retrained version was promoted."""
    import pandas as pd
    from rich.console import Console
    from rich.rule import Rule

    from monitoring.monitor import run_monitor
    from monitoring.retrain import dispatch
    from monitoring.settings import MonitorSettings
    from pipelines.core.datasets import load_dataset_by_name, update_fingerprint
    from pipelines.core.examples import demo_repository, examples_root
    from pipelines.core.registry import connect
    from pipelines.stages.demo import run_and_show

    console = Console(highlight=False)
    started = time.perf_counter()
    workspace = settings.state_dir / "demo-drift"
    examples = examples_root(settings.root)  # before anything is removed: no examples, no demo
    if not keep:
        shutil.rmtree(workspace, ignore_errors=True)
    repo = demo_repository(examples, workspace / "repo")
    demo = Settings(root=repo, home=workspace / "state", tracking_uri=None)
    client = connect(demo)
    console.print(Rule("Drift demo: serve, capture, detect, retrain, gate"))
    console.print(f"workspace: {repo}\nregistry:  {demo.resolved_tracking_uri()}")

    console.print(Rule("1. Train, gate and promote the champion"))
    outcome = run_and_show(console, client, demo, MODEL, dict(overrides or {}), ["staging", "prod"])
    if outcome.version is None:
        raise MlopsError(f"the first {MODEL} model was rejected: {outcome.rejected}")

    dataset = load_dataset_by_name(demo.data_dir, MODEL)
    data = pd.read_csv(dataset.source)
    normal = data.sample(REQUESTS * ROWS_PER_REQUEST, random_state=1, replace=True)
    new_colony = shifted(data.sample(REQUESTS * ROWS_PER_REQUEST, random_state=2), demo)
    capture = workspace / "capture"
    monitor_settings = MonitorSettings(github_repository="OWNER/REPO")

    console.print(Rule(f"2. Serve models:/{MODEL}@champion on 127.0.0.1 with Data Capture"))
    with serving(demo, f"models:/{MODEL}@champion", capture, workspace / "server.log") as url:
        console.print(f"server: {url}; captures: {capture}")
        answered = send(url, normal)
        wait_for_captures(capture, answered)
        console.print(f"normal traffic: {answered} requests of {ROWS_PER_REQUEST} rows")
        console.print(Rule("3. Monitor the normal window"))
        result = run_monitor(demo, MODEL, capture, client=client, env="prod")
        _print_result(console, result)

        shift_start = datetime.now(UTC)
        answered_shift = send(url, new_colony)
        wait_for_captures(capture, answered + answered_shift)
        shifts = ", ".join(f"{k} +{v:g}" for k, v in SHIFT.items())
        console.print(f"shifted traffic: {answered_shift} requests ({shifts})")
    console.print("server stopped by PID; captures flushed")

    console.print(Rule("4. Monitor the shifted window"))
    result = run_monitor(demo, MODEL, capture, client=client, env="prod", since=shift_start)
    _print_result(console, result)
    if not result.detected:
        raise MlopsError("the shifted traffic was expected to drift, and did not")

    console.print(Rule("5. Trigger retraining"))
    request = dispatch(result, monitor_settings, environment="prod", dry_run=True)
    console.print(f"repository_dispatch: {request.describe()}", markup=False)

    console.print(Rule("6. Retrain on fresh data (the dataset plus the labelled new colony)"))
    fresh = pd.concat([data, new_colony], ignore_index=True)
    fresh.to_csv(dataset.source, index=False)
    old, new = update_fingerprint(dataset)
    console.print(
        f"{dataset.path.name}: {len(data)} -> {len(fresh)} rows; {old[:19]} -> {new[:19]}"
    )
    retrained = run_and_show(
        console, client, demo, MODEL, dict(overrides or {}), ["staging", "prod"]
    )
    promoted = retrained.version is not None

    console.print(Rule("7. The shifted window against the new champion"))
    after = None
    if promoted:
        after = run_monitor(demo, MODEL, capture, client=client, env="prod", since=shift_start)
        _print_result(console, after)
    else:
        console.print("the retrained candidate was rejected; prod keeps the previous champion")

    console.print(Rule("8. What retraining achieved"))
    # Birds of the new colony that neither model trained on: the rows not sent as traffic.
    unseen = shifted(data.drop(index=new_colony.index), demo)
    _print_achievement(console, demo, outcome.version, retrained.version, unseen, after)
    console.print(f"[bold]drift demo done in {time.perf_counter() - started:.1f} s[/]")
    return promoted


def _print_achievement(
    console: Console,
    settings: Settings,
    old: str,
    new: str | None,
    labelled: pd.DataFrame,
    after: Any,
) -> None:
    """The old and new champion's quality on a labelled new window, and what drift now means."""
    from pipelines.core.definitions import load_model
    from pipelines.core.registry import load_sklearn_model
    from pipelines.core.scoring import metric_value, predict

    definition = load_model(settings.models_dir, settings.data_dir, MODEL).definition
    rows = labelled.dropna(subset=[definition.target])
    truth = rows[definition.target].to_numpy()

    def quality(version: str) -> float:
        estimator = load_sklearn_model(f"models:/{MODEL}/{version}")
        predictions = predict(estimator, rows[list(definition.features)], definition.task.value)
        return metric_value(definition.metric, truth, predictions)

    before = quality(old)
    console.print(
        f"{definition.metric} on {len(rows)} labelled birds of the new colony that no model "
        f"trained on:\n  old champion v{old}: {before:.3f}"
    )
    if new is None:
        console.print("  no new champion: the retrained candidate did not pass its gates")
        return
    now = quality(new)
    console.print(f"  new champion v{new}: {now:.3f} ({now - before:+.3f})")
    if after is None or not after.detected:
        console.print(
            "The new champion's reference includes the new colony, so this traffic no longer "
            "differs from what the model was trained on: no drift."
        )
    else:
        console.print(
            "The shifted window still drifts from the new reference, because that reference "
            "mixes the old birds with the new ones while the traffic holds only new ones; the "
            "model has now learnt from birds like these, which is what the scores above show."
        )


def _print_result(console: Console, result: Any) -> None:
    drift = result.drift
    for f in drift.features:
        rule = "<" if f.p_value else ">="
        verdict = "[red]DRIFT[/]" if f.drifted else "[green]ok[/]"
        console.print(
            f"  {f.feature:<18} {f.method:<15} {f.score:10.4g}  ({rule} {f.threshold:g}) {verdict}"
        )
    verdict = "[bold red]drift detected[/]" if result.detected else "[green]no drift[/]"
    console.print(
        f"  {len(drift.drifted_features)}/{len(drift.features)} features drifted "
        f"(share {drift.share:.2f} vs {drift.share_threshold:g}) over {result.current.rows} rows "
        f"against {result.reference.source}: {verdict}"
    )
