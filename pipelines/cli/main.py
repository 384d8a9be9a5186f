"""The ``mlops`` command line: the root app, and the one place that registers command groups.

Each module under ``pipelines.cli`` holds one group of commands and imports only
``pipelines.cli.common`` from this package; none imports this module back. The order below is
the order ``mlops --help`` lists the commands in.
"""

from __future__ import annotations

import sys

import typer

from pipelines.cli import (
    definitions,
    demo,
    monitor,
    render,
    sagemaker,
    serve,
    stack,
    stages,
    template,
    workflows,
)

app = typer.Typer(
    name="mlops",
    help="Train, gate, register and promote the models declared in models/<name>/model.yaml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help text: rendering it with rich would double the time `mlops --help` takes.
    rich_markup_mode=None,
)
# Commands at the top level (`mlops train`, `mlops monitor`, ...), then the named groups.
for commands in (
    stages.commands,
    definitions.commands,
    demo.commands,
    serve.commands,
    monitor.commands,
    template.commands,
    workflows.commands,
):
    app.add_typer(commands)
app.add_typer(stack.group, name="stack")
app.add_typer(sagemaker.group, name="sagemaker")
app.add_typer(render.group, name="render")
app.add_typer(template.template_group, name="template")


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
