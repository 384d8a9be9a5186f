"""Request parsing and checking without HTTP: each shape, each rule, each error names its column."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pipelines.core.datasets import ColumnSpec, ColumnType
from serving.schema import InputSchema, RequestError, UnsupportedMediaType

pytestmark = pytest.mark.serving

SCHEMA = InputSchema(
    ["length", "count", "kind", "note", "flag"],
    {
        "length": ColumnSpec(type=ColumnType.FLOAT, min=0, max=10),
        "count": ColumnSpec(type=ColumnType.INT, nullable=True),
        "kind": ColumnSpec(type=ColumnType.CATEGORY, categories=["a", "b"]),
        "note": ColumnSpec(type=ColumnType.STRING, nullable=True),
        "flag": ColumnSpec(type=ColumnType.BOOL),
    },
)
ROWS = [[1.5, 2, "a", "x", True], [9.0, None, "b", None, False]]


def parse_json(doc: Any) -> Any:
    return SCHEMA.parse(orjson.dumps(doc), "application/json; charset=utf-8")


def test_the_three_json_shapes_and_csv_build_the_same_frame() -> None:
    records = [dict(zip(SCHEMA.columns, r, strict=True)) for r in ROWS]
    frames = [
        parse_json({"dataframe_split": {"columns": SCHEMA.columns, "data": ROWS}}),
        parse_json({"dataframe_records": records}),
        parse_json({"instances": records}),
        parse_json({"instances": ROWS}),
        SCHEMA.parse(b"flag,kind,length,count,note\ntrue,a,1.5,2,x\nfalse,b,9,,\n", "text/csv"),
    ]
    for frame in frames:
        assert list(frame.columns) == SCHEMA.columns
        assert frame["length"].tolist() == [1.5, 9.0]
        assert frame["kind"].tolist() == ["a", "b"]
        assert frame["flag"].tolist() == [True, False]
        assert frame["count"].isna().tolist() == [False, True]
        assert frame["note"].isna().tolist() == [False, True]


def test_an_int_column_without_nulls_is_integer() -> None:
    frame = parse_json({"instances": [[1.5, 2, "a", "x", True]]})
    assert frame["count"].dtype.kind == "i"


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ([-1.0, 2, "a", "x", True], "length", "below the minimum"),
        ([11.0, 2, "a", "x", True], "length", "above the maximum"),
        (["1.5", 2, "a", "x", True], "length", "expected a number"),
        ([True, 2, "a", "x", True], "length", "expected a number"),
        ([None, 2, "a", "x", True], "length", "required"),
        ([1.5, 2.5, "a", "x", True], "count", "expected an integer"),
        ([1e39, 2, "a", "x", True], "length", "the largest number a model takes"),
        ([1.5, 2, "c", "x", True], "kind", "not one of the categories"),
        ([1.5, 2, 3, "x", True], "kind", "expected a string"),
        ([1.5, 2, "a", 7, True], "note", "expected a string"),
        ([1.5, 2, "a", "x", "yes"], "flag", "expected true or false"),
    ],
)
def test_each_rule_raises_an_error_naming_the_column_and_row(
    row: list[Any], column: str, words: str
) -> None:
    with pytest.raises(RequestError) as caught:
        parse_json({"instances": [ROWS[0], row]})
    assert caught.value.status == 400
    assert caught.value.column == column
    assert caught.value.row == 1
    assert column in caught.value.message and words in caught.value.message


@pytest.mark.parametrize(
    ("doc", "column"),
    [
        ({"dataframe_split": {"columns": SCHEMA.columns[:4], "data": [r[:4] for r in ROWS]}},
         "flag"),
        ({"dataframe_split": {"columns": [*SCHEMA.columns, "x"], "data": [[*ROWS[0], 1]]}}, "x"),
        ({"dataframe_records": [{**dict(zip(SCHEMA.columns, ROWS[0], strict=True)), "x": 1}]},
         "x"),
        ({"dataframe_records": [{"length": 1.0}]}, "count"),
    ],
)  # fmt: skip
def test_missing_and_extra_columns_are_named(doc: Any, column: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_json(doc)
    assert caught.value.column == column


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[1, 2]",
        b'{"inputs": []}',
        b'{"instances": [], "dataframe_records": []}',
        b'{"dataframe_split": {"columns": ["length"]}}',
        b'{"dataframe_split": {"data": [[1.0]]}}',
        b'{"instances": "rows"}',
        b'{"dataframe_records": [1, 2]}',
    ],
)
def test_malformed_json_is_a_400_never_a_crash(body: bytes) -> None:
    with pytest.raises(RequestError) as caught:
        SCHEMA.parse(body, "application/json")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"1.5,2,a,x,true\n",  # no header
        b"length,count,kind,note,flag\n",  # header only
        b"length,count,kind,note,flag\n1.5,2,a\n",  # short row
        b"length,count,kind,note,flag\n\xff\xfe,2,a,x,true\n",  # not UTF-8
    ],
)
def test_malformed_csv_is_a_400(body: bytes) -> None:
    with pytest.raises(RequestError) as caught:
        SCHEMA.parse(body, "text/csv")
    assert caught.value.status == 400


def test_an_unknown_content_type_is_415() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        SCHEMA.parse(b"x", "application/xml")
    assert caught.value.status == 415
