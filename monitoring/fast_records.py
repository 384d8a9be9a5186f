"""The common capture record read in a handful of C calls: the monitor's hot path.

``monitoring.current._record`` reads every shape a capture can hold and checks every value in
Python, about 20 µs a record; at a day of traffic that is most of a monitor run. Almost every
record is one of two shapes: a JSON ``dataframe_split`` request or a CSV request with a header,
whose columns are the model's features in order, and a JSON list of predictions.
``FastReader`` reads only those and checks them without a Python loop over values. A JSON
body holds no container but the ones the shape has (counted with ``str.count``, which a bracket
inside a string can only raise) and every row is a list (``set(map(type, ...))``) of the
features' width (``set(map(len, ...))``); a CSV body has no quote, carriage return, NUL or
byte-order mark, so splitting on commas is what ``csv.reader`` does. What it accepts,
``_record`` would read to the same values; anything else (another shape, another column order,
a base64 body that does not decode, a bracket in a string, a malformed record) is handed back
as ``SLOW`` and read by ``_record``, with its leniency and its error messages.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import orjson

from monitoring.current import _parse_time

SLOW = object()  # not the common shape: read it with monitoring.current._record
_JSON, _CSV = "application/json", "text/csv"


# (event id, inference time, rows as lists in the features' order, predictions)
FastRecord = tuple[str, str, list[list[Any]], list[Any]]


class FastReader:
    """``fast_record`` bound to one model's features, with the content types seen so far."""

    def __init__(self, features: list[str], since: datetime | None, until: datetime | None):
        self.features = list(features)
        self.width = len(features)
        self.since, self.until = since, until
        # Brackets in the feature names are in every body's column list: expected, not values.
        self.braces = 2 + sum(f.count("{") for f in features)
        self.brackets = 2 + sum(f.count("[") for f in features)
        self._kinds: dict[Any, str | None] = {}

    def _kind(self, content_type: Any) -> str | None:
        """JSON, CSV or None (another type: the slow path's error) of an observedContentType."""
        try:
            return self._kinds[content_type]
        except KeyError:
            text = str(content_type or "").split(";", 1)[0].strip().lower()
            kind = text if text in (_JSON, _CSV) else None
            self._kinds[content_type] = kind
            return kind

    def _csv_rows(self, body: str) -> list[list[str]] | None:
        """The rows of a CSV body with the features as its header, as ``csv.reader`` reads
        them; None where splitting on commas might not be what ``csv.reader`` does (quotes, a
        carriage return, NUL, a byte-order mark) or the body is not the shape."""
        if '"' in body or "\r" in body or "\x00" in body or body.startswith("\ufeff"):
            return None
        lines = [line for line in body.split("\n") if line]
        if not lines or [h.strip() for h in lines[0].split(",")] != self.features:
            return None
        rows = [line.split(",") for line in lines[1:]]
        if rows and set(map(len, rows)) != {self.width}:
            return None
        return rows

    def read(self, line: bytes) -> FastRecord | object | None:
        """The record's rows, None when outside the time window, ``SLOW`` when not the shape."""
        try:
            record = orjson.loads(line)
            meta = record["eventMetadata"]
            stamp = meta.get("inferenceTime")
            if self.since is not None or self.until is not None:
                when = _parse_time(stamp)  # Malformed goes to the slow path's counting
                if (self.since is not None and when < self.since) or (
                    self.until is not None and when >= self.until
                ):
                    return None
            data = record["captureData"]
            request, response = data["endpointInput"], data["endpointOutput"]
            kind = self._kind(request.get("observedContentType"))
            if kind is None or self._kind(response.get("observedContentType")) != _JSON:
                return SLOW
            body = _text(request)
            if kind == _CSV:
                rows = self._csv_rows(body)
                if rows is None:
                    return SLOW
                n = len(rows)
            else:
                rows = orjson.loads(body)["dataframe_split"]
                if rows["columns"] != self.features:
                    return SLOW
                rows = rows["data"]
                if type(rows) is not list:
                    return SLOW
                n = len(rows)
                # The shape's containers only: the request object, dataframe_split, columns,
                # data and one list per row.
                if body.count("{") != self.braces or body.count("[") != n + self.brackets:
                    return SLOW
                if n and (set(map(type, rows)) != {list} or set(map(len, rows)) != {self.width}):
                    return SLOW
            # The response object (or bare list) and its list of predictions, nothing else.
            answer = _text(response)
            out = orjson.loads(answer)
            if type(out) is dict:
                if answer.count("{") != 1 or answer.count("[") != 1:
                    return SLOW
                out = out["predictions"]
            elif answer.count("{") or answer.count("[") != 1:
                return SLOW
            if type(out) is not list or len(out) != n:
                return SLOW
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            return SLOW
        event_id = meta.get("eventId")
        return (
            str(event_id) if event_id is not None else "",
            stamp if isinstance(stamp, str) else "",
            rows,
            out,
        )


def _text(part: dict[str, Any]) -> str:
    data = part["data"]
    if type(data) is not str:
        raise TypeError("data is not a string")
    if part.get("encoding") == "BASE64":
        try:
            return base64.b64decode(data).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("not base64 text") from None
    return data
