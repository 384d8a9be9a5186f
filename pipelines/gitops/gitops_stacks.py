"""``mlops render gitops``: each GitOps stack's manifests, in the folder its controller syncs.

A pins pull request moves a version in ``environments/<env>.yaml``. When an Argo CD or Flux
controller applies that stack's Kubernetes workloads (``kubernetesApply: gitops``), merging the
pins alone changes nothing in the cluster: the controller applies ``deploy/kubernetes/<env>``.
So the same pull request carries that folder, rendered from the new pins, and reviewers see
exactly what will be applied. Stacks that Pulumi applies (the default) get nothing rendered,
which makes this a no-op for a repository with no GitOps stack.

Every stack is rendered in memory before any folder is written, so bad input in one stack (exit
2, naming the file and field) leaves every folder as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipelines.core.cluster_settings import kubernetes_apply
from pipelines.core.pins import list_environments, load_environment
from pipelines.gitops.render import render_kubernetes, write_rendered

GITOPS = "gitops"
# The folder the docs and the controller examples (docs/examples/gitops/) point Argo CD or Flux at.
RENDERED_ROOT = PurePosixPath("deploy/kubernetes")


def rendered_folder(environment: str) -> PurePosixPath:
    """Where the environment's manifests live in the repository (relative to its root)."""
    return RENDERED_ROOT / environment


@dataclass(frozen=True)
class StackRender:
    """One stack's render, or why it has none (``folder`` is None: Pulumi applies it)."""

    environment: str
    applier: str
    folder: PurePosixPath | None
    files: dict[str, str]


def render_gitops_stacks(
    root: Path, environments: list[str] | None, image: str | None
) -> list[StackRender]:
    """The render of each named environment (default: every one) that a controller applies."""
    folder = root / "environments"
    names = environments or list_environments(folder)
    renders = []
    for name in dict.fromkeys(names):
        load_environment(folder, name)  # a misspelt --env fails here, naming the file
        applier = kubernetes_apply(root, name)
        if applier != GITOPS:
            renders.append(StackRender(name, applier, None, {}))
            continue
        out = rendered_folder(name)
        files = render_kubernetes(root, name, image, rendered=root / out)
        renders.append(StackRender(name, applier, out, files))
    return renders


def write_gitops_stacks(root: Path, renders: list[StackRender]) -> dict[str, list[str]]:
    """Write each rendered folder; returns, per folder written, the paths that changed."""
    return {
        str(r.folder): write_rendered(r.files, root / r.folder)
        for r in renders
        if r.folder is not None
    }
