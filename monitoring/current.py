"""The current window: captured requests and responses, as one frame of features and predictions.

Captures are read only through ``serving.capture.read_capture_lines`` (the capture-format
contract), from a local folder or an ``s3://`` prefix. Every request body shape the server
accepts is read back (CSV with a header, MLflow's JSON shapes), leniently: the monitor must see
out-of-range or unknown values, not reject them as the server would. Requests that all lack
feature columns are bad input, reported with the location they were read from.

A monitor must not die on one bad line in a million: a malformed record (not JSON, not an object,
no ``captureData``, a body that cannot be read, a time that cannot be parsed while filtering by
time) is skipped and counted, with the first few named by file and line in the report. Only when
no valid record remains is the window bad input. Times without a timezone are read as UTC, as
SageMaker writes them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipelines.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.core.datasets import ColumnSpec

EVENT_ID = "_event_id"
ROW = "_row"
TIME = "_time"
PREDICTION = "_prediction"


# How many skipped records the report names by file and line (the count is always complete).
SKIPPED_EXAMPLES = 5
SCALARS = (str, int, float, bool)


@dataclass
class Current:
    frame: pd.DataFrame  # the features, plus _event_id, _row, _time and _prediction
    records: int
    location: str
    skipped: int = 0  # malformed records left out
    skipped_examples: list[str] = field(default_factory=list)  # "file:line: why", the first few

    @property
    def rows(self) -> int:
        return len(self.frame)


class Malformed(ValueError):
    """A capture record that cannot be used; the message says why."""


class MissingColumns(Malformed):
    """A request without some of the model's features (another model's, say)."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        super().__init__("the request lacks the model's feature column(s) " + ", ".join(columns))


def _body(payload: dict[str, Any]) -> bytes:
    from serving.capture import decode_data

    return decode_data(payload)


