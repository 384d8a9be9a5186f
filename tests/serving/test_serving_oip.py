"""The Open Inference Protocol contract without HTTP: tensors in, checked columns out, and every
bad request a RequestError naming the input."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from pipelines.core.datasets import ColumnSpec, ColumnType
from serving import oip
from serving.schema import InputSchema, RequestError, UnsupportedMediaType

pytestmark = pytest.mark.serving

SCHEMA = InputSchema(
    ["length", "count", "kind", "flag"],
    {
        "length": ColumnSpec(type=ColumnType.FLOAT, min=0, max=10),
        "count": ColumnSpec(type=ColumnType.INT),
        "kind": ColumnSpec(type=ColumnType.CATEGORY, categories=["a", "b"]),
        "flag": ColumnSpec(type=ColumnType.BOOL),
    },
)
TENSORS = [
    {"name": "length", "datatype": "FP64", "shape": [2], "data": [1.5, 9.0]},
    {"name": "count", "datatype": "INT64", "shape": [2], "data": [2, 3]},
    {"name": "kind", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
    {"name": "flag", "datatype": "BOOL", "shape": [2], "data": [True, False]},
]


def infer(inputs: list[dict[str, Any]], **extra: Any) -> oip.InferCall:
    return oip.parse_infer(orjson.dumps({"inputs": inputs, **extra}), None, None, SCHEMA)


def with_input(name: str, **changes: Any) -> list[dict[str, Any]]:
    return [({**t, **changes} if t["name"] == name else t) for t in TENSORS]


def binary_body(tensors: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A body in the binary tensor extension: the JSON header, then each input's bytes."""
    header = orjson.dumps(
        {
            "inputs": [
                {"name": n, "datatype": d, "shape": [2], "parameters": {"binary_data_size": len(b)}}
                for n, d, b in tensors
            ]
        }
    )
    return header + b"".join(b for _, _, b in tensors), str(len(header))


def bytes_elements(*items: str) -> bytes:
    return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in items)


def test_metadata_declares_each_input_with_the_datatype_its_column_type_takes() -> None:
    meta = oip.model_metadata("m", "3", SCHEMA.columns, SCHEMA.specs, "BYTES")

    assert meta["inputs"] == [
        {"name": "length", "datatype": "FP64", "shape": [-1]},
        {"name": "count", "datatype": "INT64", "shape": [-1]},
        {"name": "kind", "datatype": "BYTES", "shape": [-1]},
        {"name": "flag", "datatype": "BOOL", "shape": [-1]},
    ]
    assert meta["outputs"] == [{"name": "predictions", "datatype": "BYTES", "shape": [-1]}]
    assert meta["versions"] == ["3"]


def test_json_tensors_become_the_checked_columns_in_the_models_order() -> None:
    call = infer(list(reversed(TENSORS)), id="r1")

    assert list(call.columns) == SCHEMA.columns
    assert call.columns["length"].tolist() == [1.5, 9.0]
    assert call.columns["count"].dtype == np.int64
    assert call.columns["kind"].tolist() == ["a", "b"]
    assert (call.id, call.rows) == ("r1", 2)


def test_shape_n_by_1_and_nested_data_are_one_value_per_row() -> None:
    call = infer(with_input("length", shape=[2, 1], data=[[1.5], [9.0]]))

    assert call.columns["length"].tolist() == [1.5, 9.0]


def test_narrower_numeric_datatypes_are_accepted_for_a_number_column() -> None:
    inputs = with_input("length", datatype="FP32")
    inputs[1] = {**inputs[1], "datatype": "INT32"}
    call = infer(inputs)

    assert call.columns["length"].tolist() == [1.5, 9.0]
    assert call.columns["count"].tolist() == [2, 3]


def test_the_binary_extension_decodes_fixed_size_and_bytes_tensors() -> None:
    body, length = binary_body(
        [
            ("length", "FP32", np.array([1.5, 9.0], dtype="<f4").tobytes()),
            ("count", "INT64", np.array([2, 3], dtype="<i8").tobytes()),
            ("kind", "BYTES", bytes_elements("a", "b")),
            ("flag", "BOOL", np.array([True, False]).tobytes()),
        ]
    )
    call = oip.parse_infer(body, length, None, SCHEMA)

    assert call.columns["length"].tolist() == [1.5, 9.0]
    assert call.columns["kind"].tolist() == ["a", "b"]
    assert call.columns["flag"].tolist() == [True, False]


