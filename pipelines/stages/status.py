"""What runs where: registry aliases and per-environment pins for each model, with lineage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.core.pins import in_promotion_order, list_environments, load_environment
from pipelines.core.registry import CHALLENGER, CHAMPION, aliases_of, registry_errors
from pipelines.core.tags import DATA_FINGERPRINT_TAG, GIT_COMMIT_TAG, METRIC_TAG_PREFIX

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from pipelines.core.settings import Settings


@dataclass
class ModelStatus:
    model: str
    champion: str | None
    challenger: str | None
    pins: dict[str, str | None]
    versions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _registered_versions(client: MlflowClient, name: str) -> dict[str, ModelVersion]:
    with registry_errors():
        found = client.search_model_versions(f"name = '{name}'")
    return {str(v.version): v for v in found}


def model_status(client: MlflowClient, settings: Settings, names: list[str]) -> list[ModelStatus]:
    environments = in_promotion_order(
        [
            load_environment(settings.environments_dir, e)
            for e in list_environments(settings.environments_dir)
        ]
    )
    statuses = []
    for name in names:
        aliases = aliases_of(client, name)
        pins = {
            env.environment: (env.models[name].version if name in env.models else None)
            for env in environments
        }
        interesting = {v for v in (*aliases.values(), *pins.values()) if v}
        versions = []
        registered = _registered_versions(client, name)
        for version in sorted(interesting, key=int):
            entry: dict[str, Any] = {
                "version": version,
                "aliases": sorted(a for a, v in aliases.items() if v == version),
                "environments": sorted(e for e, v in pins.items() if v == version),
                "in_registry": version in registered,
            }
            if version in registered:
                tags = registered[version].tags
                entry |= {
                    "run_id": registered[version].run_id,
                    "git_commit": tags.get(GIT_COMMIT_TAG),
                    "data_fingerprint": tags.get(DATA_FINGERPRINT_TAG),
                    "metrics": {
                        k.removeprefix(METRIC_TAG_PREFIX): v
                        for k, v in tags.items()
                        if k.startswith(METRIC_TAG_PREFIX)
                    },
                }
            else:
                # Pinned in git but unknown to this registry (say, the embedded default on a
                # laptop while CI promotes against the team's server): show what the pin says.
                pin = next(
                    env.models[name]
                    for env in environments
                    if name in env.models and env.models[name].version == version
                )
                entry |= {
                    "run_id": pin.run_id,
                    "git_commit": pin.git_commit,
                    "data_fingerprint": pin.data_fingerprint,
                    "metrics": {},
                }
            versions.append(entry)
        statuses.append(
            ModelStatus(name, aliases.get(CHAMPION), aliases.get(CHALLENGER), pins, versions)
        )
    return statuses
