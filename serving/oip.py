"""THE Open Inference Protocol (V2 REST) contract: what the server's ``/v2`` paths take and give.

KServe, Triton, MLServer and Seldon speak this protocol, and so do their clients
(``tritonclient[http]``, KServe's ``InferenceRESTClient``). Here it is spoken by the same server,
model, schema checks, micro-batcher, capture and metrics as the SageMaker contract
(``serving.app``): this module only translates between OIP tensors and the checked columns the
server predicts on.

- Inputs are columnar: one tensor per feature column, named as the column, shape ``[N]`` or
  ``[N, 1]``, all with the same ``N``. Its datatype follows the dataset schema
  (``DATATYPES``): a number column takes any integer or float tensor for a float column and
  any integer tensor for an integer column, a bool column BOOL, and every text column BYTES.
- Data comes as JSON (``"data": [...]``, flat or nested row-major) or in the binary tensor
  extension: an ``Inference-Header-Content-Length`` header gives the JSON part's size, and each
  input with ``parameters.binary_data_size`` has its bytes after it, in input order (BYTES
  elements as a 4-byte little-endian length and the UTF-8 text), as tritonclient sends with
  ``binary_data=True``. Responses are always JSON, which every client reads.
- The output is one tensor, ``predictions``, with one value per row.
- Bad input is a 4xx with the protocol's error body, ``{"error": "<message>"}``; the message
  names the input (a column-level problem is the schema's message, which names the column).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from pipelines.core.datasets import ColumnSpec, ColumnType
from serving.schema import Columns, InputSchema, RequestError, UnsupportedMediaType

OUTPUT_NAME = "predictions"
HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ("binary_tensor_data",)
SERVER_NAME = "mlops-serving"

# The datatype metadata declares for each column type.
DATATYPES = {
    ColumnType.INT: "INT64",
    ColumnType.FLOAT: "FP64",
    ColumnType.BOOL: "BOOL",
    ColumnType.STRING: "BYTES",
    ColumnType.CATEGORY: "BYTES",
    ColumnType.DATETIME: "BYTES",
}
_INTEGERS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
# Every datatype a column of each type accepts: an integer tensor is a fine float column.
ACCEPTED = {
    ColumnType.INT: _INTEGERS,
    ColumnType.FLOAT: _INTEGERS | _FLOATS,
    ColumnType.BOOL: frozenset({"BOOL"}),
    ColumnType.STRING: frozenset({"BYTES"}),
    ColumnType.CATEGORY: frozenset({"BYTES"}),
    ColumnType.DATETIME: frozenset({"BYTES"}),
}
# Fixed-size datatypes in the binary extension (little-endian, as the protocol lays them out).
_NUMPY = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


class ModelNotFound(RequestError):
    status = 404


def error(message: str) -> bytes:
    """The protocol's error body."""
    return orjson.dumps({"error": message})


def datatype_of(values: np.ndarray) -> str:
    """The OIP datatype of a predictions array."""
    kind = values.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


# -- metadata -----------------------------------------------------------------------------------


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": version, "extensions": list(EXTENSIONS)}


def model_metadata(
    name: str,
    version: str,
    columns: Sequence[str],
    schema: dict[str, ColumnSpec],
    output_datatype: str,
) -> dict[str, Any]:
    """``GET /v2/models/{name}``: each input's name, datatype and shape, from the dataset schema."""
    return {
        "name": name,
        "versions": [version] if version else [],
        "platform": "mlflow_sklearn",
        "inputs": [
            {"name": c, "datatype": DATATYPES[schema[c].type], "shape": [-1]} for c in columns
        ],
        "outputs": [{"name": OUTPUT_NAME, "datatype": output_datatype, "shape": [-1]}],
    }


def output_datatype(task: str, classes: Sequence[Any]) -> str:
    """The predictions tensor's datatype: FP64 for a regression, the class labels' otherwise."""
    if task != "classification":
        return "FP64"
    return datatype_of(np.asarray(list(classes))) if len(classes) else "BYTES"


# -- infer requests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InferCall:
    """A checked infer request: the columns to predict on, and what the answer must echo."""

    columns: Columns
    raw: dict[str, list[Any]]  # each input's values as sent, for the capture record
    id: str | None
    rows: int

    def capture_body(self, names: Sequence[str]) -> bytes:
        """The request as the ``dataframe_split`` body ``/invocations`` takes and captures, so
        the monitor reads requests from both protocols the same way."""
        data = list(zip(*(self.raw[c] for c in names), strict=True))
        return orjson.dumps({"dataframe_split": {"columns": list(names), "data": data}})


