"""The pins contract: which model version runs in which environment, kept in git.

One file per environment, ``environments/<env>.yaml``. ``mlops promote`` and ``mlops rollback``
write it; the Pulumi program and ``mlops status`` read it. Promotion is therefore a reviewable
commit, and what runs in the cloud is exactly what the file says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field

from pipelines.core.datasets import NAME_PATTERN
from pipelines.core.errors import DefinitionError
from pipelines.core.yamlfile import Strict, load_yaml_model, write_text_atomically

HISTORY_LIMIT = 20

_HEADER = """\
# yaml-language-server: $schema=../schemas/environment.schema.json
# Which model version runs in the {env} environment.
# Written by `mlops promote` and `mlops rollback`; change it through a reviewed pull request.
# `pulumi up` on the {env} stack makes the cloud match this file.
"""


class PinRecord(Strict):
    version: Annotated[str, Field(pattern=r"^[0-9]+$")]
    run_id: Annotated[str, Field(min_length=1)]
    model_uri: str
    fingerprint: str = Field(description="The combined fingerprint the version was trained from.")
    data_fingerprint: str
    git_commit: str
    promoted_at: str
    promoted_by: str = "unknown"


class Pin(PinRecord):
    history: list[PinRecord] = Field(
        default_factory=list, description="Earlier pins, oldest first; rollback pops the last."
    )

    def record(self) -> PinRecord:
        return PinRecord(**self.model_dump(exclude={"history"}))


class Environment(Strict):
    environment: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    promote_from: Annotated[str, Field(pattern=NAME_PATTERN)] | None = Field(
        default=None,
        description="A version must be pinned in this environment before it may be pinned here.",
    )
    champion: bool = Field(
        default=False, description="The version pinned here carries the registry's champion alias."
    )
    requires_approval: bool = Field(
        default=False, description="Workflows promote here only through a reviewed environment."
    )
    models: dict[str, Pin] = Field(default_factory=dict)


def environment_path(environments_dir: Path, name: str) -> Path:
    return environments_dir / f"{name}.yaml"


def list_environments(environments_dir: Path) -> list[str]:
    return sorted(p.stem for p in environments_dir.glob("*.yaml"))


def in_promotion_order(environments: list[Environment]) -> list[Environment]:
    """Environments ordered as versions travel through them (dev, staging, prod), then by name."""
    by_name = {e.environment: e for e in environments}

    def depth(env: Environment) -> int:
        steps, seen = 0, {env.environment}
        while env.promote_from in by_name and env.promote_from not in seen:
            env = by_name[env.promote_from]
            seen.add(env.environment)
            steps += 1
        return steps

    return sorted(environments, key=lambda e: (depth(e), e.environment))


def load_environment(environments_dir: Path, name: str) -> Environment:
    path = environment_path(environments_dir, name)
    if not path.is_file():
        known = list_environments(environments_dir)
        raise DefinitionError(
            f"environment {name!r} not found (no {path}); known: {', '.join(known) or 'none'}"
        )
    environment = load_yaml_model(path, Environment)
    if environment.environment != name:
        raise DefinitionError(
            f"environment {environment.environment!r} must match its file name {name!r}",
            file=path,
            field="environment",
        )
    if environment.promote_from == name:
        raise DefinitionError(
            "an environment cannot promote from itself", file=path, field="promote_from"
        )
    return environment


class _NoAliasDumper(yaml.SafeDumper):
    """Never writes ``&anchor``/``*alias``: the strict loader refuses them."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(environment: Environment) -> str:
    body = yaml.dump(
        environment.model_dump(mode="json"), Dumper=_NoAliasDumper, sort_keys=False, width=100
    )
    return _HEADER.format(env=environment.environment) + body


def save_environment(environments_dir: Path, environment: Environment) -> Path:
    path = environment_path(environments_dir, environment.environment)
    write_text_atomically(path, render(environment))
    return path


def pinned(environment: Environment, model: str) -> Pin | None:
    return environment.models.get(model)


def with_pin(environment: Environment, model: str, pin: Pin | None) -> Environment:
    models = dict(environment.models)
    if pin is None:
        models.pop(model, None)
    else:
        models[model] = pin
    return environment.model_copy(update={"models": dict(sorted(models.items()))})


def advance(current: Pin | None, record: PinRecord) -> Pin:
    """The pin after promoting ``record``: the current one moves onto the history."""
    history = [*current.history, current.record()] if current else []
    return Pin(**record.model_dump(), history=history[-HISTORY_LIMIT:])


def step_back(current: Pin) -> Pin:
    """The pin after a rollback: the most recent earlier version, with its history."""
    previous = current.history[-1]
    return Pin(**previous.model_dump(), history=current.history[:-1])


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
