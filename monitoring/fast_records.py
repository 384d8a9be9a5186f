"""The common capture record read in a handful of C calls: the monitor's hot path.

``monitoring.current._record`` reads every shape a capture can hold and checks every value in
Python, about 20 µs a record; at a day of traffic that is most of a monitor run. Almost every
record is one of two shapes: a JSON ``dataframe_split`` request or a CSV request with a header,
whose columns are the model's features in order, and a JSON list of predictions.
``FastReader`` reads only those, with typed ``msgspec`` decoders built for the model's width,
so the checks happen inside the decoder instead of in a Python loop over values: the outer
record, the request (``dataframe_split`` with no other key, every row an array of exactly the
features' width, every value a JSON scalar) and the response (``{"predictions": [...]}`` or a
bare list of scalars). A CSV body has no quote, carriage return, NUL or byte-order mark, so
splitting on commas is what ``csv.reader`` does. What it accepts, ``_record`` would read to
the same values (integers outside int64 are refused: orjson would read those as floats);
anything else (another shape, another column order, a base64 body that does not decode, a
malformed record) is handed back as ``SLOW`` and read by ``_record``, with its leniency and its
error messages.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain, groupby, repeat
from typing import Annotated, Any, cast

import msgspec

from monitoring.current import _parse_time

SLOW = object()  # not the common shape: read it with monitoring.current._record
FULL = (0, b"")  # yielded by ``FastReader.fold`` when its rows reach the batch size
_JSON, _CSV = "application/json", "text/csv"

# A JSON scalar as orjson reads it: orjson reads integers beyond 64 bits as floats, msgspec as
# ints, so those are refused here and left to the slow path.
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Scalar = str | _Int | float | bool | None


class _Part(msgspec.Struct):
    data: str
    observedContentType: Any = None
    encoding: Any = None


class _CaptureData(msgspec.Struct):
    endpointInput: _Part
    endpointOutput: _Part


class _Metadata(msgspec.Struct):
    eventId: Any = None
    inferenceTime: Any = None


class _Record(msgspec.Struct):
    captureData: _CaptureData
    eventMetadata: _Metadata


class _Predictions(msgspec.Struct):
    predictions: list[Scalar]


_RECORD = msgspec.json.Decoder(_Record)
_RESPONSE = msgspec.json.Decoder(_Predictions | list[Scalar])

# (event id, inference time, rows, predictions). A row is a tuple of the features' values in
# order (JSON), or the row's line of text (CSV), which ``columns`` splits with the batch.
FastRecord = tuple[str, str, list[Any], list[Any]]


def columns(rows: list[Any], width: int) -> list[list[Any]]:
    """The ``width`` columns of a batch of ``FastRecord`` rows, in row order.

    One flat list sliced ``width`` ways: a JSON batch is chained, a CSV batch is joined and
    split on commas once (each line was checked to hold ``width`` fields), which at a day of
    traffic is several times cheaper than transposing row by row."""
    out: list[list[Any]] = [[] for _ in range(width)]
    for kind, run in groupby(rows, key=type):
        # One of the two branches consumes the group, once.
        flat = ",".join(run).split(",") if kind is str else list(chain.from_iterable(run))  # noqa: B031
        for k, column in enumerate(out):
            column.extend(flat[k::width])
    return out


def _request_decoder(width: int) -> msgspec.json.Decoder[Any]:
    """``{"dataframe_split": {"columns": [...], "data": [[width scalars], ...]}}``, nothing else."""
    row: Any = tuple[tuple([Scalar] * width)] if width else tuple[()]  # type: ignore[misc]
    split = msgspec.defstruct(
        "Split", [("columns", list[str]), ("data", list[row])], forbid_unknown_fields=True
    )
    request = msgspec.defstruct("Request", [("dataframe_split", split)], forbid_unknown_fields=True)
    return msgspec.json.Decoder(request)


class FastReader:
    """``fast_record`` bound to one model's features, with the content types seen so far."""

    def __init__(self, features: list[str], since: datetime | None, until: datetime | None):
        self.features = list(features)
        self.width = len(features)
        self.since, self.until = since, until
        self._request = _request_decoder(self.width)
        self._kinds: dict[Any, str | None] = {}
        self._headers: set[str] = set()  # header lines already found to be the features
        self.records = self.rows_read = 0  # what ``fold`` read

    def _kind(self, content_type: Any) -> str | None:
        """JSON, CSV or None (another type: the slow path's error) of an observedContentType."""
        try:
            return self._kinds[content_type]
        except KeyError:
            text = str(content_type or "").split(";", 1)[0].strip().lower()
            kind = text if text in (_JSON, _CSV) else None
            self._kinds[content_type] = kind
            return kind

    def _csv_rows(self, body: str) -> list[str] | None:
        """The row lines of a CSV body with the features as its header, each holding exactly
        the features' count of fields; None where splitting on commas might not be what
        ``csv.reader`` does (quotes, a carriage return, NUL, a byte-order mark) or the body is
        not the shape. The lines are split by ``columns`` for a whole batch at once."""
        if '"' in body or "\r" in body or "\x00" in body or body.startswith("\ufeff"):
            return None
        header, _, rest = body.partition("\n")
        if header not in self._headers:  # the first time, or blank lines before the header
            lines = [line for line in body.split("\n") if line]
            if not lines or [h.strip() for h in lines[0].split(",")] != self.features:
                return None
            self._headers.add(lines[0])
            header, _, rest = body.lstrip("\n").partition("\n")
        lines = rest.split("\n")
        if "" in lines:  # the trailing newline, or blank lines between rows
            lines = [line for line in lines if line]
        if lines and set(map(str.count, lines, repeat(","))) != {self.width - 1}:
            return None
        return lines

    def fold(
        self,
        lines: Iterable[bytes],
        rows: list[Any],
        predictions: list[Any],
        labelled_events: set[str] | None,
        labelled: list[tuple[str, int, str, Any]],
        batch: int,
    ) -> Iterator[tuple[int, bytes]]:
        """Read the common-shape lines of one file into ``rows`` and ``predictions``; yield
        ``(line number, line)`` of every other line (blank ones too) and ``FULL`` whenever
        ``rows`` holds ``batch`` rows. ``records`` and ``rows_read`` count what was read.

        One loop for the whole file, rather than a call per line, because at a day of traffic
        the calls alone are a tenth of the run."""
        read = self.read
        records = total = 0
        try:
            for number, line in enumerate(lines, start=1):
                quick = read(line)
                if quick is None:
                    continue
                if quick is SLOW:
                    yield number, line
                    continue
                event_id, stamp, new_rows, values = cast("FastRecord", quick)
                rows.extend(new_rows)
                predictions.extend(values)
                if labelled_events is not None and event_id in labelled_events:
                    labelled.extend((event_id, k, stamp, v) for k, v in enumerate(values))
                records += 1
                total += len(new_rows)
                if len(rows) >= batch:
                    yield FULL
        finally:
            self.records += records
            self.rows_read += total

    def read(self, line: bytes) -> FastRecord | object | None:
        """The record's rows, None when outside the time window, ``SLOW`` when not the shape."""
        try:
            record = _RECORD.decode(line)
            meta = record.eventMetadata
            stamp = meta.inferenceTime
            if self.since is not None or self.until is not None:
                when = _parse_time(stamp)  # Malformed goes to the slow path's counting
                if (self.since is not None and when < self.since) or (
                    self.until is not None and when >= self.until
                ):
                    return None
            request, response = record.captureData.endpointInput, record.captureData.endpointOutput
            kind = self._kind(request.observedContentType)
            if kind is None or self._kind(response.observedContentType) != _JSON:
                return SLOW
            if kind == _CSV:
                rows: Any = self._csv_rows(_text(request))
                if rows is None:
                    return SLOW
            else:
                split = self._request.decode(_text(request)).dataframe_split
                if split.columns != self.features:
                    return SLOW
                rows = split.data
            answer = _RESPONSE.decode(_text(response))
            out = answer.predictions if isinstance(answer, _Predictions) else answer
            if len(out) != len(rows):
                return SLOW
        except (msgspec.DecodeError, TypeError, ValueError):
            return SLOW
        event_id = meta.eventId
        return (
            str(event_id) if event_id is not None else "",
            stamp if isinstance(stamp, str) else "",
            rows,
            out,
        )


def _text(part: _Part) -> str:
    if part.encoding == "BASE64":
        try:
            return base64.b64decode(part.data).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("not base64 text") from None
    return part.data
