"""JSON Schemas of the declarative files, exported so editors check them as they are typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipelines.core.datasets import DatasetDefinition
from pipelines.core.definitions import ModelDefinition
from pipelines.core.pins import Environment


def _schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}


def all_schemas() -> dict[str, dict[str, Any]]:

    return {
        "model.schema.json": _schema(ModelDefinition, "models/<name>/model.yaml"),
        "dataset.schema.json": _schema(DatasetDefinition, "data/<name>/dataset.yaml"),
        "environment.schema.json": _schema(Environment, "environments/<env>.yaml"),
    }


def write_schemas(out: Path, *, check_only: bool = False) -> list[str]:
    """Write (or with check_only, compare) the schema files; return the names that were stale."""
    stale = []
    for name, schema in all_schemas().items():
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
            if not check_only:
                out.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