def _columns_of(body: bytes, content_type: str, features: list[str]) -> dict[str, list[Any]]:
    """Column name -> values of one request body (the shapes the server accepts)."""
    from serving.schema import CSV, JSON, media_type

    kind = media_type(content_type)
    if kind == CSV:
        lines = [r for r in csv.reader(io.StringIO(body.decode("utf-8-sig"))) if r]
        if not lines:
            raise Malformed("the CSV request body is empty")
        header = [h.strip() for h in lines[0]]
        if any(len(r) != len(header) for r in lines[1:]):
            raise Malformed(f"a CSV request row does not have the {len(header)} header columns")
        return {name: [r[i] for r in lines[1:]] for i, name in enumerate(header)}
    if kind != JSON:
        raise Malformed(f"content type {content_type!r} is not CSV or JSON")
    doc = orjson.loads(body)
    if not isinstance(doc, dict):
        raise Malformed(f"the JSON request body is a {type(doc).__name__}, not an object")
    if "dataframe_split" in doc:
        split = doc["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise Malformed("dataframe_split is not {columns, data}")
        names = split.get("columns", features)
        return _rows_to_columns(split["data"], names)
    rows = doc.get("dataframe_records") or doc.get("instances") or []
    if not isinstance(rows, list):
        raise Malformed("dataframe_records/instances is not a list of rows")
    if rows and isinstance(rows[0], list):
        return _rows_to_columns(rows, features)
    if not all(isinstance(r, dict) for r in rows):
        raise Malformed("a record row is not an object of column: value")
    names = list(dict.fromkeys(k for r in rows for k in r))
    return {name: [r.get(name) for r in rows] for name in names}


def _rows_to_columns(rows: list[Any], names: Any) -> dict[str, list[Any]]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Malformed("the column names are not a list of strings")
    if not all(isinstance(r, list) and len(r) == len(names) for r in rows):
        raise Malformed(f"a row is not a list of {len(names)} values")
    return {name: [r[i] for r in rows] for i, name in enumerate(names)}


def _predictions_of(body: bytes, content_type: str) -> list[Any]:
    from serving.schema import CSV, media_type

    if media_type(content_type) == CSV:
        return [next(csv.reader([line]))[0] for line in body.decode().splitlines() if line]
    doc = orjson.loads(body)
    values = doc.get("predictions") if isinstance(doc, dict) else doc
    if not isinstance(values, list):
        raise Malformed("the response has no list of predictions")
    return values


def _part(data: dict[str, Any], name: str) -> dict[str, Any]:
    part = data.get(name)
    if not isinstance(part, dict) or not isinstance(part.get("data"), str):
        raise Malformed(f"captureData.{name} is missing or has no data")
    return part


def _parse_time(stamp: Any) -> datetime:
    """An inferenceTime as an aware datetime; one without a timezone is UTC (SageMaker's)."""
    if not isinstance(stamp, str):
        raise Malformed("eventMetadata.inferenceTime is missing")
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"eventMetadata.inferenceTime {stamp!r} is not an ISO time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass
class _Record:
    event_id: str
    stamp: str
    columns: dict[str, list[Any]]
    rows: int
    predictions: list[Any]


def _record(
    line: bytes, features: list[str], since: datetime | None, until: datetime | None
) -> _Record | None:
    """One record's rows, None when outside the time window; ``Malformed`` when unusable."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"not a JSON line ({exc})") from None
    if not isinstance(record, dict):
        raise Malformed(f"the record is a JSON {type(record).__name__}, not an object")
    meta = record.get("eventMetadata", {})
    if not isinstance(meta, dict):
        raise Malformed("eventMetadata is not an object")
    stamp = meta.get("inferenceTime")
    if since is not None or until is not None:
        when = _parse_time(stamp)
        if (since is not None and when < since) or (until is not None and when >= until):
            return None
    data = record.get("captureData")
    if not isinstance(data, dict):
        raise Malformed("captureData is missing or not an object")
    request, response = _part(data, "endpointInput"), _part(data, "endpointOutput")
    try:
        body = _columns_of(_body(request), str(request.get("observedContentType", "")), features)
        out = _predictions_of(_body(response), str(response.get("observedContentType", "")))
    except Malformed:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise Malformed(f"the body cannot be read: {exc}") from None
    lacking = [f for f in features if f not in body]
    if lacking:
        raise MissingColumns(lacking)
    n = len(body[features[0]])
    for name in features:
        if not all(v is None or isinstance(v, SCALARS) for v in body[name]):
            raise Malformed(f"column {name} holds a value that is not a number or a string")
    if len(out) != n or not all(v is None or isinstance(v, SCALARS) for v in out):
        out = [None] * n  # the features are still good; only prediction drift lacks them
    event_id = meta.get("eventId")
    return _Record(
        str(event_id) if event_id is not None else "",
        stamp if isinstance(stamp, str) else "",
        {f: body[f] for f in features},
        n,
        out,
    )


def read_current(
    location: str | Path,
    features: list[str],
    schema: dict[str, ColumnSpec],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    endpoint: str | None = None,
) -> Current:
    """Every captured row under ``location`` (optionally in [since, until)), typed by the schema.

    With ``endpoint``, a location that holds per-endpoint folders is read only in that
    endpoint's folder (``serving.capture.read_capture_lines``). Malformed records are skipped
    and counted; none valid at all is a ``DataError`` naming the first bad file and line.
    """
    import pandas as pd

    from serving.capture import NoEndpointCaptures, read_capture_lines

    where = str(location)
    if not where.startswith("s3://") and not Path(where).exists():
        raise DataError(f"no capture folder at {where}", field="--captures")
    columns: dict[str, list[Any]] = {f: [] for f in features}
    ids: list[str] = []
    rows: list[int] = []
    times: list[str] = []
    predictions: list[Any] = []
    records = skipped = lacking = 0
    examples: list[str] = []
    missing: list[str] = []
    try:
        for line in read_capture_lines(where, endpoint):
            try:
                record = _record(line.data, features, since, until)
            except Malformed as exc:
                skipped += 1
                if len(examples) < SKIPPED_EXAMPLES:
                    examples.append(f"{line.source}:{line.number}: {exc}")
                if isinstance(exc, MissingColumns):
                    lacking += 1
                    missing.extend(f for f in exc.columns if f not in missing)
                continue
            if record is None:
                continue
            for name in features:
                columns[name].extend(record.columns[name])
            ids.extend([record.event_id] * record.rows)
            rows.extend(range(record.rows))
            times.extend([record.stamp] * record.rows)
            predictions.extend(record.predictions)
            records += 1
    except NoEndpointCaptures as exc:
        raise DataError(f"{exc}; pass --endpoint or a narrower --captures", file=where) from None
    except OSError as exc:
        raise DataError(f"cannot read the captures: {exc}", file=where) from None
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):  # S3 refused or unreachable
            raise DataError(f"cannot read the captures: {exc}", file=where) from None
        raise
    if records == 0 and missing and lacking == skipped:  # another model's requests, say
        raise DataError(
            "the captured requests lack the model's feature column(s) " + ", ".join(missing),
            file=where,
        )
    if records == 0 and skipped:
        raise DataError(
            f"no valid capture record: {skipped} malformed record(s) skipped; the first: "
            + examples[0],
            file=where,
            field="--captures",
        )
    if records == 0:
        raise DataError(
            "no capture records found"
            + (f" for endpoint {endpoint}" if endpoint else "")
            + (f" since {since:%Y-%m-%dT%H:%M}" if since else ""),
            file=where,
            field="--captures",
        )
    if not ids:  # requests with a header and no row: nothing to judge, not "no drift"
        raise DataError(
            f"the {records} capture record(s) hold no rows", file=where, field="--captures"
        )
    frame = pd.DataFrame({name: _typed(columns[name], schema.get(name)) for name in features})
    frame[EVENT_ID] = ids
    frame[ROW] = rows
    frame[TIME] = times
    frame[PREDICTION] = predictions
    return Current(frame, records, where, skipped, examples)


def _boolean(value: Any, true: frozenset[str], false: frozenset[str]) -> Any:
    """True/False for the spellings the dataset validation accepts; other values as they are."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip()
    if text.lower() in true:
        return True
    if text.lower() in false:
        return False
    return text or None


def numbers_of(values: list[Any]) -> pd.Series:
    """Numbers, and text read as a number where it is one (NaN where not): booleans excluded."""
    import pandas as pd

    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype("float64")


def _typed(values: list[Any], spec: ColumnSpec | None) -> Any:
    """A captured column typed as the reference is: numbers as float, booleans as True/False.

    Booleans arrive as "true"/"false" in CSV and true/false in JSON; the reference holds
    Python booleans, so both are normalised, else one feature shows four categories and
    false drift. Values the schema would refuse are kept (as NaN or as text): they are drift.
    """
    import pandas as pd

    from pipelines.core.datasets import BOOL_FALSE, BOOL_TRUE, ColumnType

    if spec is not None and spec.type.is_numeric:
        return numbers_of([None if isinstance(v, bool) else v for v in values])
    if spec is not None and spec.type is ColumnType.BOOL:
        return pd.Series([_boolean(v, BOOL_TRUE, BOOL_FALSE) for v in values], dtype=object)
    return pd.Series(values, dtype=object).where(lambda s: s.notna() & (s != ""), None)