def test_the_capture_body_is_the_dataframe_split_that_invocations_takes() -> None:
    call = infer(TENSORS)

    assert orjson.loads(call.capture_body(SCHEMA.columns)) == {
        "dataframe_split": {
            "columns": SCHEMA.columns,
            "data": [[1.5, 2, "a", True], [9.0, 3, "b", False]],
        }
    }
    assert SCHEMA.parse(call.capture_body(SCHEMA.columns), "application/json").shape == (2, 4)


def test_the_response_has_one_prediction_per_row_and_echoes_the_id() -> None:
    call = infer(TENSORS, id="r7")
    out = orjson.loads(oip.infer_response("m", "3", call, np.array(["x", "y"]), "BYTES"))

    assert out == {
        "model_name": "m",
        "model_version": "3",
        "id": "r7",
        "outputs": [{"name": "predictions", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]}],
    }


@pytest.mark.parametrize(
    ("inputs", "named", "words"),
    [
        (with_input("kind", datatype="FP64"), "kind", "datatype 'FP64'"),
        (with_input("count", datatype="FP64", data=[2.5, 3.0]), "count", "datatype 'FP64'"),
        (with_input("length", shape=[2, 2]), "length", "shape [2, 2]"),
        (with_input("length", shape=[3], data=[1.0, 2.0, 3.0]), "count", "have 3"),
        (with_input("length", data=[1.5]), "length", "has 1"),
        (TENSORS[:3], "flag", "missing input"),
        ([*TENSORS, {**TENSORS[0], "name": "colour"}], "colour", "unknown input"),
        ([*TENSORS, TENSORS[0]], "length", "appears twice"),
        (with_input("length", data=[1.5, 99.0]), "length", "above the maximum"),
        (with_input("kind", data=["a", "zebra"]), "kind", "not one of the categories"),
        (with_input("length", data=None), "length", "has neither"),
    ],
)
def test_a_bad_tensor_is_a_request_error_naming_the_input(
    inputs: list[dict[str, Any]], named: str, words: str
) -> None:
    with pytest.raises(RequestError) as caught:
        infer([{k: v for k, v in t.items() if v is not None} for t in inputs])

    assert caught.value.status == 400
    assert f"'{named}'" in caught.value.message and words in caught.value.message


def test_bytes_elements_may_be_empty_or_beyond_ascii() -> None:
    raw = bytes_elements("", "Île", "a" * 300)
    assert oip._bytes_elements("kind", raw) == ["", "Île", "a" * 300]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (bytes_elements("a") + b"\x05\x00", "length is cut off"),
        (bytes_elements("a") + struct.pack("<I", 9) + b"abc", "element is cut off"),
        (bytes_elements("a") + struct.pack("<I", 2) + b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_broken_bytes_element_is_a_request_error_naming_the_input(raw: bytes, words: str) -> None:
    with pytest.raises(RequestError, match=rf"'kind'.*{words}"):
        oip._bytes_elements("kind", raw)


def test_a_binary_size_past_the_body_is_a_request_error_naming_the_input() -> None:
    body, length = binary_body([("length", "FP64", b"\0" * 16)])
    with pytest.raises(RequestError, match=r"'length'.*binary_data_size"):
        oip.parse_infer(body[:-8], length, None, SCHEMA)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{", "malformed JSON"),
        (b"[]", '"inputs"'),
        (orjson.dumps({"inputs": TENSORS, "outputs": [{"name": "probs"}]}), "unknown output"),
    ],
)
def test_a_malformed_request_is_a_request_error(body: bytes, words: str) -> None:
    with pytest.raises(RequestError, match=words):
        oip.parse_infer(body, None, None, SCHEMA)


def test_a_compressed_body_is_refused_as_an_unsupported_media_type() -> None:
    with pytest.raises(UnsupportedMediaType, match="gzip"):
        oip.parse_infer(orjson.dumps({"inputs": TENSORS}), None, "gzip", SCHEMA)


def test_the_error_body_is_the_protocols_shape() -> None:
    assert orjson.loads(oip.error("input 'x': bad")) == {"error": "input 'x': bad"}
