"""`mlops monitor`: drift of captured traffic against the training reference.

Registered by ``pipelines.cli.main``; heavy imports stay inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from pipelines.cli.common import (
    connect_registry,
    current_settings,
    guarded,
)
from pipelines.core.errors import ExitCode, MlopsError

# monitoring.window.EXACT_LIMIT, repeated so that `mlops --help` does not import numpy.
EXACT_LIMIT = 1_000_000

commands = typer.Typer()

EXIT_CODES_HELP = (
    "Exit codes: 0 no drift; 3 drift (data or concept), even when exporting the metrics or "
    "sending the retrain trigger failed afterwards (the reports are written first, the failure "
    "is printed naming the exporter); 2 bad input or configuration, or nothing could be judged "
    "(no valid capture record, unreadable labels), or no drift but an exporter failed (so that "
    "a scheduled job does not pass while its metrics went nowhere). With --no-fail-on-drift, "
    "drift exits 0 too, or 2 when an exporter failed. Never 1. Malformed capture "
    "records are skipped and counted (console and drift.json), not fatal."
)


def _since(hours: float | None) -> datetime | None:
    """The start of the window of the last ``hours`` hours; 0, negative or NaN is bad input."""
    if hours is None:
        return None
    if not hours > 0:  # NaN fails this too
        raise MlopsError(
            f"{hours:g} is not a number of hours above 0 (omit the option to read every capture)",
            field="--since-hours",
        )
    try:
        return datetime.now(UTC) - timedelta(hours=hours)
    except OverflowError:  # further back than datetime reaches: every capture
        return None


def _shard(text: str | None) -> tuple[int, int] | None:
    """``i/n`` (1 <= i <= n) as a pair; anything else is bad input."""
    if text is None:
        return None
    index, _, total = text.partition("/")
    try:
        shard = int(index), int(total)
    except ValueError:
        shard = (0, 0)
    if not 1 <= shard[0] <= shard[1]:
        raise MlopsError(f"{text!r} is not a shard i/n with 1 <= i <= n", field="--shard")
    return shard


def _cluster_shard(
    host: tuple[int, int], run: str | None, states: str | None, timeout: float,
    kms_key: str | None, scratch: Path, fold: Callable[[Path], Any],
) -> list[Path] | None:  # fmt: skip
    """``--shard auto`` on host i of n > 1: fold and put shard i/n; host 1 gathers all n.

    Returns the states host 1 merges, or None on the other hosts, which publish nothing.
    """
    from monitoring.cluster import check_run_states, gather_states, publish_state

    if not states:
        raise MlopsError(
            f"host {host[0]} of {host[1]}: --shard auto on several hosts needs --shard-states "
            "(a folder or s3:// prefix all of them reach, unique to the run)",
            field="--shard-states",
        )
    check_run_states(states, run)
    partial, where = publish_state(fold, host, states, scratch / "own", kms_key)
    typer.echo(
        f"shard {host[0]}/{host[1]}: {partial.records} requests, {partial.rows} rows from "
        f"{partial.files} file(s), {partial.skipped} skipped; state: {where}"
    )
    if host[0] != 1:
        typer.echo(f"host {host[0]} of {host[1]}: host 1 merges the states and publishes")
        return None
    return gather_states(states, host[1], timeout, scratch / "all")


def _output_dir(path: Path) -> Path:
    """Create the report folder before any work, so that a bad --output-dir fails fast."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MlopsError(
            f"cannot create the report folder: {exc.strerror or exc}", file=path,
            field="--output-dir",
        ) from None  # fmt: skip
    return path


def _export(name: str, send: Callable[[], str | None], failures: list[str], console: Any) -> None:
    """Run one exporter; a failure is printed and remembered, never a traceback."""
    try:
        done = send()
    except Exception as exc:  # any exporter failure (URLError, botocore, ...) is reported
        message = f"{name} export failed: {type(exc).__name__}: {exc}"
        failures.append(message)
        console.print(f"[bold red]error:[/] {escape(message)}")
        return
    if done:
        console.print(done)


