"""The common capture record read in a handful of C calls: the monitor's hot path.

``monitoring.current._record`` reads every shape a capture can hold and checks every value in
Python, about 20 µs a record; at a day of traffic that is most of a monitor run. Almost every
record is the same shape: a JSON ``dataframe_split`` request whose columns are the model's
features, in order, and a JSON list of predictions. ``fast_record`` reads only that shape and
checks it without a Python loop over values: the body holds no container but the ones the shape
has (counted with ``str.count``, which a bracket inside a string can only raise), every row is
a list (``set(map(type, ...))``) of the features' width (``set(map(len, ...))``). What it
accepts, ``_record`` would read to the same values; anything else (another shape, another
column order, a base64 body that does not decode, a bracket in a string, a malformed record)
is handed back as ``SLOW`` and read by ``_record``, with its leniency and its error messages.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import orjson

from monitoring.current import _parse_time

SLOW = object()  # not the common shape: read it with monitoring.current._record
_JSON = "application/json"


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
        self._json_types: dict[str, bool] = {}

    def _is_json(self, content_type: Any) -> bool:
        known = self._json_types.get(content_type)
        if known is None:
            text = str(content_type or "")
            known = text.split(";", 1)[0].strip().lower() == _JSON
            self._json_types[content_type] = known
        return known

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
            if not (
                self._is_json(request.get("observedContentType"))
                and self._is_json(response.get("observedContentType"))
            ):
                return SLOW
            body = _text(request)
            rows = orjson.loads(body)["dataframe_split"]
            if rows["columns"] != self.features:
                return SLOW
            rows = rows["data"]
            if type(rows) is not list:
                return SLOW
            n = len(rows)
            # The shape's containers only: the request object, dataframe_split, columns, data
            # and one list per row; the response object (or bare list) and its predictions.
            if body.count("{") != self.braces or body.count("[") != n + self.brackets:
                return SLOW
            if n and (set(map(type, rows)) != {list} or set(map(len, rows)) != {self.width}):
                return SLOW
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
