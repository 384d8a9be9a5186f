"""What a logged model says about itself, in the ``metadata`` of its MLmodel file.

The serving image checks requests against the dataset schema without the repository at hand,
so the schema of the model's input columns travels inside the model artifact. The trainer
writes it here and the server reads it here: one module, one contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from pipelines.core.datasets import ColumnSpec

if TYPE_CHECKING:
    from pipelines.core.definitions import Model

METADATA_KEY = "mlops"


class ServingMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str
    task: str
    target: str
    features: list[str]
    input_schema: dict[str, ColumnSpec]
    dataset: str
    data_fingerprint: str


def build(model: Model, data_fingerprint: str) -> dict[str, Any]:
    """The metadata dict to pass to ``log_model(metadata=...)``."""
    columns = model.dataset.definition.columns
    metadata = ServingMetadata(
        model=model.name,
        task=model.definition.task.value,
        target=model.definition.target,
        features=list(model.definition.features),
        input_schema={f: columns[f] for f in model.definition.features},
        dataset=model.dataset.name,
        data_fingerprint=data_fingerprint,
    )
    return {METADATA_KEY: metadata.model_dump(mode="json", exclude_defaults=False)}


def read(metadata: dict[str, Any] | None) -> ServingMetadata | None:
    """The serving metadata of a loaded MLmodel, or None for a model not logged by us."""
    if not metadata or METADATA_KEY not in metadata:
        return None
    return ServingMetadata.model_validate(metadata[METADATA_KEY])
