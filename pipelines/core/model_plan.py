"""What git says should run in one environment: every model, its pinned version, how to ship it.

``models/*/model.yaml`` (through ``pipelines.core.definitions.load_model``) says how each model is
deployed; ``environments/<env>.yaml`` (through ``pipelines.core.pins``) says which version runs. A
model with no pin yet, or whose target is ``local``, still gets its registry and monitoring but
no cloud endpoint, so adding a model never breaks ``pulumi up``. No Pulumi import here: the plan
is plain data that tests and the CLI can compute without a runtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.conventions import slug_collisions
from pipelines.core.definitions import (
    AllAtOnce,
    Canary,
    Deployment,
    ModelDefinition,
    discover_models,
    load_model,
)
from pipelines.core.deploy_limits import (
    LONGEST_CHECKED_VERSION,
    check_cloud_names,
    check_rollout_time,
    check_traffic_shifting,
)
from pipelines.core.errors import DefinitionError
from pipelines.core.pins import Environment, environment_path, load_environment

_ROLLOUT_ENTRY = re.compile(r"^(?P<model>[a-z][a-z0-9_-]*)@(?P<version>[0-9]+)(=(?P<weight>\d+))?$")


@dataclass(frozen=True)
class ModelPlan:
    """One model in one environment."""

    definition: ModelDefinition
    version: str | None
    previous_version: str | None = None
    canary_weight: int | None = None

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def deployment(self) -> Deployment:
        return self.definition.deployment

    @property
    def target(self) -> str:
        return self.deployment.target

    @property
    def has_endpoint(self) -> bool:
        """A cloud endpoint exists only for a pinned version on a cloud target."""
        return self.version is not None and self.target != "local"


def rollout_steps(deployment: Deployment) -> list[int]:
    """The traffic percentages the new version receives, in order, ending at 100."""
    strategy = deployment.strategy
    if isinstance(strategy, AllAtOnce):
        return [100]
    if isinstance(strategy, Canary):
        return [strategy.canary_percent, 100] if strategy.canary_percent < 100 else [100]
    step = strategy.step_percent
    return [*range(step, 100, step), 100]


def canary_weight(
    definition: ModelDefinition,
    version: str | None,
    previous: str | None,
    rollouts: list[str],
) -> int | None:
    """Traffic share of the new version on Kubernetes while its rollout is in progress.

    A rollout is in progress when the strategy is canary or linear and an earlier version ran
    before. ``rollouts`` (stack config) moves it along: ``model@version=NN`` sets the share,
    ``model@version`` completes it. Entries name the version, so a stale one never applies to
    the next version. ``None`` means the pinned version takes all the traffic.
    """
    steps = rollout_steps(definition.deployment)
    if version is None or previous is None or previous == version or steps == [100]:
        return None
    weight: int | None = steps[0]
    for entry in rollouts:
        match = _ROLLOUT_ENTRY.match(entry)
        if match is None:
            raise DefinitionError(
                f"rollouts entry {entry!r} is not model@version or model@version=percent",
                field="rollouts",
            )
        if match["model"] != definition.name or match["version"] != version:
            continue
        weight = int(match["weight"]) if match["weight"] else None
    if weight is not None and not 1 <= weight <= 100:
        raise DefinitionError(f"rollouts: weight {weight} is outside 1-100", field="rollouts")
    return None if weight == 100 else weight


def plan(repo_root: Path, environment: str, rollouts: list[str] | None = None) -> list[ModelPlan]:
    """Every model under ``repo_root/models`` as it should run in ``environment``."""
    models_dir, data_dir = repo_root / "models", repo_root / "data"
    env = load_environment(repo_root / "environments", environment)
    names = discover_models(models_dir)
    _check_pins_name_models(env, names, environment_path(repo_root / "environments", environment))
    for cloud_name, group in slug_collisions(names).items():
        raise DefinitionError(
            f"models {' and '.join(group)} would share the cloud name {cloud_name!r}",
            file=models_dir,
        )
    plans = []
    for name in names:
        model = load_model(models_dir, data_dir, name)
        definition = model.definition
        pin = env.models.get(name)
        version = pin.version if pin else None
        check_cloud_names(definition, model.path, environment, version or LONGEST_CHECKED_VERSION)
        check_traffic_shifting(definition, model.path)
        check_rollout_time(definition, model.path)
        previous = pin.history[-1].version if pin and pin.history else None
        weight = canary_weight(definition, version, previous, rollouts or [])
        plans.append(ModelPlan(definition, version, previous, weight))
    return plans


def _check_pins_name_models(env: Environment, names: list[str], path: Path) -> None:
    unknown = sorted(set(env.models) - set(names))
    if unknown:
        raise DefinitionError(
            f"pins name models that have no models/<name>/model.yaml: {', '.join(unknown)}",
            file=path,
            field="models",
        )
