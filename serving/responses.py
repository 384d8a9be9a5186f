"""Encode predictions for the client: JSON (default) or CSV, chosen by the Accept header.

JSON is ``{"predictions": [...]}``, as ``mlflow models serve`` answers. CSV is one prediction
per line with no header, as SageMaker's built-in algorithms answer, so a batch transform job
can join its output to its input line by line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from serving.schema import CSV, JSON, NotAcceptable

JSON_OUT = "application/json"
CSV_OUT = "text/csv; charset=utf-8"


def output_type(accept: str | None) -> str:
    """JSON or CSV for an Accept header; raises NotAcceptable for anything else."""
    if not accept:
        return JSON
    for part in accept.split(","):
        kind = part.split(";", 1)[0].strip().lower()
        if kind in (JSON, "*/*", "application/*"):
            return JSON
        if kind in (CSV, "text/*"):
            return CSV
    raise NotAcceptable(f"cannot answer with {accept!r}; accept {JSON} or {CSV}")


def as_list(predictions: np.ndarray) -> list[Any]:
    return list(predictions.tolist())


def encode(predictions: np.ndarray, kind: str) -> tuple[bytes, str]:
    """The response body and its content type."""
    values = as_list(predictions)
    if kind == CSV:
        return ("\n".join(_csv_cell(v) for v in values) + "\n").encode(), CSV_OUT
    return orjson.dumps({"predictions": values}), JSON_OUT


def error_body(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def _csv_cell(value: Any) -> str:
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
