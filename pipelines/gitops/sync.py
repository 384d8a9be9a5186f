"""``mlops sync``: make the registry's aliases follow the pins merged in git.

Git is the source of truth for what runs where: ``environments/<env>.yaml``. The registry's
aliases (``<env>`` for every environment, ``champion`` for the champion environment) mirror it
so that ``models:/<name>@<env>`` resolves to what the environment runs. A pins pull request
that was closed unmerged, an alias moved by hand, or a promotion that wrote the file but not
the registry leaves the two disagreeing; after every merge a job runs this to reconcile them.

Every difference is listed first; a pin whose version the registry does not hold cannot be
fixed here and stops the run before any alias is changed. ``challenger`` is the registry's own
(set by registration): it is never set here, and only unset once the pins make its version the
champion, as promoting to the champion's environment does (``pipelines.stages.promote``), since
a pins-only promotion leaves that step to the merge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.core.definitions import discover_models
from pipelines.core.errors import PromotionError
from pipelines.core.pins import list_environments, load_environment, pinned
from pipelines.core.registry import CHALLENGER, CHAMPION, aliases_of, registry_errors
from pipelines.stages.promote import aliases_for

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.settings import Settings


@dataclass(frozen=True)
class AliasDifference:
    model: str
    alias: str
    registry: str | None  # the version the alias points at now, or None when it is unset
    pins: str | None  # the version git pins, or None when the alias should not exist
    why: str = ""  # for an alias the pins decide only indirectly (the retired challenger)

    def describe(self) -> str:
        now = f"v{self.registry}" if self.registry else "unset"
        if self.why:
            return f"{self.model}: alias {self.alias!r} is {now} in the registry; {self.why}"
        wanted = f"v{self.pins}" if self.pins else "unset (nothing pinned)"
        return f"{self.model}: alias {self.alias!r} is {now} in the registry; the pins say {wanted}"


def wanted_aliases(settings: Settings, model: str) -> dict[str, str | None]:
    """Every alias the pins decide for ``model``: its version, or None where it must not exist."""
    wanted: dict[str, str | None] = {}
    for name in list_environments(settings.environments_dir):
        env = load_environment(settings.environments_dir, name)
        pin = pinned(env, model)
        for alias in aliases_for(env):
            wanted[alias] = pin.version if pin else None
    return wanted


def differences(client: MlflowClient, settings: Settings) -> list[AliasDifference]:
    from mlflow.exceptions import MlflowException

    found: list[AliasDifference] = []
    for model in discover_models(settings.models_dir):
        wanted = wanted_aliases(settings, model)
        try:
            current = aliases_of(client, model)
        except MlflowException:  # never registered
            current = {}
        for alias, version in sorted(wanted.items()):
            if current.get(alias) != version:
                found.append(AliasDifference(model, alias, current.get(alias), version))
        champion = wanted.get(CHAMPION)
        if champion is not None and current.get(CHALLENGER) == champion:
            why = f"the pins make v{champion} the champion, so it is a challenger no more"
            found.append(AliasDifference(model, CHALLENGER, champion, None, why=why))
    return found


def _check_fixable(client: MlflowClient, diffs: list[AliasDifference]) -> None:
    from mlflow.exceptions import MlflowException

    missing = []
    for diff in diffs:
        if diff.pins is None:
            continue
        try:
            client.get_model_version(diff.model, diff.pins)
        except MlflowException:
            missing.append(f"{diff.model} v{diff.pins} (alias {diff.alias!r})")
    if missing:
        raise PromotionError(
            "the pins name versions this registry does not hold: "
            + "; ".join(missing)
            + ". Point MLFLOW_TRACKING_URI at the registry the pins were made with; no alias "
            "was changed"
        )


def sync(client: MlflowClient, settings: Settings, *, check: bool) -> list[AliasDifference]:
    """The differences found; unless ``check``, the aliases are then moved to match the pins."""
    diffs = differences(client, settings)
    if check or not diffs:
        return diffs
    _check_fixable(client, diffs)
    with registry_errors():
        for diff in diffs:
            if diff.pins is None:
                client.delete_registered_model_alias(diff.model, diff.alias)
            else:
                client.set_registered_model_alias(diff.model, diff.alias, diff.pins)
    return diffs