@commands.command(epilog=EXIT_CODES_HELP)
@guarded
def monitor(
    model: str = typer.Argument(
        ..., help="Model name: the folder under models/.", show_default=False
    ),
    captures: str | None = typer.Option(
        None,
        "--captures",
        help="Capture folder or s3:// prefix (default $MLOPS_MONITOR_CAPTURES): a destination "
        "holding <endpoint>/ folders (only the model's endpoint is read) or one endpoint's folder.",
    ),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Endpoint folder to read under --captures (default: the model)."
    ),
    env: str | None = typer.Option(
        None, "--env", help="Monitor the version pinned in this environment (default: champion)."
    ),
    version: str | None = typer.Option(None, "--version", help="Monitor this registered version."),
    labels: Path | None = typer.Option(
        None, "--labels", help="CSV of ground truth (event_id[,row],<target>): concept drift."
    ),
    since_hours: float | None = typer.Option(
        None, "--since-hours", help="Only captures of the last N hours (N > 0)."
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Where drift.json, drift.html and drift.prom go."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report on stdout."),
    push: bool = typer.Option(
        False, "--push", help="Push the metrics to $MLOPS_MONITOR_PUSHGATEWAY as well."
    ),
    cloudwatch: bool = typer.Option(
        False, "--cloudwatch", help="Send the metrics to CloudWatch (boto3's credentials)."
    ),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="Read the reference from this baseline (folder or s3://, written by `mlops "
        "monitor-baseline`) instead of the registry: what the scheduled cloud job does.",
    ),
    fail_on_drift: bool = typer.Option(
        True,
        "--fail-on-drift/--no-fail-on-drift",
        help="Exit 3 on drift (default). The scheduled job passes --no-fail-on-drift: drift is "
        "a finding it reports through the metrics, not a failed job.",
    ),
    trigger: bool = typer.Option(
        False,
        "--trigger/--dry-run",
        help="On drift, when the model retrains on drift: send the repository_dispatch "
        "(needs GITHUB_TOKEN, GITHUB_REPOSITORY) or only print it (default).",
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="Read only shard i/n of the capture files (every n-th file in path order) and "
        "write its partial state to --state-out; no verdict (see --merge). 'auto': the shard "
        "of this host in a Kubernetes Indexed Job ($JOB_COMPLETION_INDEX of "
        "$MLOPS_MONITOR_SHARD_COUNT, first) or a SageMaker Processing job "
        "($MLOPS_MONITOR_RESOURCE_CONFIG, default /opt/ml/config/resourceconfig.json); neither: "
        "1/1, a plain run. Host 1 merges every host's state from --shard-states and alone "
        "publishes the verdict.",
    ),
    shard_states: str | None = typer.Option(
        None,
        "--shard-states",
        help="With --shard auto: folder or s3:// prefix, unique to the run, where each host "
        "puts its partial state (SSE-KMS with $MLOPS_MONITOR_KMS_KEY when set); on Kubernetes "
        "one of its segments must be the run's $MLOPS_MONITOR_RUN_ID when set.",
    ),
    shard_timeout: float = typer.Option(
        1800,
        "--shard-timeout",
        help="With --shard auto: seconds host 1 waits for the other hosts' states.",
    ),
    state_out: Path | None = typer.Option(
        None, "--state-out", help="Where --shard writes its partial state (.npz)."
    ),
    merge: list[Path] | None = typer.Option(
        None,
        "--merge",
        help="Judge the partial states written by --shard runs (repeat for each file) "
        "instead of reading --captures.",
    ),
    exact_rows: int = typer.Option(
        EXACT_LIMIT,
        "--exact-rows",
        help="Numeric values kept exactly per column; past it KS and Wasserstein use a KLL "
        "quantile sketch with a stated rank error (the report says which).",
    ),
) -> None:
    """Compare captured traffic with the training reference; exit 3 on drift, 0 without."""
    from rich.console import Console
    from rich.table import Table

    from monitoring.baseline import load_baseline
    from monitoring.exporters import (
        PROMETHEUS_FILE,
        push_prometheus,
        put_cloudwatch,
        write_prometheus,
    )
    from monitoring.monitor import run_merge, run_monitor, run_shard
    from monitoring.report import write_reports
    from monitoring.retrain import dispatch
    from monitoring.settings import MonitorSettings
    from pipelines.core.definitions import load_model
    from pipelines.core.drift_rules import check_definition

    since = _since(since_hours)
    cluster = shard == "auto"
    shard_of = None if cluster else _shard(shard)
    if cluster and (state_out is not None or merge):
        raise MlopsError(
            "--shard auto puts its state under --shard-states and merges on host 1: not with "
            "--state-out or --merge",
            field="--shard",
        )
    if shard_states is not None and not cluster:
        raise MlopsError("--shard-states goes with --shard auto", field="--shard-states")
    if not shard_timeout > 0:  # NaN fails this too
        raise MlopsError(f"{shard_timeout:g} is not a number of seconds above 0",
                         field="--shard-timeout")  # fmt: skip
    if not cluster and (shard_of is None) != (state_out is None):
        raise MlopsError("--shard and --state-out go together", field="--shard")
    if shard_of is not None and merge:
        raise MlopsError("--shard writes a partial state, --merge judges them: not both")
    if exact_rows < 1:
        raise MlopsError(f"{exact_rows} is not a number of rows >= 1", field="--exact-rows")
    frozen = None
    if baseline:  # the scheduled job: no registry, no models/ folder, only the frozen reference
        if version:
            raise MlopsError("--version and --baseline exclude each other", field="--version")
        settings, client = current_settings(), None
        frozen = load_baseline(baseline, model)
    else:
        settings, client = connect_registry()
        loaded = load_model(settings.models_dir, settings.data_dir, model)  # unknown model: first
        check_definition(loaded.definition, loaded.dataset, str(loaded.path))
    monitor_settings = MonitorSettings()
    gateway = monitor_settings.pushgateway
    if push and not gateway:  # before any work, not after it
        raise MlopsError("--push needs MLOPS_MONITOR_PUSHGATEWAY", field="--push")
    location = captures or monitor_settings.captures
    if not location and not merge:
        raise MlopsError(
            "no captures to read: pass --captures PATH|s3://... or set MLOPS_MONITOR_CAPTURES",
            field="--captures",
        )
    if cluster:
        import tempfile

        from monitoring.cluster import cluster_host

        place = cluster_host(
            monitor_settings.resource_config, monitor_settings.job_completion_index,
            monitor_settings.shard_count, monitor_settings.run_id,
        )  # fmt: skip
        host = place.shard
        if host[1] > 1:  # one host: exactly the plain run
            assert location
            # Lives until the command returns: host 1 merges the states it downloads there.
            scratch = tempfile.TemporaryDirectory(prefix="mlops-shards-")

            def fold(path: Path) -> Any:
                return run_shard(
                    settings, model, location, host, path, client=client, env=env,
                    version=version, labels=labels, since=since, endpoint=endpoint,
                    exact_limit=exact_rows, reference=frozen,
                )  # fmt: skip

            merge = _cluster_shard(
                host, place.run, shard_states, shard_timeout, monitor_settings.kms_key,
                Path(scratch.name), fold,
            )  # fmt: skip
            if merge is None:
                return
    if shard_of is not None and state_out is not None:
        assert location
        partial = run_shard(
            settings, model, location, shard_of, state_out, client=client, env=env,
            version=version, labels=labels, since=since, endpoint=endpoint,
            exact_limit=exact_rows, reference=frozen,
        )  # fmt: skip
        typer.echo(
            f"shard {shard}: {partial.records} requests, {partial.rows} rows from "
            f"{partial.files} file(s), {partial.skipped} skipped; state: {state_out}"
        )
        return
    out = _output_dir(output_dir or settings.reports_dir / "monitoring" / model)
    if merge:
        result = run_merge(
            settings, model, merge, client=client, env=env, version=version, labels=labels,
            endpoint=endpoint, reference=frozen,
        )  # fmt: skip
    else:
        assert location
        result = run_monitor(
            settings, model, location, client=client, env=env, version=version, labels=labels,
            since=since, endpoint=endpoint, exact_limit=exact_rows, reference=frozen,
        )  # fmt: skip
    try:
        json_path, html_path = write_reports(result, out)
        prom_path = write_prometheus(result, out / PROMETHEUS_FILE)
    except OSError as exc:
        raise MlopsError(
            f"cannot write the reports: {exc}", file=out, field="--output-dir"
        ) from None
    console = Console(stderr=as_json, highlight=False)
    failures: list[str] = []
    if push and gateway:

        def pushed() -> str:
            push_prometheus(result, gateway)
            return f"Pushgateway: metrics pushed to {gateway}"

        _export(f"Pushgateway ({gateway})", pushed, failures, console)
    if cloudwatch:
        environment = env or monitor_settings.environment
        _export(
            "CloudWatch",
            lambda: f"CloudWatch: {put_cloudwatch(result, environment)} metrics sent",
            failures,
            console,
        )
    if as_json:
        import json

        typer.echo(json.dumps(result.as_dict(), indent=2))
    table = Table(title=f"{model}: drift against {result.reference.source}")
    for column in ("column", "test", "score", "drift when", "verdict"):
        table.add_column(column)
    rows = list(result.drift.features)
    if result.drift.prediction is not None:
        rows.append(result.drift.prediction)
    for f in rows:
        table.add_row(
            f.feature, f.method, f"{f.score:.4g}", f"{'<' if f.p_value else '>='} {f.threshold:g}",
            "[red]DRIFT[/]" if f.drifted else "[green]ok[/]",
        )  # fmt: skip
    console.print(table)
    drift = result.drift
    console.print(
        f"{len(drift.drifted_features)}/{len(drift.features)} features drifted (share "
        f"{drift.share:.2f}, threshold {drift.share_threshold:g}); {result.current.rows} rows "
        f"in {result.current.records} requests; {result.seconds:.2f} s"
    )
    if result.current.skipped:
        console.print(
            f"[yellow]warning:[/] {result.current.skipped} malformed capture record(s) skipped; "
            + escape("; ".join(result.current.skipped_examples[:3]))
        )
    if result.concept is not None:
        c = result.concept
        console.print(
            f"concept: {c.metric} {c.current:.4g} on {c.rows} labelled rows vs {c.reference} "
            f"at training ({'DEGRADED' if c.degraded else 'ok'})"
        )
        if c.note:
            console.print(f"[yellow]note:[/] {escape(c.note)}")
    console.print(f"reports: {json_path}, {html_path}, {prom_path}")
    if not result.detected:
        console.print("[green]no drift[/]")
        if failures:
            console.print(f"[bold red]error:[/] {len(failures)} metrics export(s) failed (above)")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        return
    console.print("[bold red]drift detected[/]")
    if result.reference.model.definition.retraining.on_drift:
        try:
            request = dispatch(result, monitor_settings, environment=env, dry_run=not trigger)
            console.print(f"retrain trigger: {request.describe()}", markup=False)
        except MlopsError as exc:  # drift was found: the exit code must still say so
            console.print(f"[bold red]error:[/] retrain trigger: {escape(exc.render())}")
    if failures and not fail_on_drift:  # the metrics were the way drift was to be reported
        raise typer.Exit(int(ExitCode.BAD_INPUT))
    raise typer.Exit(int(ExitCode.DRIFT) if fail_on_drift else 0)


