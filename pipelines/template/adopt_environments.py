"""The environment files adoption writes: a pins file and a Pulumi stack file per environment.

Part of ``mlops init`` (``pipelines.template.adopt``); like the rest of adoption it only
computes new file contents in memory. Pins files follow the promotion chain
(``pipelines.core.environment_chain``) and keep their pins. A stack file is kept as the team has
it while its environment stays production or stays non-production; a new environment's stack
file (or one that changes between the two) starts from the stack file of the environment that
played that role before, with that environment's name replaced by the new one.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pipelines.core.environment_chain import (
    STANDARD_ENVIRONMENTS,
    Chain,
    Role,
    is_generated_description,
)
from pipelines.core.errors import DefinitionError
from pipelines.core.pins import (
    Environment,
    environment_path,
    list_environments,
    load_environment,
    render,
    with_pin,
)


def stack_path(root: Path, name: str) -> Path:
    return root / f"Pulumi.{name}.yaml"


def existing_stacks(root: Path) -> list[str]:
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in root.glob("Pulumi.*.yaml")
    )


def plan_environments(
    root: Path,
    chain: Chain,
    previous: Chain,
    *,
    unpin: tuple[str, ...],
    contents: dict[Path, str],
    originals: dict[Path, str],
    template_commit: str | None = None,
) -> list[Path]:
    """Fill ``contents`` with the chain's pins and stack files; returns the files to remove.

    ``previous`` is the chain the checkout was adopted with (the template's own before the first
    adoption): it says which stack file a new environment starts from. ``unpin`` lists models
    whose pins go (the declined examples). ``template_commit`` is where the template's own stack
    files are found when the checkout has no non-production one left to start from.
    """
    folder = root / "environments"
    for name in chain.names:
        path = environment_path(folder, name)
        existing = load_environment(folder, name) if path.is_file() else None
        environment = existing or Environment(environment=name)
        description = environment.description
        if existing is None or is_generated_description(description):
            description = chain.description(name)
        environment = environment.model_copy(
            update={"description": description, **chain.settings(name)}
        )
        for model in unpin:
            environment = with_pin(environment, model, None)
        originals.setdefault(path, path.read_text(encoding="utf-8") if existing else "")
        contents[path] = render(environment)

        stack = stack_path(root, name)
        was_production = existing.champion if existing else None
        is_production = name == chain.production
        if stack.is_file() and was_production in (None, is_production):
            continue  # the team's stack settings stay theirs
        source = _source_stack(root, previous, chain.role(name))
        originals.setdefault(stack, stack.read_text(encoding="utf-8") if stack.is_file() else "")
        if source is None:  # a chain of production alone grows: start from the template's
            source, text = _template_stack(root, chain.role(name), template_commit)
            renames = {source: name, STANDARD_ENVIRONMENTS[-1]: chain.production}
        else:
            text = stack_path(root, source).read_text(encoding="utf-8")
            renames = {source: name, previous.production: chain.production}
        contents[stack] = _derive_stack(text, name, renames)

    dropped = [e for e in list_environments(folder) if e not in chain.names]
    dropped_stacks = [s for s in existing_stacks(root) if s not in chain.names]
    return [environment_path(folder, e) for e in dropped] + [
        stack_path(root, s) for s in dropped_stacks
    ]


def _source_stack(root: Path, previous: Chain, role: Role) -> str | None:
    """The environment whose stack file a new ``role`` environment starts from; None for a
    non-production one when only production's stack file is left (a chain of one)."""
    candidates: dict[Role, list[str | None]] = {
        "production": [previous.production],
        "scratch": [previous.scratch, previous.first],
        "first": [previous.first, *previous.promoted[1:-1], previous.scratch],
        "middle": [*previous.promoted[1:-1], previous.first, previous.scratch],
    }
    production = role == "production"
    # A non-production stack never starts from production's (protected, approval-only, owner of
    # the account's shared resources) file, not even when production was the chain's first.
    same_role = [n for n in candidates[role] if production or n != previous.production]
    others = [n for n in (*previous.names, *STANDARD_ENVIRONMENTS) if n not in same_role]
    fallback = [n for n in others if (n == previous.production) == production]
    for name in [*same_role, *fallback, *(others if production else [])]:
        if name and stack_path(root, name).is_file():
            return name
    if not production:
        return None
    raise DefinitionError(
        "no stack file to start a new environment's from "
        f"(looked for Pulumi.<{'|'.join(previous.names)}>.yaml)",
        file=root,
    )


def _template_stack(root: Path, role: Role, commit: str | None) -> tuple[str, str]:
    """The template's own stack file for ``role`` (dev's or staging's) at the commit this checkout
    was adopted from, read from git, with its keys in this checkout's config namespace."""
    standard = Chain(STANDARD_ENVIRONMENTS)
    name = standard.scratch if role == "scratch" else standard.first
    assert name is not None  # the standard chain has a scratch environment
    text = _git_show(root, commit, f"Pulumi.{name}.yaml")
    project = _git_show(root, commit, "Pulumi.yaml")
    if text is None or project is None:
        raise DefinitionError(
            "no non-production stack file to start a new environment's from: the chain had "
            f"production alone, and the template's Pulumi.{name}.yaml is not in this "
            "repository's git history (template.commit); write the new environment's "
            "Pulumi.<env>.yaml first, then run `mlops init` again",
            file=root,
        )
    theirs, ours = _project_name(project), _project_name(_read(root / "Pulumi.yaml"))
    namespace = re.compile(rf"^(\s+){re.escape(theirs)}:(?=\w)", re.MULTILINE)
    return name, namespace.sub(lambda m: f"{m.group(1)}{ours}:", text)


def _git_show(root: Path, commit: str | None, path: str) -> str | None:
    if commit is None:
        return None
    shown = subprocess.run(
        ["git", "-C", str(root), "show", f"{commit}:{path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return shown.stdout if shown.returncode == 0 else None


def _project_name(pulumi_yaml: str) -> str:
    match = re.search(r"^name: *(\S+)", pulumi_yaml, re.MULTILINE)
    return match.group(1) if match else ""


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _derive_stack(text: str, name: str, renames: dict[str, str]) -> str:
    """A stack file for environment ``name``: its GitHub environment, and in the comments the
    names of the environments it was written for replaced by theirs in the new chain."""
    names = re.compile(r"\b(" + "|".join(re.escape(n) for n in renames) + r")\b")
    lines = [
        names.sub(lambda m: renames[m.group(1)], line) if line.lstrip().startswith("#") else line
        for line in text.splitlines(keepends=True)
    ]
    return re.sub(
        r"^(  [^:\n]+:deployEnvironments: ).*$",
        lambda m: f"{m.group(1)}[{name}]",
        "".join(lines),
        flags=re.MULTILINE,
    )
