"""`mlops init` and `mlops template update`: adopting the template and keeping up with it.

Imported at the end of ``pipelines.cli``, this module adds its commands to the ``mlops`` app;
the work happens in ``pipelines.template.adopt`` and ``pipelines.template.template_update``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from pipelines.cli.common import (
    current_settings,
    err_console,
    guarded,
)
from pipelines.core.errors import DefinitionError

commands = typer.Typer()
# `mlops template ...`
template_group = typer.Typer(help="Keep an adopted repository up to date with the template.")

# Flag name of each answer, for prompts and for errors about a missing answer.
QUESTIONS = {
    "project_name": ("--project-name", "Project name (lower case, e.g. fraud-ml)"),
    "aws_account_id": ("--aws-account-id", "AWS account id (12 digits)"),
    "aws_region": ("--aws-region", "AWS region (e.g. eu-west-1)"),
    "github_repository": ("--github-repository", "GitHub repository trusted by CI (owner/name)"),
    "serving_target": ("--serving-target", "Default serving target (sagemaker or kubernetes)"),
    "keep_examples": ("--keep-examples/--drop-examples", "Keep the example models"),
}


def _root(root: Path | None) -> Path:
    return (root or current_settings().root).resolve()


def _collect(given: dict[str, Any], recorded: dict[str, Any] | None) -> dict[str, Any]:
    """Flags win over the recorded answers; what is still missing is asked for on a terminal."""
    raw = dict(recorded or {})
    raw.update({k: v for k, v in given.items() if v is not None})
    for name, (flag, question) in QUESTIONS.items():
        if name in raw:
            continue
        if not sys.stdin.isatty():
            raise DefinitionError(f"missing; pass {flag} (or answer it on a terminal)", field=name)
        if name == "keep_examples":
            raw[name] = typer.confirm(question, default=True)
        else:
            raw[name] = typer.prompt(question)
    return raw


@commands.command("init")
@guarded
def init(
    project_name: str | None = typer.Option(None, "--project-name", help="e.g. fraud-ml."),
    aws_account_id: str | None = typer.Option(None, "--aws-account-id", help="12 digits."),
    aws_region: str | None = typer.Option(None, "--aws-region", help="e.g. eu-west-1."),
    github_repository: str | None = typer.Option(
        None, "--github-repository", help="owner/name; the CI roles' OIDC trust accepts only it."
    ),
    serving_target: str | None = typer.Option(
        None, "--serving-target", help="sagemaker or kubernetes: new models' deployment.target."
    ),
    environments: str | None = typer.Option(
        None,
        "--environments",
        help="The promotion chain, comma-separated, 1 to 6 names (default dev,staging,prod). "
        "The last is production (approval required), each promotes from the one before; with "
        "three or more the first is a scratch stack and main's versions go to the second.",
    ),
    keep_examples: bool | None = typer.Option(
        None, "--keep-examples/--drop-examples", help="Keep penguins and seattle_weather."
    ),
    template_url: str | None = typer.Option(
        None, "--template-url", help="Template to update from (default: the clone's origin)."
    ),
    template_commit: str | None = typer.Option(
        None,
        "--template-commit",
        help="Template commit this checkout is (default: HEAD of the clone); needed when the "
        "repository was not cloned, e.g. GitHub's 'Use this template'.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the changes, write nothing."),
    root: Path | None = typer.Option(None, "--root", help="Checkout to adopt (default: this)."),
) -> None:
    """Adopt the template: set your names, account, region and repository everywhere.

    Every answer is checked before anything is written; running it again with the same answers
    changes nothing. With no flags it re-applies the answers recorded in .mlops-template.yaml.
    """
    from pipelines.template.adopt import ANSWERS_FILE, plan_adoption, read_answers, validate_answers
    from pipelines.template.adopt import adopt as run_adopt
    from pipelines.template.template_update import template_source

    folder = _root(root)
    recorded = read_answers(folder)
    given: dict[str, Any] = {
        "project_name": project_name,
        "aws_account_id": aws_account_id,
        "aws_region": aws_region,
        "github_repository": github_repository,
        "serving_target": serving_target,
        "environments": [e.strip() for e in environments.split(",")] if environments else None,
        "keep_examples": keep_examples,
    }
    raw = _collect(given, recorded)
    # The template commit is recorded once, at adoption; later runs must not move the base.
    if "template" not in raw:
        source = template_source(folder)
        if source is not None:
            raw["template"] = source.model_dump()
    if template_url or template_commit:
        previous = raw.get("template")
        recorded_source: dict[str, Any] = previous if isinstance(previous, dict) else {}
        raw["template"] = {
            **recorded_source,
            **({"url": template_url} if template_url else {}),
            **({"commit": template_commit} if template_commit else {}),
        }
    label = f"{ANSWERS_FILE} and flags" if recorded else "flags"
    answers = validate_answers(raw, source=label)
    if dry_run:
        for line in plan_adoption(folder, answers).describe(folder) or ["nothing to change"]:
            typer.echo(line)
        return
    changes = run_adopt(folder, answers)
    for line in changes.describe(folder):
        typer.echo(line)
    err_console().print(
        f"[green]ok[/]: {len(changes.writes)} written, {len(changes.deletes)} removed, "
        f"{len(changes.moves)} moved"
        + (
            ""
            if changes.writes or changes.deletes or changes.moves
            else " (already adopted with these answers)"
        ),
        markup=True,
    )


@template_group.command("update")
@guarded
def template_update(
    url: str | None = typer.Option(None, "--url", help="Template repository (default: recorded)."),
    ref: str = typer.Option("HEAD", "--ref", help="Branch or tag of the template to update to."),
    root: Path | None = typer.Option(None, "--root", help="Adopted checkout (default: this)."),
) -> None:
    """Merge the template's changes since adoption (or the last update), keeping yours.

    The difference between the old and the new template version, both rendered with your
    answers, is applied to the working tree and staged; review it and commit.
    """
    from pipelines.template.adopt import ANSWERS_FILE, read_answers, validate_answers
    from pipelines.template.template_update import update

    folder = _root(root)
    recorded = read_answers(folder)
    if recorded is None:
        raise DefinitionError("missing; run `mlops init` first", file=folder / ANSWERS_FILE)
    answers = validate_answers(recorded, source=str(folder / ANSWERS_FILE))
    result = update(folder, answers, url=url, ref=ref)
    if result.up_to_date:
        err_console().print(f"[green]ok[/]: already at template {result.new[:12]}", markup=True)
        return
    for path in result.changed:
        typer.echo(path)
    err_console().print(
        f"[green]ok[/]: template {result.old[:12]} -> {result.new[:12]}, "
        f"{len(result.changed)} files staged; review and commit",
        markup=True,
    )


@commands.command("new-dataset")
@guarded
def new_dataset(
    name: str = typer.Argument(..., help="Name of the new dataset (and its folder under data/)."),
    from_csv: Path = typer.Option(..., "--from-csv", help="CSV file to copy and describe."),
    description: str = typer.Option("", "--description", help="What one row is."),
) -> None:
    """Scaffold data/<name>/ from a CSV: the data and a commented, inferred dataset.yaml."""
    from pipelines.template.scaffold import new_dataset as scaffold

    typer.echo(str(scaffold(current_settings().data_dir, name, from_csv, description)))
