"""`mlops plan`, the pull-request report and `mlops sync` that .github/workflows call.

Registered by ``pipelines.cli.main``; heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipelines.cli.common import (
    connect_registry,
    current_settings,
    guarded,
)
from pipelines.core.errors import MlopsError

commands = typer.Typer()


@commands.command()
@guarded
def plan(
    base: str | None = typer.Option(
        None, "--base", help="Git ref to compare with (a pull request's base); the usual mode."
    ),
    model: list[str] = typer.Option(
        None, "--model", help="Retrain this model (a dispatch); repeatable; empty values ignored."
    ),
    schedule: str | None = typer.Option(
        None, "--schedule", help="Retrain the models whose retraining.schedule is this cron."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with the workflow matrix)."),
    github_output: Path | None = typer.Option(
        None, "--github-output", help="Also append matrix/models/any/infra/image/pins to this file."
    ),
    gated_runs: bool = typer.Option(
        False,
        "--gated-runs",
        help="With --base (main): find each affected model's run gated on its pull request in "
        "the shared registry, to register instead of retraining.",
    ),
) -> None:
    """Which models a change (or a schedule, or a dispatch) retrains, and why."""
    from pipelines.gitops.plan import plan_change, plan_selected, with_gated_runs

    settings = current_settings()
    names = [m.strip() for m in model or [] if m.strip()]
    if base and (names or schedule):
        raise MlopsError("give --base, or --model/--schedule, not both", field="--base")
    if gated_runs and not base:
        raise MlopsError("--gated-runs needs --base (a merge to plan)", field="--gated-runs")
    if base:
        result = plan_change(settings.root, base)
        if gated_runs:
            client = None if settings.is_embedded else connect_registry()[1]
            result = with_gated_runs(result, client, settings)
    elif names or (schedule and schedule.strip()):
        result = plan_selected(settings.root, names, schedule)
    else:
        raise MlopsError("nothing to plan: give --base REF, --model NAME or --schedule CRON")
    if github_output is not None:
        with github_output.open("a", encoding="utf-8") as out:
            out.write(result.github_output())
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    for entry in result.models:
        mark = "retrain" if entry.affected else "skip"
        if result.gated is not None and entry.model in result.gated:
            found = result.gated[entry.model]
            mark = f"registered from PR run {found.run_id}" if found.run_id else "retrain"
            entry_note = "" if found.run_id else f" (retrained on main: {found.reason})"
            typer.echo(f"{entry.model}: {mark}: {'; '.join(entry.reasons)}{entry_note}")
            continue
        typer.echo(f"{entry.model}: {mark}: {'; '.join(entry.reasons)}")
    if result.base is not None:
        typer.echo(f"infrastructure changed: {'yes' if result.infra else 'no'}")
        typer.echo(f"serving image changed: {'yes' if result.image else 'no'}")
        typer.echo(f"pins changed: {'yes' if result.pins else 'no'}")


@commands.command()
@guarded
def report(
    models: list[str] = typer.Argument(None, help="Models whose latest run to report."),
    output: Path = typer.Option(..., "--output", help="Markdown file to write."),
    section: list[Path] = typer.Option(
        None,
        "--section",
        help="A model section another job wrote with --part, or a folder: its *.section.md.",
    ),
    infra_preview: list[Path] = typer.Option(
        None,
        "--infra-preview",
        help="A `pulumi preview` output file, or a folder: its *.txt; repeatable.",
    ),
    part: bool = typer.Option(
        False, "--part", help="Write only the model sections, for a later report to --section."
    ),
    fork: bool = typer.Option(
        False,
        "--fork",
        help="The pull request comes from a fork: say the credentialed jobs were skipped.",
    ),
    run_id: str | None = typer.Option(
        None,
        "--run-id",
        help="With one model: report this training run (the job's own), not the latest one.",
    ),
) -> None:
    """Compose the pull-request comment from what the MLflow runs recorded."""
    from pipelines.gitops.pr_report import collect, compose, render_model

    sections = []
    if run_id and len(models or []) != 1:
        raise MlopsError(
            "--run-id reports one model's run: name exactly one model", field="--run-id"
        )
    if models:
        settings, client = connect_registry()
        sections = [render_model(collect(client, settings, name, run_id)) for name in models]
    for path in _expand(section, "*.section.md", "--section"):
        sections.append(path.read_text(encoding="utf-8"))
    previews = _expand(infra_preview, "*.txt", "--infra-preview")
    text = "\n".join(sections) if part else compose(sections, previews, fork=fork)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(str(output))


def _expand(paths: list[Path] | None, pattern: str, option: str) -> list[Path]:
    """Files as given, folders as the files under them that match ``pattern`` (downloaded
    artifacts land one folder per job)."""
    found: list[Path] = []
    for path in paths or []:
        if path.is_dir():
            found += sorted(path.rglob(pattern))
        elif path.is_file():
            found.append(path)
        else:
            raise MlopsError("no such file or folder", file=path, field=option)
    return found


@commands.command()
@guarded
def comment(
    pr: int = typer.Option(..., "--pr", help="Pull request number."),
    body: Path = typer.Option(..., "--body", help="The report written by `mlops report`."),
    repository: str = typer.Option(
        ..., "--repository", envvar="GITHUB_REPOSITORY", help="owner/name."
    ),
    api_url: str = typer.Option(
        "https://api.github.com", "--api-url", envvar="GITHUB_API_URL", help="GitHub's REST API."
    ),
    author: str = typer.Option(
        "github-actions[bot]", "--author", help="Account whose earlier report is edited."
    ),
) -> None:
    """Post the report on a pull request, editing this workflow's earlier report if any.

    The token is read from GH_TOKEN or GITHUB_TOKEN and never printed.
    """
    import os

    from pipelines.gitops.pr_comment import GitHub

    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
    if not token:
        raise MlopsError("set GH_TOKEN (the job's github.token) to post the report")
    if not body.is_file():
        raise MlopsError("no such file", file=body, field="--body")
    text = body.read_text(encoding="utf-8")
    verb, comment_id = GitHub(api_url, repository, token).post_report(pr, text, author)
    typer.echo(f"{verb} comment {comment_id} on #{pr}")


@commands.command()
@guarded
def sync(
    check: bool = typer.Option(
        False, "--check", help="Only report the differences; exit 1 when there are any."
    ),
) -> None:
    """Make the registry's aliases follow the pins in environments/ (git is the truth).

    Lists every alias that disagrees with the pins, then moves it (or, with --check, exits 1).
    Idempotent: a second run finds nothing. A pin naming a version the registry does not hold
    is exit 2 before any alias changes. The `challenger` alias is never touched.
    """
    from pipelines.gitops.sync import sync as sync_aliases

    settings, client = connect_registry()
    diffs = sync_aliases(client, settings, check=check)
    for diff in diffs:
        typer.echo(("differs: " if check else "fixed: ") + diff.describe())
    if not diffs:
        typer.echo("the registry's aliases match the pins")
    elif check:
        raise typer.Exit(1)


@commands.command("deploy-image")
@guarded
def deploy_image(
    stack: str = typer.Option(..., "--stack", help="The stack being previewed or applied."),
    built: str = typer.Option("", "--built", help="The image this run pushed, if it built one."),
    current: str = typer.Option(
        "", "--current", help="The stack's `image` output: the image it runs now."
    ),
    current_endpoints: str = typer.Option(
        "", "--current-endpoints", help="The stack's `endpoints` output (JSON), if any."
    ),
    github_output: Path | None = typer.Option(
        None, "--github-output", help="Also append image=<uri> to this file."
    ),
) -> None:
    """The serving image a `pulumi up` applies: the one built now, else the one the stack runs.

    Never empty for a stack that serves endpoints (exit 2): an empty image deletes them.
    """
    from pipelines.gitops.deploy_image import choose_image

    choice = choose_image(stack, built.strip(), current.strip(), current_endpoints)
    if github_output is not None:
        with github_output.open("a", encoding="utf-8") as out:
            out.write(f"image={choice.image}\n")
    typer.echo(choice.describe(stack))
