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
from typing import Annotated, Any

import msgspec

from monitoring.current import _parse_time

SLOW = object()  # not the common shape: read it with monitoring.current._record
FULL = (0, b"")  # yielded by ``FastReader.fold`` when its rows reach the batch size
_JSON, _CSV = "application/json", "text/csv"
BASE64 = "BASE64"  # the capture's encoding of a body that is not kept as text

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
        ``(line number, line)`` of every other line (blank ones too, and those outside the
        time window are dropped) and ``FULL`` whenever ``rows`` holds ``batch`` rows.
        ``records`` and ``rows_read`` count what was read.

        One loop for the whole file, with the per-record steps written out in it rather than
        called, because at a day of traffic the calls alone cost a fifth of the run."""
        decode_record, decode_request = _RECORD.decode, self._request.decode
        decode_response, kinds, kind_of = _RESPONSE.decode, self._kinds, self._kind
        features, since, until = self.features, self.since, self.until
        timed = since is not None or until is not None
        records = total = 0
        try:
            for number, line in enumerate(lines, start=1):
                try:
                    record = decode_record(line)
                    meta = record.eventMetadata
                    stamp = meta.inferenceTime
                    if timed:
                        when = _parse_time(stamp)  # Malformed goes to the slow path's counting
                        if (since is not None and when < since) or (
                            until is not None and when >= until
                        ):
                            continue
                    request = record.captureData.endpointInput
                    response = record.captureData.endpointOutput
                    kind = kinds.get(request.observedContentType) or kind_of(
                        request.observedContentType
                    )
                    answer_kind = kinds.get(response.observedContentType) or kind_of(
                        response.observedContentType
                    )
                    body = request.data if request.encoding != BASE64 else _decoded(request.data)
                    new_rows: Any
                    if kind is None or answer_kind != _JSON:
                        new_rows = None
                    elif kind == _CSV:
                        new_rows = self._csv_rows(body)
                    else:
                        split = decode_request(body).dataframe_split
                        new_rows = split.data if split.columns == features else None
                    if new_rows is not None:
                        answer = decode_response(
                            response.data if response.encoding != BASE64
                            else _decoded(response.data)
                        )  # fmt: skip
                        values: list[Any] = (
                            answer.predictions if isinstance(answer, _Predictions) else answer
                        )
                        if len(values) != len(new_rows):
                            new_rows = None
                except (msgspec.DecodeError, TypeError, ValueError):
                    new_rows = None
                if new_rows is None:
                    yield number, line
                    continue
                rows.extend(new_rows)
                predictions.extend(values)
                event_id = meta.eventId
                if labelled_events is not None and event_id is not None:
                    event_id = str(event_id)
                    if event_id in labelled_events:
                        when_text = stamp if isinstance(stamp, str) else ""
                        labelled.extend((event_id, k, when_text, v) for k, v in enumerate(values))
                records += 1
                total += len(new_rows)
                if len(rows) >= batch:
                    yield FULL
        finally:
            self.records += records
            self.rows_read += total

    def read(self, line: bytes) -> FastRecord | object | None:
        """One line as ``fold`` reads it: the record, None when outside the time window,
        ``SLOW`` when not the common shape."""
        rows: list[Any] = []
        predictions: list[Any] = []
        before = self.records
        if next(iter(self.fold([line], rows, predictions, None, [], 1 << 62)), None):
            return SLOW
        if self.records == before:
            return None
        meta = _RECORD.decode(line).eventMetadata
        stamp, event_id = meta.inferenceTime, meta.eventId
        return (
            str(event_id) if event_id is not None else "",
            stamp if isinstance(stamp, str) else "",
            rows,
            predictions,
        )


def _decoded(data: str) -> str:
    """A BASE64 capture body as text; ValueError (the slow path's) when it is not."""
    try:
        return base64.b64decode(data).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not base64 text") from None