@commands.command("monitor-baseline")
@guarded
def monitor_baseline(
    model: str = typer.Argument(..., help="Model name (folder under models/)."),
    env: str | None = typer.Option(
        None, "--env", help="Freeze the version pinned in this environment (default: champion)."
    ),
    version: str | None = typer.Option(None, "--version", help="Freeze this registered version."),
    to: str | None = typer.Option(
        None,
        "--to",
        help="Folder or s3://bucket/prefix to write to (default: s3://$MLOPS_AWS_BUCKET/"
        "baselines/<model>/<version>, where the scheduled monitor job reads it).",
    ),
) -> None:
    """Freeze a version's monitoring reference for the scheduled job (see monitor-baselines).

    The job runs `mlops monitor --baseline` in the serving image, which has no registry access
    and no models/ or data/ folder: everything it needs is in this baseline.
    """
    import os

    from monitoring.baseline import write_baseline
    from monitoring.pinned_baselines import frozen_reference
    from pipelines.core.conventions import baseline_prefix

    settings, client = connect_registry()
    reference = frozen_reference(settings, client, model, env=env, version=version)
    if to is None:
        bucket = os.environ.get("MLOPS_AWS_BUCKET")
        if not bucket:
            raise MlopsError(
                "pass --to, or set MLOPS_AWS_BUCKET to the stack's artifact bucket",
                field="--to",
            )
        to = f"s3://{bucket}/{baseline_prefix(model, str(reference.version))}"
    write_baseline(reference, to)
    typer.echo(f"{model} version {reference.version}: baseline written to {to}")


