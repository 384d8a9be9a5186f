"""The ``mlops`` command line: one sub-command per stage, wired here and nowhere else.

Heavy libraries (MLflow, pandas, scikit-learn) are imported inside the commands so that
``mlops --help`` stays fast. Failures are exit codes with a message on stderr (see
``pipelines.errors.ExitCode``), never tracebacks.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from pipelines.console import escape, print_gates
from pipelines.errors import ExitCode, MlopsError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from rich.console import Console

    from pipelines.run import Outcome
    from pipelines.settings import Settings

app = typer.Typer(
    name="mlops",
    help="Train, gate, register and promote the models declared in models/<name>/model.yaml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help text: rendering it with rich would double the time `mlops --help` takes.
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])

ModelArg = typer.Argument(..., help="Model name: the folder under models/.", show_default=False)
RunIdOpt = typer.Option(None, "--run-id", help="Training run to use; default the latest one.")
SetOpt = typer.Option(
    None,
    "--set",
    help="Override a model.yaml key for this run: dotted.key=yaml-value (repeatable).",
)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def guarded(command: F) -> F:
    """Report expected failures as a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MlopsError as exc:
            label = "rejected" if exc.exit_code == ExitCode.REJECTED else "error"
            message = escape(exc.render())  # user text may contain [brackets]
            _stderr().print(f"[bold red]{label}:[/] {message}", markup=True, soft_wrap=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    from pydantic import ValidationError

    from pipelines.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise MlopsError(f"bad MLOPS_* setting: {exc.errors()[0]['msg']}") from None


def _connect() -> tuple[Settings, MlflowClient]:
    from pipelines.registry import connect

    settings = _settings()
    return settings, connect(settings)


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    import yaml

    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise MlopsError(f"--set expects dotted.key=value, got {pair!r}", field="--set")
        try:
            overrides[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise MlopsError(
                f"--set {key}: value is not valid YAML ({exc})", field="--set"
            ) from None
    return overrides


def _progress(message: str) -> None:
    _stderr().print(f"[dim]{escape(message)}[/]", markup=True)


@app.command("validate-data")
@guarded
def validate_data(
    model: str = ModelArg,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check a model's dataset against its schema and the model's needs; exit 1 on violations."""
    from pipelines.definitions import load_model
    from pipelines.validate import validate_for_model

    settings = _settings()
    loaded = load_model(settings.models_dir, settings.data_dir, model)
    _, report = validate_for_model(loaded)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    report.raise_if_failed(str(loaded.dataset.path))
    if not as_json:
        _stderr().print(
            f"[green]ok[/]: {report.dataset}: {report.rows} rows match the schema", markup=True
        )


@app.command()
@guarded
def train(
    model: str = ModelArg,
    set_: list[str] = SetOpt,
    backend: str = typer.Option(
        "local",
        "--backend",
        help="local, or sagemaker: a script-mode training job, then evaluate and gate "
        "(same as `mlops sagemaker train`).",
    ),
) -> None:
    """Validate the data and train; print the MLflow run id. Nothing is registered."""
    if backend == "sagemaker":
        from pipelines.cli_stack import sm_train

        sm_train(model, set_, local=None, timeout=3600)
        return
    if backend != "local":
        raise MlopsError(f"must be local or sagemaker, got {backend!r}", field="--backend")
    from pipelines.definitions import load_model
    from pipelines.train import train as train_model

    settings, client = _connect()
    overrides = _overrides(set_)
    loaded = load_model(settings.models_dir, settings.data_dir, model, overrides)
    candidate = train_model(client, settings, loaded, overrides)
    typer.echo(candidate.run_id)


@app.command()
@guarded
def evaluate(model: str = ModelArg, run_id: str | None = RunIdOpt) -> None:
    """Score a training run on its held-out rows; log metrics and plots."""
    from pipelines.candidate import load_candidate
    from pipelines.evaluate import json_safe
    from pipelines.run import evaluate_stage

    settings, client = _connect()
    candidate = load_candidate(client, settings, model, run_id)
    evaluation, _ = evaluate_stage(candidate, settings)
    typer.echo(
        json.dumps({"run_id": candidate.run_id, "metrics": json_safe(evaluation.metrics)}, indent=2)
    )


@app.command()
@guarded
def gate(model: str = ModelArg, run_id: str | None = RunIdOpt) -> None:
    """Run every gate on an evaluated run; exit 1 with every reason if any gate fails."""
    from pipelines.candidate import load_candidate
    from pipelines.evaluate import evaluate_predictions, predict
    from pipelines.registry import get_run
    from pipelines.run import gate_stage

    settings, client = _connect()
    run = get_run(client, model, run_id, settings)
    if run.data.tags.get("mlops.stage.evaluate") != "done":
        raise MlopsError(
            f"run {run.info.run_id} has not been evaluated; run `mlops evaluate {model}`"
        )
    candidate = load_candidate(client, settings, model, run.info.run_id)
    pred = predict(candidate.fitted(), candidate.x_test, candidate.model.definition.task.value)
    report = gate_stage(client, settings, candidate, evaluate_predictions(candidate, pred), pred)
    print_gates(report)
    report.raise_if_failed(model)


@app.command()
@guarded
def register(model: str = ModelArg, run_id: str | None = RunIdOpt) -> None:
    """Register a gated run as a new version with the challenger alias; print the version."""
    from pipelines.register import register as register_run

    settings, client = _connect()
    typer.echo(register_run(client, settings, model, run_id))


@app.command()
@guarded
def promote(
    model: str = ModelArg,
    to: str = typer.Option(..., "--to", help="Environment: a file under environments/."),
    version: str | None = typer.Option(
        None,
        "--version",
        help="Default: the challenger, or the version pinned where this environment promotes from.",
    ),
) -> None:
    """Pin a version in an environment and move its aliases, all or nothing."""
    from pipelines.promote import promote as promote_model

    settings, client = _connect()
    move = promote_model(client, settings, model, to, version)
    _print_move(move, "promoted")


@app.command()
@guarded
def rollback(
    model: str = ModelArg,
    env: str = typer.Option(..., "--env", help="Environment to return to its previous version."),
) -> None:
    """Return an environment to the version it ran before, all or nothing."""
    from pipelines.promote import rollback as rollback_model

    settings, client = _connect()
    _print_move(rollback_model(client, settings, model, env), "rolled back")


@app.command("run")
@guarded
def run_(
    models: list[str] = typer.Argument(None, help="Models to run; default all of them."),
    set_: list[str] = SetOpt,
    promote_to: list[str] = typer.Option(
        None,
        "--promote",
        help="Environments to promote to after registration, in order (repeatable).",
    ),
) -> None:
    """All stages for each model: validate, train, evaluate, gate, register (and promote)."""
    from pipelines.definitions import discover_models
    from pipelines.run import run_model

    settings, client = _connect()
    names = models or discover_models(settings.models_dir)
    if not names:
        raise MlopsError(f"no models under {settings.models_dir}")
    outcomes = [
        run_model(
            client,
            settings,
            name,
            overrides=_overrides(set_),
            promote_to=promote_to,
            progress=_progress,
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
        _stderr().print(f"[bold red]rejected:[/] {outcome.model}: {reason}", markup=True)
    if rejected:
        raise typer.Exit(int(ExitCode.REJECTED))


@app.command()
@guarded
def status(
    models: list[str] = typer.Argument(None, help="Models to show; default all of them."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Champion, challenger and the version pinned in each environment, with lineage."""
    from rich.table import Table

    from pipelines.definitions import discover_models
    from pipelines.status import model_status

    settings, client = _connect()
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
            s.model, _v(s.champion), _v(s.challenger), *(_v(s.pins.get(e)) for e in environments)
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


@app.command("new-model")
@guarded
def new_model(
    name: str = typer.Argument(..., help="Name of the new model (and its folder)."),
    dataset: str = typer.Option(..., "--dataset", help="A dataset under data/."),
    task: str = typer.Option(..., "--task", help="classification or regression."),
    target: str = typer.Option(..., "--target", help="Column to predict."),
    features: str | None = typer.Option(
        None, "--features", help="Comma-separated; default all other non-datetime columns."
    ),
    owner: str = typer.Option("unowned", "--owner"),
    description: str = typer.Option("", "--description"),
    from_csv: Path | None = typer.Option(
        None, "--from-csv", help="Also create data/<dataset>/ from this CSV (inferred, commented)."
    ),
) -> None:
    """Scaffold models/<name>/model.yaml from the template, checked against its dataset."""
    from pipelines.scaffold import new_model as scaffold

    settings = _settings()
    feature_list = [f.strip() for f in features.split(",") if f.strip()] if features else None
    path = scaffold(
        settings.models_dir,
        settings.data_dir,
        name=name,
        dataset=dataset,
        task=task,
        target=target,
        features=feature_list,
        owner=owner,
        description=description,
        from_csv=from_csv,
    )
    typer.echo(str(path))


@app.command()
@guarded
def check() -> None:
    """Validate every model, dataset and environment file (no data is read, no MLflow needed)."""
    from pipelines.conventions import slug_collisions
    from pipelines.definitions import discover_models, load_model
    from pipelines.errors import DefinitionError
    from pipelines.estimators import build_pipeline
    from pipelines.pins import list_environments, load_environment

    settings = _settings()
    names = discover_models(settings.models_dir)
    for name in names:
        build_pipeline(load_model(settings.models_dir, settings.data_dir, name))  # path, params
    for cloud_name, group in slug_collisions(names).items():
        raise DefinitionError(
            f"models {' and '.join(group)} would share the endpoint, package group and alarms "
            f"named {cloud_name!r}: rename one",
            file=settings.models_dir,
        )
    environments = list_environments(settings.environments_dir)
    for environment in environments:
        load_environment(settings.environments_dir, environment)
    _stderr().print(
        f"[green]ok[/]: {len(names)} models, {len(environments)} environments", markup=True
    )


@app.command("dataset-fingerprint")
@guarded
def dataset_fingerprint(
    dataset: str = typer.Argument(..., help="A dataset under data/."),
    write: bool = typer.Option(False, "--write", help="Update the fingerprint in dataset.yaml."),
) -> None:
    """Print the data's fingerprint; with --write, record it in dataset.yaml."""
    from pipelines.datasets import (
        add_fingerprint_line,
        dataset_path,
        load_dataset_by_name,
        update_fingerprint,
    )

    settings = _settings()
    if write:
        path = dataset_path(settings.data_dir, dataset)
        original = path.read_bytes() if path.is_file() else None
        # A dataset being written for the first time has no fingerprint line yet.
        added = add_fingerprint_line(path)
        try:
            old, new = update_fingerprint(load_dataset_by_name(settings.data_dir, dataset))
        except BaseException:
            if added and original is not None:
                path.write_bytes(original)  # nothing half-written
            raise
        typer.echo(new)
        if added:
            _stderr().print(f"recorded in {path}")
        elif old != new:
            _stderr().print(f"updated {path}: {old} -> {new}")
        return
    loaded = load_dataset_by_name(settings.data_dir, dataset)
    actual = loaded.content_fingerprint()
    typer.echo(actual)
    if actual != loaded.definition.fingerprint:
        raise MlopsError(
            f"differs from the declared {loaded.definition.fingerprint}",
            file=loaded.path,
            field="fingerprint",
        )


@app.command()
@guarded
def schema(
    check_only: bool = typer.Option(False, "--check", help="Exit 2 if the files are out of date."),
) -> None:
    """Write the JSON Schemas of model.yaml and dataset.yaml to schemas/ for editors."""
    from pipelines.schemas import write_schemas

    stale = write_schemas(_settings().root / "schemas", check_only=check_only)
    if stale and check_only:
        raise MlopsError(f"out of date: {', '.join(stale)}; run `mlops schema`")


@app.command()
@guarded
def demo(
    keep: bool = typer.Option(False, "--keep", help="Keep the previous demo workspace's registry."),
    drift: bool = typer.Option(
        False, "--drift", help="Run the drift-to-retrain loop instead (same as demo-drift)."
    ),
) -> None:
    """Run the whole story on the embedded default, in a scratch copy of the repository."""
    if drift:
        from monitoring.demo_loop import run_drift_demo

        run_drift_demo(_settings(), keep=keep)
        return
    from pipelines.demo import run_demo

    run_demo(_settings(), keep=keep)


AliasOpt = typer.Option("champion", "--alias", help="Registry alias of the version to use.")
VersionOpt = typer.Option(None, "--version", help="Version number; overrides --alias.")
ModelUriOpt = typer.Option(
    None, "--model-uri", help="Any MLflow model URI or local model folder; overrides both."
)


def _model_uri(model: str, alias: str, version: int | None, model_uri: str | None) -> str:
    if model_uri:
        return model_uri
    return f"models:/{model}/{version}" if version is not None else f"models:/{model}@{alias}"


@app.command()
@guarded
def serve(
    model: str = ModelArg,
    alias: str = AliasOpt,
    version: int | None = VersionOpt,
    model_uri: str | None = ModelUriOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(8080, "--port", help="Port (SageMaker's is 8080)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
) -> None:
    """Serve a model on /ping, /invocations and /metrics: the serving image's server, locally."""
    from serving.cli import run

    uri = _model_uri(model, alias, version, model_uri)
    if uri.startswith("models:/"):
        _connect()  # an unreachable registry is exit 2 before the server starts
    code = run(uri, host=host, port=port, workers=workers)
    if code:
        raise typer.Exit(code)


@app.command()
@guarded
def predict(
    model: str = ModelArg,
    input_: str = typer.Option(..., "--input", help="Rows to score: a .csv or .json file."),
    output: str = typer.Option(..., "--output", help="Where to write predictions (.csv/.json)."),
    alias: str = AliasOpt,
    version: int | None = VersionOpt,
    model_uri: str | None = ModelUriOpt,
) -> None:
    """Batch inference from a file, through the same checks and predict path as the server."""
    from pathlib import Path

    from serving.batch import predict_file

    uri = _model_uri(model, alias, version, model_uri)
    if uri.startswith("models:/"):
        _connect()
    rows = predict_file(uri, Path(input_), Path(output))
    typer.echo(f"{model}: {rows} rows predicted -> {output}")


def _v(version: str | None) -> str:
    return f"v{version}" if version else "-"


def _print_move(move: Any, verb: str) -> None:
    if not move.changed:
        typer.echo(
            f"{move.model}: {move.environment} already runs v{move.to_version}; nothing changed"
        )
        return
    typer.echo(
        f"{move.model}: {verb} {move.environment} {_v(move.from_version)} -> v{move.to_version}"
    )


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
            _v(o.version),
            promoted,
            f"{sum(o.timings.values()):.1f}",
        )
    Console().print(table)


# The other parts' commands live in their own modules and add themselves to `app` on import.
from pipelines import cli_monitor, cli_stack, cli_template, cli_workflows  # noqa: E402, F401


def main() -> None:
    import warnings

    # Per-group metrics on small groups trip scikit-learn's single-label warnings; the report
    # already says which groups are too small to judge.
    warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
    # MLflow's hints about integer columns in signatures: nullable ints are floats already.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")
    try:
        app()
    except SystemExit as exc:
        sys.exit(exc.code)


if __name__ == "__main__":
    main()
