"""The promotion chain: what an ordered list of environment names means.

``mlops init --environments dev,staging,prod`` (the default) gives the environments in the order
versions travel through them. The rule, the same for every list:

- With three or more environments the first is a *scratch* environment (the template's ``dev``):
  deployable from main, outside the chain; nothing is promoted to it automatically.
- The first environment of the chain (``staging`` by default; the very first one with one or two
  environments) receives every version that passes the gates on main.
- Each later environment promotes from the one before it (``promote_from``).
- The last is production: it carries the champion alias and every promotion to it needs an
  approval in its GitHub environment.

The pins files, the stack files and the workflows are all written from this one rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipelines.core.pins import Environment, list_environments, load_environment, save_environment

# Lower-case DNS-label-like names: a GitHub environment, a Pulumi stack and part of resource
# names such as the endpoint <model>-<env> (63 characters at most on SageMaker).
ENVIRONMENT_PATTERN = r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$"
MAX_ENVIRONMENTS = 6
# Names the pattern allows that YAML reads as a boolean or null (YAML 1.1, as PyYAML reads the
# answers file; `true`, `false` and `null` in 1.2 too, as GitHub reads the workflows). Adoption
# writes names unquoted in flow lists such as `stack: [dev, on]`, so these would stop being names.
YAML_KEYWORDS = ("y", "n", "yes", "no", "on", "off", "true", "false", "null")
STANDARD_ENVIRONMENTS = ("dev", "staging", "prod")

Role = Literal["scratch", "first", "middle", "production"]


@dataclass(frozen=True)
class Chain:
    """An ordered list of environment names and the role each one plays."""

    names: tuple[str, ...]

    @property
    def scratch(self) -> str | None:
        return self.names[0] if len(self.names) >= 3 else None

    @property
    def promoted(self) -> tuple[str, ...]:
        """The chain proper: every environment a version is promoted through, in order."""
        return self.names[1:] if self.scratch else self.names

    @property
    def first(self) -> str:
        """Where main's gated versions go (main.yml, retrain.yml, promote.yml's default)."""
        return self.promoted[0]

    @property
    def production(self) -> str:
        return self.names[-1]

    def role(self, name: str) -> Role:
        if name == self.production:
            return "production"
        if name == self.scratch:
            return "scratch"
        return "first" if name == self.first else "middle"

    def promote_from(self, name: str) -> str | None:
        if name not in self.promoted or name == self.first:
            return None
        return self.promoted[self.promoted.index(name) - 1]

    def settings(self, name: str) -> dict[str, Any]:
        """The fields of ``name``'s pins file that the chain decides."""
        return {
            "promote_from": self.promote_from(name),
            "champion": name == self.production,
            "requires_approval": name == self.production,
        }

    def description(self, name: str) -> str:
        """The pins file's description of ``name``: its place in the chain, in one sentence."""
        upstream = self.promote_from(name)
        role = self.role(name)
        if role == "production":
            if upstream is None:
                return (
                    "Production. Every version that passes the gates on main is proposed here, "
                    "through a reviewed change."
                )
            return (
                f"Production. Only versions already running in {upstream}, "
                "through a reviewed change."
            )
        if role == "scratch":
            return (
                "Scratch environment for trying a registered version before it is proposed "
                f"for {self.first}."
            )
        if role == "first":
            return "Every version that passes the gates on main is promoted here first."
        following = self.promoted[self.promoted.index(name) + 1]
        return f"Versions already running in {upstream}, on their way to {following}."


# Every description ``Chain.description`` can write, whatever the names: a description that
# matches one of these is the template's and follows the chain; any other is the team's and stays.
_NAME = r"[a-z][a-z0-9-]*"
_OUR_DESCRIPTIONS = [
    re.compile(p)
    for p in (
        r"Production\. Every version that passes the gates on main is proposed here, "
        r"through a reviewed change\.",
        rf"Production\. Only versions already running in {_NAME}, through a reviewed change\.",
        r"Scratch environment for trying a registered version before it is proposed "
        rf"for {_NAME}\.",
        r"Every version that passes the gates on main is promoted here first\.",
        rf"Versions already running in {_NAME}, on their way to {_NAME}\.",
    )
]


def write_fresh_environments(environments_dir: Path, chain: Chain) -> None:
    """A pins file per environment of ``chain``, nothing pinned (the demos' scratch copies)."""

    environments_dir.mkdir(parents=True, exist_ok=True)
    for name in chain.names:
        fields = {"description": chain.description(name), **chain.settings(name)}
        save_environment(environments_dir, Environment(environment=name, **fields))


def receiving_environment(environments_dir: Path) -> str | None:
    """The environment main's gated versions go to, read back from the pins files: where
    production's ``promote_from`` chain starts (None without a production environment)."""

    by_name = {
        n: load_environment(environments_dir, n) for n in list_environments(environments_dir)
    }
    current = next((e for e in by_name.values() if e.champion), None)
    seen: set[str] = set()
    while current is not None and current.promote_from in by_name:
        if current.environment in seen:
            break
        seen.add(current.environment)
        current = by_name[current.promote_from]
    return current.environment if current else None


def is_generated_description(text: str) -> bool:
    return any(p.fullmatch(text) for p in _OUR_DESCRIPTIONS)


def spoken_list(names: tuple[str, ...] | list[str], last: str = "or") -> str:
    """``dev, staging or prod``: names in a sentence."""
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} {last} {names[-1]}"