@commands.command("monitor-baselines")
@guarded
def monitor_baselines(
    env: str = typer.Option(..., "--env", help="The stack whose pins were just deployed."),
    folder: Path = typer.Option(
        ..., "--folder", help="Local folder holding the baselines, in the bucket's layout."
    ),
    freeze: bool = typer.Option(
        False, "--freeze", help="Read the registry and freeze every monitored pin into --folder."
    ),
    publish: bool = typer.Option(
        False, "--publish", help="Put the frozen baselines in the stack's bucket, manifests last."
    ),
    bucket: str | None = typer.Option(None, "--bucket", help="The stack's artifact bucket."),
    outputs: Path | None = typer.Option(
        None, "--outputs", help="Or the stack's `pulumi stack output --json`, for its bucket."
    ),
) -> None:
    """Freeze and publish the baselines of every model ENV deploys with a scheduled monitor.

    Run by each `pulumi up` job: --freeze with registry access, then --publish with the stack's
    deploy role (two steps, two roles). A version already published is left as it is.
    """
    from monitoring import pinned_baselines

    if not (freeze or publish):
        raise MlopsError("pass --freeze, --publish or both", field="--freeze")
    if freeze:
        settings, client = connect_registry()
        for line in pinned_baselines.freeze(settings, client, env, folder):
            typer.echo(line)
    if publish:
        target = bucket or (_bucket_of(outputs) if outputs else None)
        if not target:
            raise MlopsError("pass --bucket or --outputs for --publish", field="--bucket")
        for line in pinned_baselines.publish(current_settings(), env, folder, target):
            typer.echo(line)


