"""Promotion and rollback: move a pin in git and the matching registry aliases, all or nothing.

The pins file is the source of truth for deployment; the aliases mirror it so that
``models:/<name>@champion`` and ``models:/<name>@<env>`` resolve to what the environment runs.
Aliases are changed first and restored if writing the pins file fails, so a failure leaves the
registry and the repository exactly as they were.

With ``pins_only`` (what the promotion workflow does) only the file changes: the pull request
that carries it is reviewed first, and the aliases follow after the merge (``mlops sync``), so a
closed pull request leaves git and the registry agreeing.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.core.definitions import load_model
from pipelines.core.errors import PromotionError
from pipelines.core.pins import (
    Environment,
    PinRecord,
    advance,
    load_environment,
    now,
    pinned,
    save_environment,
    step_back,
    with_pin,
)
from pipelines.core.registry import (
    CHALLENGER,
    CHAMPION,
    aliases_of,
    registry_errors,
    version_by_alias,
)
from pipelines.core.tags import (
    DATA_FINGERPRINT_TAG,
    FINGERPRINT_TAG,
    GATES_PASSED_TAG,
    GIT_COMMIT_TAG,
    RUN_ID_TAG,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.settings import Settings


@dataclass(frozen=True)
class Move:
    model: str
    environment: str
    from_version: str | None
    to_version: str
    changed: bool


def _actor() -> str:
    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def _record(client: MlflowClient, name: str, version: str) -> PinRecord:
    with registry_errors():
        mv = client.get_model_version(name, version)
    tags = mv.tags
    if tags.get(GATES_PASSED_TAG) != "true":
        raise PromotionError(
            f"{name} v{version} has no passing gate verdict; it cannot be promoted"
        )
    return PinRecord(
        version=str(mv.version),
        run_id=mv.run_id or tags.get(RUN_ID_TAG, "unknown"),
        model_uri=f"models:/{name}/{mv.version}",
        fingerprint=tags.get(FINGERPRINT_TAG, "unknown"),
        data_fingerprint=tags.get(DATA_FINGERPRINT_TAG, "unknown"),
        git_commit=tags.get(GIT_COMMIT_TAG, "unknown"),
        promoted_at=now(),
        promoted_by=_actor(),
    )


def check_new_version_targets(settings: Settings, targets: Sequence[str]) -> None:
    """Refuse, before anything is trained or registered, targets a new version cannot enter.

    An environment with ``promote_from`` takes only the version its upstream runs, so a version
    registered just now can reach it only if the upstream comes earlier in the same list;
    otherwise the promotion would fail after registering an orphan version.
    """
    reached: set[str] = set()
    for name in targets:
        env = load_environment(settings.environments_dir, name)
        upstream = env.promote_from
        if upstream and upstream not in reached:
            raise PromotionError(
                f"a newly trained version cannot go to {name!r}: it takes only the version "
                f"pinned in {upstream!r}. Promote to {upstream!r} first (--promote {upstream} "
                f"--promote {name}), or promote what {upstream!r} runs without retraining",
                field="--promote",
            )
        reached.add(name)


def _choose_version(
    client: MlflowClient, settings: Settings, name: str, env: Environment, version: str | None
) -> str:
    if env.promote_from:
        upstream = pinned(load_environment(settings.environments_dir, env.promote_from), name)
        if upstream is None:
            raise PromotionError(
                f"{name} is not pinned in {env.promote_from!r}; {env.environment!r} only takes "
                f"versions already running there"
            )
        if version is not None and version != upstream.version:
            raise PromotionError(
                f"{env.environment!r} takes only the version pinned in {env.promote_from!r} "
                f"(v{upstream.version}), not v{version}"
            )
        return upstream.version
    if version is not None:
        return version
    challenger = version_by_alias(client, name, CHALLENGER)
    if challenger is None:
        raise PromotionError(f"{name} has no challenger to promote; register one or pass --version")
    return str(challenger.version)


def _apply(
    client: MlflowClient,
    settings: Settings,
    name: str,
    env: Environment,
    new: Environment,
    version: str,
    *,
    pins_only: bool = False,
) -> None:
    """Point the aliases at ``version`` and write the pins; undo the aliases if anything fails."""
    if pins_only:
        save_environment(settings.environments_dir, new)
        return
    before = aliases_of(client, name)
    wanted = dict.fromkeys(aliases_for(env), version)
    try:
        with registry_errors():
            for alias, target in wanted.items():
                client.set_registered_model_alias(name, alias, target)
            if env.champion and before.get(CHALLENGER) == version:
                client.delete_registered_model_alias(name, CHALLENGER)
        save_environment(settings.environments_dir, new)
    except BaseException:
        _restore_aliases(client, name, before, [*wanted, CHALLENGER])
        raise


def aliases_for(env: Environment) -> list[str]:
    """The aliases that follow this environment's pin."""
    return [env.environment, CHAMPION] if env.champion else [env.environment]


def _restore_aliases(
    client: MlflowClient, name: str, before: dict[str, str], touched: list[str]
) -> None:
    # Best effort, alias by alias, while the original error propagates.
    for alias in touched:
        with contextlib.suppress(Exception):
            if alias in before:
                client.set_registered_model_alias(name, alias, before[alias])
            elif alias in aliases_of(client, name):
                client.delete_registered_model_alias(name, alias)


def promote(
    client: MlflowClient,
    settings: Settings,
    name: str,
    environment: str,
    version: str | None = None,
    *,
    pins_only: bool = False,
) -> Move:

    load_model(settings.models_dir, settings.data_dir, name)  # the model must still be defined
    env = load_environment(settings.environments_dir, environment)
    target = _choose_version(client, settings, name, env, version)
    current = pinned(env, name)
    if current is not None and current.version == target:
        # The pin is right; make sure the registry agrees (an alias may have been moved by hand).
        if not pins_only and any(
            aliases_of(client, name).get(a) != target for a in aliases_for(env)
        ):
            _apply(client, settings, name, env, env, target)
        return Move(name, environment, current.version, target, changed=False)
    record = _record(client, name, target)
    new = with_pin(env, name, advance(current, record))
    _apply(client, settings, name, env, new, target, pins_only=pins_only)
    return Move(name, environment, current.version if current else None, target, changed=True)


def rollback(client: MlflowClient, settings: Settings, name: str, environment: str) -> Move:
    env = load_environment(settings.environments_dir, environment)
    current = pinned(env, name)
    if current is None:
        raise PromotionError(f"{name} is not pinned in {environment!r}; nothing to roll back")
    if not current.history:
        raise PromotionError(f"{name} has no earlier version in {environment!r} to roll back to")
    previous = step_back(current)
    with registry_errors():
        client.get_model_version(name, previous.version)  # still in the registry?
    new = with_pin(env, name, previous)
    _apply(client, settings, name, env, new, previous.version)
    return Move(name, environment, current.version, previous.version, changed=True)
