"""What runs where: registry aliases and per-environment pins for each model, with lineage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.pins import list_environments, load_environment
from pipelines.registry import CHALLENGER, CHAMPION, aliases_of, registry_errors

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.settings import Settings


@dataclass
class ModelStatus:
    model: str
    champion: str | None
    challenger: str | None
    pins: dict[str, str | None]
    versions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def model_status(client: MlflowClient, settings: Settings, names: list[str]) -> list[ModelStatus]:
    environments = [
        load_environment(settings.environments_dir, e)
        for e in list_environments(settings.environments_dir)
    ]
    statuses = []
    for name in names:
        aliases = aliases_of(client, name)
        pins = {
            env.environment: (env.models[name].version if name in env.models else None)
            for env in environments
        }
        interesting = {v for v in (*aliases.values(), *pins.values()) if v}
        versions = []
        with registry_errors():
            for version in sorted(interesting, key=int):
                mv = client.get_model_version(name, version)
                versions.append(
                    {
                        "version": version,
                        "aliases": sorted(a for a, v in aliases.items() if v == version),
                        "environments": sorted(e for e, v in pins.items() if v == version),
                        "run_id": mv.run_id,
                        "git_commit": mv.tags.get("mlops.git_commit"),
                        "data_fingerprint": mv.tags.get("mlops.fingerprint.data"),
                        "primary_metric": {
                            k.removeprefix("mlops.metric."): v
                            for k, v in mv.tags.items()
                            if k.startswith("mlops.metric.")
                        },
                    }
                )
        statuses.append(
            ModelStatus(name, aliases.get(CHAMPION), aliases.get(CHALLENGER), pins, versions)
        )
    return statuses
