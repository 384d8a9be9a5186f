"""``mlops stack up|down|status|env``: the local AWS stack (``pipelines.aws.local_stack``) on
127.0.0.1.

Registered by ``pipelines.cli.main``; heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from pipelines.cli.common import (
    current_settings,
    guarded,
    progress,
)
from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    from pipelines.aws.local_stack import Stack
group = typer.Typer(
    help="The local AWS stack: moto, MLflow on a database with S3 artifacts, the model server "
    "and Prometheus, on 127.0.0.1.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
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


def local_stack(**ports: Any) -> Stack:
    from pydantic import ValidationError

    from pipelines.aws.local_stack import Stack

    try:
        return Stack(
            current_settings().state_dir, {k: v for k, v in ports.items() if v is not None}
        )
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


@group.command("up")
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
    stack = local_stack(
        moto_port=moto_port,
        mlflow_port=mlflow_port,
        model_port=model_port,
        prometheus_port=prometheus_port,
        postgres_port=postgres_port,
        db=db,
    )
    stack.up(progress=progress)
    _print_status(stack)
    typer.echo(f'use it with: eval "$(mlops stack env)"  (logs: {stack.logs})')


@group.command("down")
@guarded
def stack_down(
    purge: bool = typer.Option(
        False, "--purge", help="Also delete the stack's folder: database, logs, deployed model."
    ),
) -> None:
    """Stop every service of the stack by its PID: SIGTERM, then SIGKILL after a timeout."""
    stack = local_stack()
    stack.down(progress=progress)
    if purge:
        stack.purge()
    typer.echo(f"stack stopped{' and its folder removed' if purge else ''}")


@group.command("status")
@guarded
def stack_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each service's state, PID and URL."""
    from dataclasses import asdict

    stack = local_stack()
    if as_json:
        typer.echo(json.dumps([asdict(s) for s in stack.status()], indent=2))
        return
    _print_status(stack)


@group.command("env")
@guarded
def stack_env() -> None:
    """Print the exports that point boto3, MLflow and mlops at the stack."""
    import shlex

    for key, value in local_stack().client_env().items():
        typer.echo(f"export {key}={shlex.quote(value)}")
