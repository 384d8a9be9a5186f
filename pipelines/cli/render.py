"""``mlops render``: write what a deploy would apply, as files, for a GitOps controller
(``pipelines.gitops.render``, ``pipelines.gitops.gitops_stacks``). Registered by
``pipelines.cli.main``."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.common import current_settings, guarded

group = typer.Typer(
    help="Write what a deploy would apply, as files (no cloud, no cluster).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

IMAGE_HELP = (
    "Serving image; default mlops:image in Pulumi.<env>.yaml, else the image the folder's "
    "manifests already run."
)


@group.command("kubernetes")
@guarded
def kubernetes(
    env: str = typer.Option(..., "--env", help="Environment: environments/<env>.yaml."),
    out: Path = typer.Option(..., "--out", help="Folder to write (replaced as a whole)."),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
) -> None:
    """The environment's Kubernetes workload manifests, deterministic, for Argo CD or Flux."""
    from pipelines.gitops.render import render_kubernetes, write_rendered

    files = render_kubernetes(current_settings().root, env, image, rendered=out)
    changed = write_rendered(files, out)
    _report(str(out), files, changed)


@group.command("gitops")
@guarded
def gitops(
    envs: list[str] | None = typer.Option(
        None, "--env", help="Environment to render (repeat it); default every environment."
    ),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
    github_output: Path | None = typer.Option(
        None,
        "--github-output",
        help="Also append folders=<the folders written, comma-separated> to this file.",
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Write nothing; exit 1 when a committed folder is not what the definitions render.",
    ),
) -> None:
    """Render deploy/kubernetes/<env> of each stack with kubernetesApply: gitops; skip the rest.

    A pins pull request runs this so that it carries what Argo CD or Flux will apply. Nothing is
    written when any stack's input is bad (exit 2).
    """
    root = current_settings().root
    if check:
        if image is not None or github_output is not None:
            raise typer.BadParameter(
                "--check compares with the committed image; it takes no --image or --github-output",
                param_hint="--check",
            )
        _check(root, envs)
        return
    from pipelines.gitops.gitops_stacks import render_gitops_stacks, write_gitops_stacks

    renders = render_gitops_stacks(root, envs, image)
    written = write_gitops_stacks(root, renders)
    if github_output is not None:
        with github_output.open("a", encoding="utf-8") as handle:
            handle.write(f"folders={','.join(written)}\n")
    for r in renders:
        if r.folder is None:
            typer.echo(f"{r.environment}: kubernetesApply is {r.applier}; nothing rendered")
        else:
            _report(f"{r.environment}: {r.folder}", r.files, written[str(r.folder)])


def _report(where: str, files: dict[str, str], changed: list[str]) -> None:
    models = sum(
        1 for path in files if path.count("/") == 1 and path.endswith("/kustomization.yaml")
    )
    typer.echo(f"{where}: {models} model(s), {len(files)} files, {len(changed)} changed")
    for path in changed:
        typer.echo(f"  {path}")


def _check(root: Path, envs: list[str] | None) -> None:
    from pipelines.gitops.gitops_stacks import check_gitops_stacks

    checks = check_gitops_stacks(root, envs)
    for c in checks:
        typer.echo(c.describe())
    if not checks:
        typer.echo("no stack has kubernetesApply: gitops; nothing to compare")
    if any(c.changed for c in checks):
        raise typer.Exit(1)
