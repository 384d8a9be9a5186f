"""`mlops monitor`: drift of captured traffic against the training reference.

Imported at the end of ``pipelines.cli``, this module adds its commands to the ``mlops`` app;
keep heavy imports inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli import app, guarded
from pipelines.errors import ExitCode, MlopsError


@app.command()
@guarded
def monitor(
    model: str = typer.Argument(
        ..., help="Model name: the folder under models/.", show_default=False
    ),
    captures: str | None = typer.Option(
        None, "--captures", help="Capture folder or s3:// prefix (default $MLOPS_MONITOR_CAPTURES)."
    ),
    env: str | None = typer.Option(
        None, "--env", help="Monitor the version pinned in this environment (default: champion)."
    ),
    version: str | None = typer.Option(None, "--version", help="Monitor this registered version."),
    labels: Path | None = typer.Option(
        None, "--labels", help="CSV of ground truth (event_id[,row],<target>): concept drift."
    ),
    since_hours: float | None = typer.Option(
        None, "--since-hours", help="Only captures of the last N hours.", min=0
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
    trigger: bool = typer.Option(
        False,
        "--trigger/--dry-run",
        help="On drift, when the model retrains on drift: send the repository_dispatch "
        "(needs GITHUB_TOKEN, GITHUB_REPOSITORY) or only print it (default).",
    ),
) -> None:
    """Compare captured traffic with the training reference; exit 3 on drift, 0 without."""
    from datetime import UTC, datetime, timedelta

    from rich.console import Console
    from rich.table import Table

    from monitoring.exporters import (
        PROMETHEUS_FILE,
        push_prometheus,
        put_cloudwatch,
        write_prometheus,
    )
    from monitoring.monitor import run_monitor
    from monitoring.report import write_reports
    from monitoring.retrain import dispatch
    from monitoring.settings import MonitorSettings
    from pipelines.cli import _connect
    from pipelines.definitions import load_model

    settings, client = _connect()
    load_model(settings.models_dir, settings.data_dir, model)  # an unknown model fails first
    monitor_settings = MonitorSettings()
    if push and not monitor_settings.pushgateway:  # before any work, not after it
        raise MlopsError("--push needs MLOPS_MONITOR_PUSHGATEWAY", field="--push")
    location = captures or monitor_settings.captures
    if not location:
        raise MlopsError(
            "no captures to read: pass --captures PATH|s3://... or set MLOPS_MONITOR_CAPTURES",
            field="--captures",
        )
    since = datetime.now(UTC) - timedelta(hours=since_hours) if since_hours else None
    result = run_monitor(
        settings, model, location, client=client, env=env, version=version, labels=labels,
        since=since,
    )  # fmt: skip
    out = output_dir or settings.reports_dir / "monitoring" / model
    json_path, html_path = write_reports(result, out)
    prom_path = write_prometheus(result, out / PROMETHEUS_FILE)
    console = Console(stderr=as_json, highlight=False)
    if push and monitor_settings.pushgateway:
        push_prometheus(result, monitor_settings.pushgateway)
    if cloudwatch:
        sent = put_cloudwatch(result, env or monitor_settings.environment)
        console.print(f"CloudWatch: {sent} metrics sent")
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
    if result.concept is not None:
        c = result.concept
        console.print(
            f"concept: {c.metric} {c.current:.4g} on {c.rows} labelled rows vs {c.reference} "
            f"at training ({'DEGRADED' if c.degraded else 'ok'})"
        )
    console.print(f"reports: {json_path}, {html_path}, {prom_path}")
    if not result.detected:
        console.print("[green]no drift[/]")
        return
    console.print("[bold red]drift detected[/]")
    if result.reference.model.definition.retraining.on_drift:
        request = dispatch(result, monitor_settings, environment=env, dry_run=not trigger)
        console.print(f"retrain trigger: {request.describe()}", markup=False)
    raise typer.Exit(int(ExitCode.DRIFT))


@app.command("demo-drift")
@guarded
def demo_drift(
    keep: bool = typer.Option(False, "--keep", help="Reuse the scratch workspace if present."),
) -> None:
    """Serve the champion, send normal then shifted traffic, detect drift, retrain and gate."""
    from monitoring.demo_loop import run_drift_demo
    from pipelines.cli import _settings

    run_drift_demo(_settings(), keep=keep)