def _bucket_of(outputs: Path) -> str:
    import json

    try:
        bucket = json.loads(outputs.read_text(encoding="utf-8")).get("bucket")
    except (OSError, ValueError, AttributeError) as exc:
        raise MlopsError(f"cannot read the stack outputs ({exc})", file=outputs) from None
    if not isinstance(bucket, str) or not bucket:
        raise MlopsError("the stack outputs hold no bucket", file=outputs, field="bucket")
    return bucket


@commands.command("demo-drift")
@guarded
def demo_drift(
    keep: bool = typer.Option(False, "--keep", help="Reuse the scratch workspace if present."),
) -> None:
    """Serve the champion, send normal then shifted traffic, detect drift, retrain and gate."""
    from monitoring.demo_loop import run_drift_demo

    run_drift_demo(current_settings(), keep=keep)


@commands.command("retrain-token")
@guarded
def retrain_token(
    env: str = typer.Option(..., "--env", help="The stack whose drift dispatches use it."),
) -> None:
    """Set the GitHub token drift alarms dispatch with, on the stack's EventBridge connection.

    The token is read from GITHUB_DISPATCH_TOKEN or stdin (never an argument: it would stay in
    the shell's history) and goes to EventBridge only, never to Pulumi config or state. Needs
    events:DescribeConnection and events:UpdateConnection on the connection, and Secrets
    Manager rights on its events!connection/ secret (an administrator's). Run at bootstrap and
    on every rotation.
    """
    import os
    import sys

    from pipelines.aws.dispatch_token import set_dispatch_token
    from pipelines.core.conventions import dispatch_connection_name

    token = os.environ.get("GITHUB_DISPATCH_TOKEN")
    if token is None:
        if sys.stdin.isatty():
            token = typer.prompt("GitHub token (contents: write)", hide_input=True)
        else:
            token = sys.stdin.read()
    arn = set_dispatch_token(env, token)
    typer.echo(f"token set on {dispatch_connection_name(env)} ({arn})")
