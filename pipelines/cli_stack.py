"""`mlops stack` and the SageMaker deployment flow against the local AWS stack.

Imported at the end of ``pipelines.cli``, this module adds its commands to the ``mlops`` app;
keep heavy imports inside the commands.

- ``mlops stack up|down|status|env``: the local stack (``pipelines.local_stack``).
- ``mlops sagemaker train|register|approve|deploy|shift|rollback``: deployment target
  ``sagemaker`` (``pipelines.sagemaker_flow``, ``pipelines.sagemaker_training``), against AWS
  or, with ``eval "$(mlops stack env)"``, against the local stack.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from pipelines.cli import ModelArg, SetOpt, _connect, _overrides, _progress, _settings, app, guarded
from pipelines.errors import MlopsError

if TYPE_CHECKING:
    from pipelines.local_stack import Stack
    from pipelines.sagemaker_flow import AwsSettings
    from pipelines.settings import Settings

stack_app = typer.Typer(
    help="The local AWS stack: moto, MLflow on a database with S3 artifacts, the model server "
    "and Prometheus, on 127.0.0.1.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
sagemaker_app = typer.Typer(
    help="Deployment target sagemaker: train, register, approve, deploy and roll back with boto3.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(stack_app, name="stack")
app.add_typer(sagemaker_app, name="sagemaker")

MotoPortOpt = typer.Option(None, "--moto-port", help="Default 4566 or MLOPS_STACK_MOTO_PORT.")
MlflowPortOpt = typer.Option(None, "--mlflow-port", help="Default 5000 or MLOPS_STACK_MLFLOW_PORT.")
ModelPortOpt = typer.Option(None, "--model-port", help="Default 8080 or MLOPS_STACK_MODEL_PORT.")
PromPortOpt = typer.Option(
    None, "--prometheus-port", help="Default 9090 or MLOPS_STACK_PROMETHEUS_PORT."
)
PgPortOpt = typer.Option(
    None,
    "--postgres-port",
    help="Default 5432 or MLOPS_STACK_POSTGRES_PORT (with --db postgresql).",
)
DbOpt = typer.Option(None, "--db", help="sqlite (default) or postgresql (Debian's packages).")
VersionOpt = typer.Option(..., "--version", help="MLflow version of the model.")
EnvOpt = typer.Option(..., "--env", help="Environment: the endpoint is <model>-<env>.")


def _stack(**ports: Any) -> Stack:
    from pydantic import ValidationError

    from pipelines.local_stack import Stack

    try:
        return Stack(_settings().state_dir, {k: v for k, v in ports.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise MlopsError(str(error["msg"]), field=".".join(map(str, error["loc"]))) from None


def _print_status(stack: Stack) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"local stack ({stack.dir})")
    for column in ("service", "state", "pid", "url", "note"):
        table.add_column(column)
    for s in stack.status():
        table.add_row(s.name, s.state, str(s.pid or "-"), s.url or "-", s.detail)
    Console().print(table)


@stack_app.command("up")
@guarded
def stack_up(
    moto_port: int | None = MotoPortOpt,
    mlflow_port: int | None = MlflowPortOpt,
    model_port: int | None = ModelPortOpt,
    prometheus_port: int | None = PromPortOpt,
    postgres_port: int | None = PgPortOpt,
    db: str | None = DbOpt,
) -> None:
    """Start what is not running yet (a second `up` only reports), then print the status."""
    stack = _stack(
        moto_port=moto_port,
        mlflow_port=mlflow_port,
        model_port=model_port,
        prometheus_port=prometheus_port,
        postgres_port=postgres_port,
        db=db,
    )
    stack.up(progress=_progress)
    _print_status(stack)
    typer.echo(f'use it with: eval "$(mlops stack env)"  (logs: {stack.logs})')


@stack_app.command("down")
@guarded
def stack_down(
    purge: bool = typer.Option(
        False, "--purge", help="Also delete the stack's folder: database, logs, deployed model."
    ),
) -> None:
    """Stop every service of the stack by its PID: SIGTERM, then SIGKILL after a timeout."""
    stack = _stack()
    stack.down(progress=_progress)
    if purge:
        stack.purge()
    typer.echo(f"stack stopped{' and its folder removed' if purge else ''}")


@stack_app.command("status")
@guarded
def stack_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each service's state, PID and URL."""
    from dataclasses import asdict

    stack = _stack()
    if as_json:
        typer.echo(json.dumps([asdict(s) for s in stack.status()], indent=2))
        return
    _print_status(stack)


