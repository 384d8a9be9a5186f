"""Batch inference from a file: the server's parse, check and predict path, without HTTP.

``mlops predict`` calls this, so a file that the server would reject is rejected here with the
same message, and the output is what ``/invocations`` would answer for the same body.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import MlopsError
from serving.model import ModelLoadError, load, resolve
from serving.responses import encode
from serving.schema import CSV, JSON, InputSchema, RequestError

_TYPES = {".csv": CSV, ".json": JSON}


def content_type_of(path: Path) -> str:
    kind = _TYPES.get(path.suffix.lower())
    if kind is None:
        raise MlopsError(
            f"cannot tell the format from the extension {path.suffix!r}; use .csv or .json",
            file=path,
        )
    return kind


def predict_file(model_uri: str, source: Path, target: Path) -> int:
    """Predict every row of ``source`` into ``target``; returns the number of rows."""
    in_type, out_type = content_type_of(source), content_type_of(target)
    if not source.is_file():
        raise MlopsError("no such file", file=source)
    try:
        model = load(resolve(model_uri))
    except ModelLoadError as exc:
        raise MlopsError(str(exc), field="model") from None
    schema = InputSchema(model.columns, model.schema)
    try:
        frame = schema.parse(source.read_bytes(), in_type)
    except RequestError as exc:
        raise MlopsError(exc.message, file=source, field=exc.column) from None
    body, _ = encode(model.predict(frame), out_type)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    return len(frame)
