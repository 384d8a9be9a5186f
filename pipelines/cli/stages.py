"""The stage commands: validate-data, train, evaluate, gate, register, promote, rollback, run,
status."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from pipelines.cli.common import (
    ModelArg,
    RunIdOpt,
    SetOpt,
    connect_registry,
    current_settings,
    err_console,
    guarded,
    parse_overrides,
    progress,
    version_label,
)
from pipelines.core.errors import ExitCode, MlopsError
from pipelines.core.tags import EVALUATE_STAGE_TAG, STAGE_DONE
from pipelines.stages.console import escape, print_gates

if TYPE_CHECKING:
    from pipelines.stages.run import Outcome

commands = typer.Typer()


@commands.command("validate-data")
@guarded
def validate_data(
    model: str = ModelArg,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check a model's dataset against its schema and the model's needs; exit 1 on violations."""
    from pipelines.core.definitions import load_model
    from pipelines.stages.validate import validate_for_model

    settings = current_settings()
    loaded = load_model(settings.models_dir, settings.data_dir, model)
    _, report = validate_for_model(loaded)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    report.raise_if_failed(str(loaded.dataset.path))
    if not as_json:
        err_console().print(
            f"[green]ok[/]: {report.dataset}: {report.rows} rows match the schema", markup=True
        )


@commands.command()
@guarded
def train(
    model: str = ModelArg,
    set_: list[str] = SetOpt,
    backend: str = typer.Option(
        "local",
        "--backend",
        help="local, or sagemaker: a training job in the project's image, then evaluate and gate "
        "(same as `mlops sagemaker train`).",
    ),
) -> None:
    """Validate the data and train; print the MLflow run id. Nothing is registered."""
    if backend == "sagemaker":
        from pipelines.cli.sagemaker import sm_train

        sm_train(model, set_, local=None, timeout=3600)
        return
    if backend != "local":
        raise MlopsError(f"must be local or sagemaker, got {backend!r}", field="--backend")
    from pipelines.core.definitions import load_model
    from pipelines.stages.train import train as train_model

    settings, client = connect_registry()
    overrides = parse_overrides(set_)
    loaded = load_model(settings.models_dir, settings.data_dir, model, overrides)
    candidate = train_model(client, settings, loaded, overrides)
    typer.echo(candidate.run_id)


@commands.command()
@guarded
def evaluate(model: str = ModelArg, run_id: str | None = RunIdOpt) -> None:
    """Score a training run on its held-out rows; log metrics and plots."""
    from pipelines.core.scoring import json_safe
    from pipelines.stages.candidate import load_candidate
    from pipelines.stages.run import evaluate_stage

    settings, client = connect_registry()
    candidate = load_candidate(client, settings, model, run_id)
    evaluation, _ = evaluate_stage(candidate, settings)
    typer.echo(
        json.dumps({"run_id": candidate.run_id, "metrics": json_safe(evaluation.metrics)}, indent=2)
    )


@commands.command()
@guarded
def gate(model: str = ModelArg, run_id: str | None = RunIdOpt) -> None:
    """Run every gate on an evaluated run; exit 1 with every reason if any gate fails."""
    from pipelines.core.registry import get_run
    from pipelines.core.scoring import predict
    from pipelines.stages.candidate import load_candidate
    from pipelines.stages.evaluate import evaluate_predictions
    from pipelines.stages.run import gate_stage

    settings, client = connect_registry()
    run = get_run(client, model, run_id, settings)
    if run.data.tags.get(EVALUATE_STAGE_TAG) != STAGE_DONE:
        raise MlopsError(
            f"run {run.info.run_id} has not been evaluated; run `mlops evaluate {model}`"
        )
    candidate = load_candidate(client, settings, model, run.info.run_id)
    pred = predict(candidate.fitted(), candidate.x_test, candidate.model.definition.task.value)
    report = gate_stage(client, settings, candidate, evaluate_predictions(candidate, pred), pred)
    print_gates(report)
    report.raise_if_failed(model)


@commands.command()
@guarded
def register(model: str = ModelArg, run_id: str | None = RunIdOpt) -> None:
    """Register a gated run as a new version with the challenger alias; print the version."""
    from pipelines.stages.register import register as register_run

    settings, client = connect_registry()
    typer.echo(register_run(client, settings, model, run_id))


# The promotion workflow's mode: the pins pull request is reviewed before anything moves in the
# registry, and `mlops sync` moves the aliases once it is merged.
PinsOnlyOpt = typer.Option(
    False,
    "--pins-only",
    help="Change only environments/<env>.yaml; leave the registry's aliases to `mlops sync` "
    "after the pins are merged.",
)


@commands.command()
@guarded
def promote(
    model: str = ModelArg,
    to: str = typer.Option(..., "--to", help="Environment: a file under environments/."),
    version: str | None = typer.Option(
        None,
        "--version",
        help="Default: the challenger, or the version pinned where this environment promotes from.",
    ),
    pins_only: bool = PinsOnlyOpt,
) -> None:
    """Pin a version in an environment and move its aliases, all or nothing.

    With --pins-only only the pins file changes (the promotion workflow's mode).
    """
    from pipelines.stages.promote import promote as promote_model

    settings, client = connect_registry()
    move = promote_model(client, settings, model, to, version, pins_only=pins_only)
    _print_move(move, "pinned" if pins_only else "promoted")
    if pins_only and move.changed:
        typer.echo("aliases unchanged: `mlops sync` moves them once this pin is merged")


