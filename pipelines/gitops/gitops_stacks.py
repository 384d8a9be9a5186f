"""``mlops render gitops``: each GitOps stack's manifests, in the folder its controller syncs.

A pins pull request moves a version in ``environments/<env>.yaml``. When an Argo CD or Flux
controller applies that stack's Kubernetes workloads (``kubernetesApply: gitops``), merging the
pins alone changes nothing in the cluster: the controller applies ``deploy/kubernetes/<env>``.
So the same pull request carries that folder, rendered from the new pins, and reviewers see
exactly what will be applied. Stacks that Pulumi applies (the default) get nothing rendered,
which makes this a no-op for a repository with no GitOps stack.

Every stack is rendered in memory before any folder is written, so bad input in one stack (exit
2, naming the file and field) leaves every folder as it was.

``check_gitops_stacks`` keeps git the truth between renders: a pin moved by hand, a model's
deployment settings or a stack's ``rollouts`` changed in a pull request without the folder
rendered again would leave the controller applying something the definitions no longer say.
``mlops check`` (every pull request's test job) and ``mlops render gitops --check`` report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipelines.core.cluster_settings import kubernetes_apply
from pipelines.core.errors import DefinitionError
from pipelines.core.pins import list_environments, load_environment
from pipelines.gitops.render import (
    changed_paths,
    render_kubernetes,
    render_settings,
    write_rendered,
)

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


@dataclass(frozen=True)
class StackCheck:
    """How a GitOps stack's committed folder compares with a render of the definitions."""

    environment: str
    folder: PurePosixPath
    changed: list[str]  # paths a render would write or remove; empty when up to date
    awaiting_image: bool  # never rendered and no image known: nothing to compare yet

    def describe(self) -> str:
        if self.awaiting_image:
            return (
                f"{self.environment}: {self.folder} is not rendered yet and no serving image is "
                "known; run `mlops render gitops --env "
                f"{self.environment} --image <registry/repository:tag>` and commit the folder"
            )
        if not self.changed:
            return f"{self.environment}: {self.folder} matches the definitions"
        shown = ", ".join(self.changed[:5]) + (", ..." if len(self.changed) > 5 else "")
        return (
            f"{self.environment}: {self.folder} is not what the definitions render "
            f"({len(self.changed)} file(s) differ: {shown}); run `mlops render gitops --env "
            f"{self.environment}` and commit the folder"
        )


def check_gitops_stacks(root: Path, environments: list[str] | None = None) -> list[StackCheck]:
    """Each GitOps stack's committed folder against a fresh render, with the image it runs."""
    checks = []
    for r in _renders_or_awaiting(root, environments):
        if isinstance(r, StackCheck):
            checks.append(r)
        elif r.folder is not None:
            checks.append(
                StackCheck(r.environment, r.folder, changed_paths(r.files, root / r.folder), False)
            )
    return checks


def _renders_or_awaiting(
    root: Path, environments: list[str] | None
) -> list[StackRender | StackCheck]:
    out: list[StackRender | StackCheck] = []
    folder = root / "environments"
    for name in dict.fromkeys(environments or list_environments(folder)):
        try:
            out.extend(render_gitops_stacks(root, [name], None))
        except DefinitionError as exc:
            rendered = rendered_folder(name)
            # Only the "no serving image" refusal: with no image given, none in the stack file
            # and no manifests committed, that is the one image error a render can raise.
            if exc.field != "image" or render_settings(root, name, None, root / rendered).image:
                raise
            out.append(StackCheck(name, rendered, [], True))
    return out
