"""``mlops render kubernetes``: write an environment's Kubernetes manifests for a GitOps controller
(``pipelines.gitops.render``). Registered by ``pipelines.cli.main``."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.common import current_settings, guarded

group = typer.Typer(
    help="Write what a deploy would apply, as files (no cloud, no cluster).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@group.command("kubernetes")
@guarded
def kubernetes(
    env: str = typer.Option(..., "--env", help="Environment: environments/<env>.yaml."),
    out: Path = typer.Option(..., "--out", help="Folder to write (replaced as a whole)."),
    image: str | None = typer.Option(
        None, "--image", help="Serving image; default mlops:image in Pulumi.<env>.yaml."
    ),
) -> None:
    """The environment's Kubernetes workload manifests, deterministic, for Argo CD or Flux."""
    from pipelines.gitops.render import render_kubernetes, write_rendered

    files = render_kubernetes(current_settings().root, env, image)
    changed = write_rendered(files, out)
    models = sum(
        1 for path in files if path.count("/") == 1 and path.endswith("/kustomization.yaml")
    )
    typer.echo(f"{out}: {models} model(s), {len(files)} files, {len(changed)} changed")
    for path in changed:
        typer.echo(f"  {path}")