@commands.command("check-promote")
@guarded
def check_promote(
    to: list[str] = typer.Option(
        ..., "--to", help="Environments, in the order `mlops run --promote` would take them."
    ),
) -> None:
    """Whether a newly trained version may be promoted to these environments (exit 2 if not).

    Reads only the pins files, so a workflow asks before anyone approves or anything trains.
    """
    from pipelines.stages.promote import check_new_version_targets

    check_new_version_targets(current_settings(), to)
    typer.echo(f"a new version may be promoted to {', '.join(to)}")


@commands.command()
@guarded
def rollback(
    model: str = ModelArg,
    env: str = typer.Option(..., "--env", help="Environment to return to its previous version."),
) -> None:
    """Return an environment to the version it ran before, all or nothing."""
    from pipelines.stages.promote import rollback as rollback_model

    settings, client = connect_registry()
    _print_move(rollback_model(client, settings, model, env), "rolled back")


@commands.command("run")
@guarded
def run_(
    models: list[str] = typer.Argument(None, help="Models to run; default all of them."),
    set_: list[str] = SetOpt,
    promote_to: list[str] = typer.Option(
        None,
        "--promote",
        help="Environments to promote to after registration, in order (repeatable).",
    ),
    pins_only: bool = PinsOnlyOpt,
) -> None:
    """All stages for each model: validate, train, evaluate, gate, register (and promote)."""
    from pipelines.core.definitions import discover_models
    from pipelines.stages.run import run_model

    settings, client = connect_registry()
    names = models or discover_models(settings.models_dir)
    if not names:
        raise MlopsError(f"no models under {settings.models_dir}")
    outcomes = [
        run_model(
            client,
            settings,
            name,
            overrides=parse_overrides(set_),
            promote_to=promote_to,
            pins_only=pins_only,
            progress=progress,
        )
        for name in names
    ]
    for outcome in outcomes:
        if outcome.gates:
            print_gates(outcome.gates, title=f"{outcome.model}: gates")
    _print_outcomes(outcomes)
    rejected = [o for o in outcomes if o.rejected]
    for outcome in rejected:
        reason = escape(outcome.rejected or "")
        err_console().print(f"[bold red]rejected:[/] {outcome.model}: {reason}", markup=True)
    if rejected:
        raise typer.Exit(int(ExitCode.REJECTED))


@commands.command()
@guarded
def status(
    models: list[str] = typer.Argument(None, help="Models to show; default all of them."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Champion, challenger and the version pinned in each environment, with lineage."""
    from rich.table import Table

    from pipelines.core.definitions import discover_models
    from pipelines.stages.status import model_status

    settings, client = connect_registry()
    statuses = model_status(client, settings, models or discover_models(settings.models_dir))
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in statuses], indent=2))
        return
    from rich.console import Console

    environments = list(statuses[0].pins) if statuses else []  # in promotion order
    table = Table(title="models")
    for column in ["model", "champion", "challenger", *environments]:
        table.add_column(column)
    for s in statuses:
        table.add_row(
            s.model,
            version_label(s.champion),
            version_label(s.challenger),
            *(version_label(s.pins.get(e)) for e in environments),
        )
    lineage = Table(title="lineage of versions in use")
    for column in ["model", "version", "aliases", "environments", "git commit", "data", "metrics"]:
        lineage.add_column(column)
    for s in statuses:
        for v in s.versions:
            metrics = ", ".join(f"{k}={val}" for k, val in sorted(v["metrics"].items())[:3])
            if not v["in_registry"]:
                metrics = "not in this registry (lineage from the pin)"
            lineage.add_row(
                s.model,
                f"v{v['version']}",
                ",".join(v["aliases"]),
                ",".join(v["environments"]),
                (v["git_commit"] or "")[:12],
                (v["data_fingerprint"] or "")[7:19],
                metrics,
            )
    console = Console()
    console.print(table)
    console.print(lineage)


def _print_move(move: Any, verb: str) -> None:
    if not move.changed:
        typer.echo(
            f"{move.model}: {move.environment} already runs v{move.to_version}; nothing changed"
        )
        return
    before = version_label(move.from_version)
    typer.echo(f"{move.model}: {verb} {move.environment} {before} -> v{move.to_version}")


def _print_outcomes(outcomes: list[Outcome]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results")
    for column in ("model", "run", "primary metric", "verdict", "version", "promoted", "seconds"):
        table.add_column(column)
    for o in outcomes:
        verdict = "[bold red]rejected[/]" if o.rejected else "[green]passed[/]"
        promoted = ", ".join(f"{m.environment}:v{m.to_version}" for m in o.promotions) or "-"
        value = o.metrics.get(o.primary_metric)
        primary = f"{o.primary_metric}={value:.4g}" if value is not None else "-"
        table.add_row(
            o.model,
            (o.run_id or "-")[:8],
            primary,
            verdict,
            version_label(o.version),
            promoted,
            f"{sum(o.timings.values()):.1f}",
        )
    Console().print(table)