@stack_app.command("env")
@guarded
def stack_env() -> None:
    """Print the exports that point boto3, MLflow and mlops at the stack."""
    import shlex

    for key, value in _stack().client_env().items():
        typer.echo(f"export {key}={shlex.quote(value)}")


def _environment(env: str) -> str:
    """``--env`` as one of environments/*.yaml, checked before any AWS call: a typo would
    otherwise create ``<model>-<typo>`` resources nobody manages."""
    from pipelines.pins import environment_path, list_environments, load_environment

    environments = _settings().environments_dir
    if not environment_path(environments, env).is_file():
        known = list_environments(environments)
        raise MlopsError(
            f"unknown environment {env!r}; known: {', '.join(known) or 'none'} "
            f"(environments/*.yaml in {environments})",
            field="--env",
        )
    load_environment(environments, env)  # a malformed file is reported here, too
    return env


def _weights(pairs: list[str]) -> dict[str, float]:
    """``VARIANT=WEIGHT`` pairs: finite, non-negative weights of which at least one is positive
    (SageMaker's own rule), checked before AWS is called."""
    import math

    weights: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise MlopsError(f"--weight expects VARIANT=NUMBER, got {pair!r}", field="--weight")
        if not math.isfinite(number) or number < 0:
            raise MlopsError(
                f"--weight {pair!r}: a weight is a non-negative number", field="--weight"
            )
        weights[name.strip()] = number
    if not any(w > 0 for w in weights.values()):
        raise MlopsError("at least one --weight must be positive", field="--weight")
    return weights


def _aws() -> AwsSettings:
    from pydantic import ValidationError

    from pipelines.sagemaker_flow import AwsSettings

    try:
        return AwsSettings()
    except ValidationError as exc:
        raise MlopsError(f"bad MLOPS_AWS_* setting: {exc.errors()[0]['msg']}") from None


@sagemaker_app.command("train")
@guarded
def sm_train(
    model: str = ModelArg,
    set_: list[str] = SetOpt,
    local: bool | None = typer.Option(
        None,
        "--local/--remote",
        help="Run the job's entry point here (moto runs nothing); default: when AWS is the stack.",
    ),
    timeout: float = typer.Option(3600, "--timeout", help="Seconds to wait for the job."),
) -> None:
    """Train as a SageMaker training job (script mode), then evaluate and gate; print the run id."""
    from pipelines.console import print_gates
    from pipelines.sagemaker_training import submit

    settings, client = _connect()
    run_locally = _is_local_endpoint() if local is None else local
    result = submit(
        client,
        settings,
        _aws(),
        model,
        _overrides(set_),
        run_locally=run_locally,
        timeout_seconds=timeout,
        progress=_progress,
    )
    print_gates(result.gates)
    result.gates.raise_if_failed(model)
    typer.echo(result.run_id)


def _is_local_endpoint() -> bool:
    import os

    return os.environ.get("AWS_ENDPOINT_URL", "").startswith(
        ("http://127.0.0.1", "http://localhost")
    )