def parse_infer(
    body: bytes, header_length: str | None, content_encoding: str | None, schema: InputSchema
) -> InferCall:
    """Decode and check an infer body; raises ``RequestError`` naming the input at fault."""
    if content_encoding and content_encoding.strip().lower() not in ("identity", ""):
        raise UnsupportedMediaType(
            f"Content-Encoding {content_encoding!r} is not supported; send the body uncompressed"
        )
    json_part, binary = _split(body, header_length)
    try:
        doc = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise RequestError('the infer request must be an object with "inputs": [...]')
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError('"id" must be a string')
    _check_outputs(doc.get("outputs"))
    tensors: dict[str, list[Any]] = {}
    rows: int | None = None
    offset = 0
    for position, tensor in enumerate(doc["inputs"]):
        name, datatype, n = _header(tensor, position, schema)
        if name in tensors:
            raise RequestError(f"input {name!r} appears twice")
        if rows is None:
            rows = n
        elif n != rows:
            raise RequestError(
                f"input {name!r} has {n} rows; the inputs before it have {rows}; every input "
                "must have one value per row"
            )
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise RequestError(
                    f"input {name!r}: binary_data_size {size!r} is beyond the body's binary part "
                    f"({len(binary) - offset} bytes left)"
                )
            values = _from_binary(name, datatype, binary[offset : offset + size], n)
            offset += size
        elif "data" in tensor:
            values = _flatten(tensor["data"])
        else:
            raise RequestError(f"input {name!r} has neither data nor binary_data_size")
        if len(values) != n:
            raise RequestError(f"input {name!r}: its shape says {n} values; it has {len(values)}")
        tensors[name] = values
    for column in schema.columns:
        if column not in tensors:
            raise RequestError(
                f"missing input {column!r}; the model takes {', '.join(schema.columns)}"
            )
    if rows is None or rows == 0:
        raise RequestError("the inputs have no rows")
    checked = schema.check_columns(list(tensors), list(tensors.values()))
    return InferCall(checked, tensors, request_id, rows)


def infer_response(
    name: str, version: str, call: InferCall, predictions: np.ndarray, datatype: str
) -> bytes:
    out: dict[str, Any] = {
        "model_name": name,
        "model_version": version,
        "outputs": [
            {
                "name": OUTPUT_NAME,
                "datatype": datatype,
                "shape": [len(predictions)],
                "data": predictions.tolist(),
            }
        ],
    }
    if call.id is not None:
        out["id"] = call.id
    return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit() or int(header_length) > len(body):
        raise RequestError(
            f"Inference-Header-Content-Length {header_length!r} is not a length within the "
            f"body's {len(body)} bytes"
        )
    n = int(header_length)
    return body[:n], body[n:]


def _check_outputs(outputs: Any) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, list):
        raise RequestError('"outputs" must be a list of {"name": ...}')
    for output in outputs:
        name = output.get("name") if isinstance(output, dict) else None
        if name != OUTPUT_NAME:
            raise RequestError(f"unknown output {name!r}; the model has {OUTPUT_NAME!r}")


def _header(tensor: Any, position: int, schema: InputSchema) -> tuple[str, str, int]:
    """The input's name, datatype and row count, each checked against the schema."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise RequestError(f"inputs[{position}] must be an object with a name")
    name = tensor["name"]
    spec = schema.specs.get(name)
    if spec is None:
        raise RequestError(
            f"unknown input {name!r}; the model takes {', '.join(schema.columns)}", column=name
        )
    datatype = tensor.get("datatype")
    if datatype not in ACCEPTED[spec.type]:
        raise RequestError(
            f"input {name!r}: datatype {datatype!r} does not fit the {spec.type.value} column; "
            f"send {DATATYPES[spec.type]}",
            column=name,
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) not in (1, 2)
        or not all(type(d) is int and d >= 0 for d in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise RequestError(
            f"input {name!r}: shape {shape!r} is not [N] or [N, 1] (one value per row)",
            column=name,
        )
    return name, datatype, shape[0]


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        for item in data:
            flat.extend(_flatten(item))
        return flat
    return data


def _from_binary(name: str, datatype: str, raw: bytes, n: int) -> list[Any]:
    if datatype == "BYTES":
        return _bytes_elements(name, raw)
    dtype = _NUMPY[datatype]
    if len(raw) != n * dtype.itemsize:
        raise RequestError(
            f"input {name!r}: {len(raw)} bytes of {datatype} is not {n} values", column=name
        )
    return list(np.frombuffer(raw, dtype=dtype).tolist())


_LENGTH = struct.Struct("<I")


def _bytes_elements(name: str, raw: bytes) -> list[Any]:
    """BYTES in the binary extension: each element a uint32 little-endian length and its bytes.

    The loop only slices (its per-element cost is what the binary path adds); the elements are
    decoded together after it."""
    pieces: list[bytes] = []
    append, unpack = pieces.append, _LENGTH.unpack_from
    at, end = 0, len(raw)
    while at < end:
        if at + 4 > end:
            raise RequestError(f"input {name!r}: a BYTES element's length is cut off", column=name)
        (size,) = unpack(raw, at)
        at += 4
        stop = at + size
        if stop > end:
            raise RequestError(f"input {name!r}: a BYTES element is cut off", column=name)
        append(raw[at:stop])
        at = stop
    try:
        return [piece.decode("utf-8") for piece in pieces]
    except UnicodeDecodeError:
        raise RequestError(f"input {name!r}: a BYTES element is not UTF-8", column=name) from None
