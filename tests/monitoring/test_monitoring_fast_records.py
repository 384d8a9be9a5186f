"""The monitor's hot path reads what the lenient reader reads, and hands back everything else.

Every line below is folded twice: with ``FastReader`` (the shape it knows read in C calls,
the rest by ``monitoring.current._record``) and with every line sent to ``_record``. The two
states must be equal value for value, in order, with the same records skipped for the same
reasons; and the common shape must really take the fast path (else the test proves nothing).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import monitoring.window as window
from monitoring.fast_records import SLOW, FastReader
from monitoring.window import WindowState, fold_window, new_state
from pipelines.core.datasets import ColumnSpec
from serving.capture import make_record

pytestmark = pytest.mark.monitoring

FEATURES = ["length", "flag", "island"]
SCHEMA = {
    "length": ColumnSpec(type="float"),
    "flag": ColumnSpec(type="bool"),
    "island": ColumnSpec(type="string"),
}
KINDS: dict[str, Any] = {"length": "numeric", "flag": "categorical", "island": "categorical"}
JSON = "application/json"


def _line(
    request: Any,
    response: Any,
    *,
    when: str = "2026-01-01T10:00:00.000Z",
    event: str = "e",
    request_type: str = JSON,
    raw: bytes | None = None,
) -> bytes:
    body = raw if raw is not None else orjson.dumps(request)
    record = make_record(body, request_type, orjson.dumps(response), JSON, event_id=event)
    record["eventMetadata"]["inferenceTime"] = when
    return orjson.dumps(record)


def _split(rows: list[list[Any]], columns: list[str] | None = None) -> dict[str, Any]:
    return {"dataframe_split": {"columns": columns or FEATURES, "data": rows}}


GOOD = _line(_split([[1.5, True, "Dream"], [2, "false", "Biscoe"]]), {"predictions": ["a", "b"]})


def _lines() -> list[bytes]:
    good_b64 = orjson.loads(GOOD)
    part = good_b64["captureData"]["endpointInput"]
    part["encoding"], part["data"] = "BASE64", base64.b64encode(part["data"].encode()).decode()
    bad_b64 = orjson.loads(orjson.dumps(good_b64))
    bad_b64["captureData"]["endpointInput"]["data"] = "%%%not base64"
    no_meta = orjson.loads(GOOD)
    del no_meta["eventMetadata"]
    return [
        GOOD,
        _line(_split([[3.0, None, None]]), ["c"], event="bare list of predictions"),
        _line(_split([]), {"predictions": []}, event="no rows"),
        orjson.dumps(good_b64),
        orjson.dumps(bad_b64),
        orjson.dumps(no_meta),
        # other shapes and column orders: the lenient reader's
        _line(_split([["Dream", 1.0, True]], ["island", "length", "flag"]), {"predictions": ["a"]}),
        _line(_split([[1.0, True, "Dream", 9]], [*FEATURES, "extra"]), {"predictions": ["a"]}),
        _line(
            {"dataframe_records": [{"length": 4, "flag": True, "island": "Torgersen"}]},
            {"predictions": ["a"]},
        ),
        _line(
            None,
            {"predictions": ["a"]},
            raw=b"length,flag,island\n5,true,Dream\n",
            request_type="text/csv",
        ),
        *(
            _line(None, {"predictions": ["a"] * rows}, raw=raw, request_type="text/csv")
            for rows, raw in [
                (2, b" length , flag,island\n5,true,Dream\n\n,,\n"),  # spaced header, gaps
                (1, b'length,flag,island\n"5,5",true,Dream\n'),  # quoted
                (1, b"length,flag,island\r\n5,true,Dream\r\n"),  # CRLF
                (1, "\ufefflength,flag,island\n5,true,Dream\n".encode()),  # byte-order mark
                (1, b"island,length,flag\nDream,5,true\n"),  # another order
                (1, b"length,flag,island\n5,true\n"),  # a short row
                (1, b"length,flag,island\n5,true,Dream,\n"),  # a trailing comma
                (0, b"length,flag,island\n"),  # a header alone
                (0, b"\n\n"),  # nothing
                (2, b"length,flag,island\n1,2,3\n"),  # too many predictions
            ]
        ),
        # values and brackets the fast checks must not let through
        _line(_split([[1.0, True, "[Dream]"]]), {"predictions": ["a"]}, event="bracket text"),
        _line(_split([[1.0, True, "{Dream}"]]), {"predictions": ["{a}"]}, event="brace text"),
        _line(_split([[[1.0], True, "Dream"]]), {"predictions": ["a"]}, event="nested list"),
        _line(_split([[{"v": 1}, True, "Dream"]]), {"predictions": ["a"]}, event="nested object"),
        _line(_split([[1.0, True]]), {"predictions": ["a"]}, event="short row"),
        _line(_split([1.0, [[2.0, True, "x"]]]), {"predictions": ["a", "b"]}, event="scalar row"),
        _line({"dataframe_split": {"columns": FEATURES, "data": ""}}, {"predictions": []}),
        _line({"dataframe_split": {"columns": FEATURES, "data": {}}}, {"predictions": []}),
        _line(_split([[True, True, "Dream"]]), {"predictions": ["a"]}, event="bool as number"),
        _line(_split([["7.5", 1, 0]]), {"predictions": ["a"]}, event="text as number"),
        _line(_split([[1.0, True, "Dream"]]), {"predictions": ["a", "b"]}, event="too many"),
        _line(_split([[1.0, True, "Dream"]]), {"predictions": [["a"]]}, event="nested answer"),
        _line(_split([[1.0, True, "Dream"]]), {"scores": [1]}, event="no predictions"),
        _line(_split([[1.0, True, "Dream"]]), {"predictions": ["a"]}, when="yesterday"),
        _line(_split([[8.0, True, "Dream"]]), {"predictions": ["a"]}, when="2026-01-01T08:00:00"),
        _line(_split([[1.0, True, "Dream"]]), {"predictions": ["a"]}, request_type="text/plain"),
        b"{not json",
        b"[1, 2]",
        b'{"captureData": [], "eventMetadata": {}}',
        b'{"captureData": {"endpointInput": {"data": 1}}, "eventMetadata": {}}',
        GOOD.replace(b'"mode"', b'"observedContentType": [1], "mode"', 1),
    ]


def _fold(files: list[str], since: datetime | None, slow_only: bool) -> WindowState:
    state = new_state("x", KINDS, {"length": np.array([1.0, 2.0, 5.0])}, "categorical",
                      np.zeros(0))  # fmt: skip
    if slow_only:

        class Slow(FastReader):
            def read(self, line: bytes) -> object:
                return SLOW

        original, window.FastReader = window.FastReader, Slow  # type: ignore[misc]
        try:
            return fold_window(state, files, SCHEMA, since=since, labelled_events={"e"})
        finally:
            window.FastReader = original  # type: ignore[misc]
    return fold_window(state, files, SCHEMA, since=since, labelled_events={"e"})


def _as_plain(state: WindowState) -> dict[str, Any]:
    columns = {}
    for name, column in [*state.features.items(), ("prediction", state.prediction)]:
        current = column.current()
        columns[name] = (
            current.tolist() if isinstance(current, np.ndarray)
            else list(zip(current.labels.tolist(), current.counts.tolist(), strict=True))
        )  # fmt: skip
    return {
        "columns": columns, "records": state.records, "rows": state.rows,
        "skipped": state.skipped, "examples": state.skipped_examples, "lacking": state.lacking,
        "missing": state.missing, "labelled": state.labelled,
    }  # fmt: skip


@pytest.mark.parametrize("since", [None, datetime(2026, 1, 1, 9, tzinfo=UTC)])
def test_fast_path_reads_what_the_lenient_reader_reads(tmp_path: Path, since: Any) -> None:
    capture = tmp_path / "captures.jsonl"
    capture.write_bytes(b"\n".join(_lines() * 3) + b"\n")
    window.SKIPPED_EXAMPLES = 100  # type: ignore[attr-defined]
    try:
        fast = _as_plain(_fold([str(capture)], since, slow_only=False))
        slow = _as_plain(_fold([str(capture)], since, slow_only=True))
    finally:
        window.SKIPPED_EXAMPLES = 5  # type: ignore[attr-defined]
    assert fast == slow
    assert slow["skipped"] > 20 and slow["records"] > 20  # both kinds are really in the window


def test_the_common_shape_takes_the_fast_path() -> None:
    reader = FastReader(FEATURES, None, None)
    accepted = [line for line in _lines() if reader.read(line) is not SLOW]
    assert GOOD in accepted
    # the two good answers, no rows, the base64 body, the plain CSV bodies (a header with
    # spaces, gaps; a header alone), values that are drift (a boolean or text in a numeric
    # column), text holding brackets or braces, and the two records whose times only matter
    # with --since-hours
    assert len(accepted) == 13
    rows = [(1.5, True, "Dream"), (2, "false", "Biscoe")]
    assert reader.read(GOOD) == ("e", "2026-01-01T10:00:00.000Z", rows, ["a", "b"])


def test_bracketed_feature_names_still_take_the_fast_path() -> None:
    names = ["x[0]", "{y}"]
    line = _line(_split([[1.0, "a"]], names), {"predictions": ["p"]})
    assert FastReader(names, None, None).read(line) is not SLOW
    bad = _line({"dataframe_split": {"columns": names, "data": ""}}, {"predictions": []})
    assert FastReader(names, None, None).read(bad) is SLOW