@sagemaker_app.command("register")
@guarded
def sm_register(
    model: str = ModelArg,
    env: str | None = typer.Option(
        None,
        "--env",
        help="Environment whose package group (<model>-<env>) receives it (default: the one "
        "main's gated versions go to, staging in the template).",
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Default: the latest run."),
) -> None:
    """Register a gated run: MLflow version, model.tar.gz in S3 and a model package, or none."""
    from pipelines.environment_chain import receiving_environment
    from pipelines.sagemaker_flow import register_package

    env = _environment(env or receiving_environment(_settings().environments_dir) or "staging")
    settings, client = _connect()
    published = register_package(
        client,
        settings,
        _aws(),
        model,
        env,
        run_id,
        progress=_progress,
    )
    typer.echo(
        json.dumps(
            {
                "version": published.version,
                "model_package_arn": published.package_arn,
                "model_data": published.model_data,
            }
        )
    )


@sagemaker_app.command("approve")
@guarded
def sm_approve(
    model: str = ModelArg,
    env: str = EnvOpt,
    version: str = VersionOpt,
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approving."),
    note: str = typer.Option("", "--note", help="Approval description."),
) -> None:
    """Move a version's model package from PendingManualApproval to Approved (or Rejected)."""
    from pipelines.sagemaker_flow import APPROVED, REJECTED, set_approval

    _environment(env)
    _, client = _connect()
    status = REJECTED if reject else APPROVED
    before = set_approval(client, _aws(), model, version, env, status, note)
    typer.echo(f"{model} v{version}: {before} -> {status}")


@sagemaker_app.command("deploy")
@guarded
def sm_deploy(
    model: str = ModelArg,
    env: str = EnvOpt,
    version: str | None = typer.Option(
        None, "--version", help="Default: the version pinned in the environment."
    ),
    serve_locally: bool | None = typer.Option(
        None,
        "--serve-locally/--no-serve-locally",
        help="Also run the version on the stack's model server; default: when the stack is up.",
    ),
) -> None:
    """Create the model, a versioned endpoint config with data capture, and the endpoint."""
    from pipelines.definitions import Canary, load_model
    from pipelines.sagemaker_flow import MODEL_DATA_TAG, VARIANT, capture_uri, deploy

    _environment(env)
    settings, client = _connect()
    loaded = load_model(settings.models_dir, settings.data_dir, model)
    version = version or _pinned(settings, model, env)
    spec = loaded.definition.deployment
    canary = spec.strategy.canary_percent if isinstance(spec.strategy, Canary) else None
    aws = _aws()
    deployment = deploy(
        client,
        aws,
        model,
        env,
        version,
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
        canary_percent=canary,
        progress=_progress,
    )
    stack = _stack()
    if serve_locally is None:
        serve_locally = _is_local_endpoint() and stack.running("moto")
    if serve_locally:
        from pipelines.local_stack import serve_deployment

        model_data = client.get_model_version(model, version).tags[MODEL_DATA_TAG]
        serve_deployment(
            stack,
            model_data,
            deployment.endpoint,
            VARIANT,
            capture_uri(aws.bucket, env),
            progress=_progress,
        )
        _progress(f"{deployment.endpoint}: served locally at {stack.url('model')}")
    typer.echo(
        json.dumps(
            {
                "endpoint": deployment.endpoint,
                "endpoint_config": deployment.endpoint_config,
                "model": deployment.model_name,
                "version": version,
            }
        )
    )


def _pinned(settings: Settings, model: str, env: str) -> str:
    from pipelines.pins import load_environment, pinned

    environment = load_environment(settings.environments_dir, env)
    pin = pinned(environment, model)
    if pin is None:
        raise MlopsError(f"{model} is not pinned in {env}; pass --version", field="--version")
    return pin.version


@sagemaker_app.command("shift")
@guarded
def sm_shift(
    model: str = ModelArg,
    env: str = EnvOpt,
    weight: list[str] = typer.Option(..., "--weight", help="VARIANT=WEIGHT (repeatable)."),
) -> None:
    """Shift traffic between a canary endpoint's variants."""
    from pipelines.sagemaker_flow import shift_traffic

    _environment(env)
    weights = _weights(weight)
    shift_traffic(_aws(), model, env, weights)
    typer.echo(f"{model} in {env}: weights {weights}")


@sagemaker_app.command("rollback")
@guarded
def sm_rollback(model: str = ModelArg, env: str = EnvOpt) -> None:
    """Point the endpoint back at the endpoint config it ran before."""
    from pipelines.sagemaker_flow import rollback

    _environment(env)
    config = rollback(_aws(), model, env)
    typer.echo(f"{model} in {env}: rolled back to {config}")
