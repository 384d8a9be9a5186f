"""What every ``mlops`` command module shares: the error translator, settings, the registry
connection and the options used by several groups.

A leaf: command modules import it, it imports no command module. Heavy libraries (MLflow,
pandas, scikit-learn) stay inside the functions so that ``mlops --help`` stays fast. Failures
are exit codes with a message on stderr (see ``pipelines.core.errors.ExitCode``), never
tracebacks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from pipelines.core.errors import ExitCode, MlopsError
from pipelines.stages.console import escape

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from rich.console import Console

    from pipelines.core.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

ModelArg = typer.Argument(..., help="Model name: the folder under models/.", show_default=False)
RunIdOpt = typer.Option(None, "--run-id", help="Training run to use; default the latest one.")
SetOpt = typer.Option(
    None,
    "--set",
    help="Override a model.yaml key for this run: dotted.key=yaml-value (repeatable).",
)


def err_console() -> Console:
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
            err_console().print(f"[bold red]{label}:[/] {message}", markup=True, soft_wrap=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def current_settings() -> Settings:
    from pydantic import ValidationError

    from pipelines.core.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise MlopsError(f"bad MLOPS_* setting: {exc.errors()[0]['msg']}") from None


def connect_registry() -> tuple[Settings, MlflowClient]:
    from pipelines.core.registry import connect

    settings = current_settings()
    return settings, connect(settings)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
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


def progress(message: str) -> None:
    err_console().print(f"[dim]{escape(message)}[/]", markup=True)


def version_label(version: str | None) -> str:
    return f"v{version}" if version else "-"
