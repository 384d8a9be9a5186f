"""The command line is a public interface: every command, option, default and help text.

The snapshot was generated from the CLI before ``pipelines/`` became subpackages, so a
refactoring that changes what a user or a workflow sees fails here. A deliberate change is
recorded with ``MLOPS_UPDATE_CLI_SNAPSHOT=1 pytest tests/code/cli/test_main.py`` and reviewed
in the diff like any other change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from pipelines.cli.main import app

pytestmark = pytest.mark.code

SNAPSHOT = Path(__file__).with_name("cli_snapshot.json")
WIDTH = 100  # help text wraps at the terminal width; fixed so the snapshot is one text


def _param(param: Any) -> dict[str, Any]:
    default = param.default
    return {
        "name": param.name,
        "kind": type(param).__name__,
        "opts": [*param.opts, *param.secondary_opts],
        "nargs": param.nargs,
        "metavar": param.metavar,
        "required": param.required,
        "default": default
        if isinstance(default, str | int | float | bool | None)
        else repr(default),
        "multiple": param.multiple,
        "help": getattr(param, "help", None),
    }


def _help(path: list[str]) -> str:
    # Typer bundles its own copy of click: the context class comes from the command itself.
    command = typer.main.get_command(app)
    context = command.context_class(command, info_name="mlops", terminal_width=WIDTH)
    for name in path:
        sub = context.command.get_command(context, name)
        assert sub is not None, path
        context = sub.context_class(sub, info_name=name, parent=context, terminal_width=WIDTH)
    return str(context.command.get_help(context))


def _walk(command: Any, path: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": " ".join(["mlops", *path]),
        "help": _help(path),
        "params": [_param(p) for p in command.params],
    }
    if hasattr(command, "list_commands"):  # a group
        names = command.list_commands(command.context_class(command))
        entry["commands"] = names
        entry["children"] = [_walk(command.commands[n], [*path, n]) for n in names]
    return entry


def cli_tree() -> dict[str, Any]:
    return _walk(typer.main.get_command(app), [])


def test_every_command_option_and_help_text_is_unchanged() -> None:
    tree = cli_tree()
    if os.environ.get("MLOPS_UPDATE_CLI_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(tree, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert json.loads(json.dumps(tree, sort_keys=True)) == expected


def test_python_dash_m_pipelines_is_the_same_cli_as_mlops() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(WIDTH)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in json.loads(SNAPSHOT.read_text())["commands"]:
        assert name in result.stdout


def test_help_loads_no_heavy_library() -> None:
    """``mlops --help`` answers without MLflow, pandas or scikit-learn (start-up time)."""
    probe = (
        "import sys; from pipelines.cli.main import app; import typer;"
        "typer.main.get_command(app); "
        "print(sorted(m for m in ('mlflow', 'pandas', 'sklearn', 'boto3') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
