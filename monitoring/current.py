"""The current window: captured requests and responses, as one frame of features and predictions.

Captures are read only through ``serving.capture.read_captures`` (the capture-format contract),
from a local folder or an ``s3://`` prefix. Every request body shape the server accepts is read
back (CSV with a header, MLflow's JSON shapes), leniently: the monitor must see out-of-range or
unknown values, not reject them as the server would. Missing feature columns are a bad input,
reported together with the location they were read from.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipelines.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.datasets import ColumnSpec

EVENT_ID = "_event_id"
ROW = "_row"
TIME = "_time"
PREDICTION = "_prediction"


@dataclass
class Current:
    frame: pd.DataFrame  # the features, plus _event_id, _row, _time and _prediction
    records: int
    location: str

    @property
    def rows(self) -> int:
        return len(self.frame)


def _body(payload: dict[str, Any]) -> bytes:
    from serving.capture import decode_data

    return decode_data(payload)


def _columns_of(body: bytes, content_type: str, features: list[str]) -> dict[str, list[Any]]:
    """Column name -> values of one request body."""
    from serving.schema import CSV, JSON, media_type

    kind = media_type(content_type)
    if kind == CSV:
        lines = [r for r in csv.reader(io.StringIO(body.decode("utf-8-sig"))) if r]
        header = [h.strip() for h in lines[0]]
        return {name: [r[i] for r in lines[1:]] for i, name in enumerate(header)}
    if kind != JSON:
        raise ValueError(f"content type {content_type!r} is not CSV or JSON")
    doc = orjson.loads(body)
    if "dataframe_split" in doc:
        split = doc["dataframe_split"]
        names = split.get("columns", features)
        data = split["data"]
        return {name: [r[i] for r in data] for i, name in enumerate(names)}
    rows = doc.get("dataframe_records") or doc.get("instances") or []
    if rows and isinstance(rows[0], list):
        return {name: [r[i] for r in rows] for i, name in enumerate(features)}
    records: list[dict[str, Any]] = rows
    names = list(dict.fromkeys(k for r in records for k in r))
    return {name: [r.get(name) for r in records] for name in names}


def _predictions_of(body: bytes, content_type: str) -> list[Any]:
    from serving.schema import CSV, media_type

    if media_type(content_type) == CSV:
        return [next(csv.reader([line]))[0] for line in body.decode().splitlines() if line]
    doc = orjson.loads(body)
    return list(doc["predictions"] if isinstance(doc, dict) else doc)


def read_current(
    location: str | Path,
    features: list[str],
    schema: dict[str, ColumnSpec],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Current:
    """Every captured row under ``location`` (optionally in [since, until)), typed by the schema."""
    import pandas as pd

    from serving.capture import read_captures

    where = str(location)
    if not where.startswith("s3://") and not Path(where).exists():
        raise DataError(f"no capture folder at {where}", field="--captures")
    columns: dict[str, list[Any]] = {}
    ids: list[str] = []
    rows: list[int] = []
    times: list[str] = []
    predictions: list[Any] = []
    records = 0
    missing: set[str] = set()
    try:
        for record in read_captures(where):
            meta = record.get("eventMetadata", {})
            stamp = meta.get("inferenceTime", "")
            if since is not None or until is not None:
                when = _parse_time(stamp)
                if (since is not None and when < since) or (until is not None and when >= until):
                    continue
            data = record["captureData"]
            request, response = data["endpointInput"], data["endpointOutput"]
            try:
                body = _columns_of(_body(request), request["observedContentType"], features)
                out = _predictions_of(_body(response), response["observedContentType"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise DataError(
                    f"capture record {meta.get('eventId', records)} cannot be read: {exc}",
                    file=where,
                ) from None
            n = len(next(iter(body.values()), []))
            missing.update(f for f in features if f not in body)
            offset = len(ids)
            for name in features:
                values = columns.setdefault(name, [None] * offset)
                values.extend(body.get(name, [None] * n))
            ids.extend([meta.get("eventId", "")] * n)
            rows.extend(range(n))
            times.extend([stamp] * n)
            predictions.extend(out if len(out) == n else [None] * n)
            records += 1
    except orjson.JSONDecodeError as exc:
        raise DataError(f"a capture file is not JSON lines: {exc}", file=where) from None
    except OSError as exc:
        raise DataError(f"cannot read the captures: {exc}", file=where) from None
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):  # S3 refused or unreachable
            raise DataError(f"cannot read the captures: {exc}", file=where) from None
        raise
    if records == 0:
        raise DataError(
            "no capture records found" + (f" since {since:%Y-%m-%dT%H:%M}" if since else ""),
            file=where,
            field="--captures",
        )
    if missing:
        raise DataError(
            "the captured requests lack the model's feature column(s) "
            + ", ".join(f for f in features if f in missing),
            file=where,
        )
    frame = pd.DataFrame({name: _typed(columns[name], schema.get(name)) for name in features})
    frame[EVENT_ID] = ids
    frame[ROW] = rows
    frame[TIME] = times
    frame[PREDICTION] = predictions
    return Current(frame, records, where)


def _typed(values: list[Any], spec: ColumnSpec | None) -> Any:
    import pandas as pd

    if spec is not None and spec.type.is_numeric:
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype("float64")
    return pd.Series(values, dtype=object).where(lambda s: s.notna() & (s != ""), None)


def _parse_time(stamp: str) -> datetime:
    from datetime import UTC

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
