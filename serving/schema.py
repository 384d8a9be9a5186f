"""Parse a request body into column arrays and check it against the model's input schema.

Accepted bodies:

- ``application/json`` in MLflow's shapes: ``{"dataframe_split": {"columns": [...], "data":
  [[...], ...]}}`` (``columns`` may be left out: then values are in the model's column order),
  ``{"dataframe_records": [{...}, ...]}`` and ``{"instances": [...]}`` (records, or lists of
  values in the model's column order).
- ``text/csv`` with a header row naming the columns, in any order. The header is required:
  without it a CSV whose columns were reordered would be scored silently wrong.

Every column must be present and no other; values are checked for type, nulls, range and
category against the dataset schema the model carries. The first problem found is raised as a
``RequestError`` that names the column and the row, which the server answers as a 4xx. The
schema is compiled once, so a request only pays for the checks themselves.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from pipelines.core.datasets import ColumnSpec, ColumnType

JSON = "application/json"
CSV = "text/csv"
JSON_SHAPES = ("dataframe_split", "dataframe_records", "instances")

# One array per input column, all the same length: what the server predicts on.
Columns = Mapping[str, np.ndarray]

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBER = (int, float)
_NONE = type(None)


class RequestError(Exception):
    """Bad input: answered with ``status`` and a JSON body naming the column or the problem."""

    status = 400

    def __init__(self, message: str, column: str | None = None, row: int | None = None) -> None:
        self.message = message
        self.column = column
        self.row = row
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.column is not None:
            out["column"] = self.column
        if self.row is not None:
            out["row"] = self.row
        return out


class UnsupportedMediaType(RequestError):
    status = 415


class PayloadTooLarge(RequestError):
    status = 413


class NotAcceptable(RequestError):
    status = 406


def media_type(header: str | None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``."""
    return (header or "").split(";", 1)[0].strip().lower()


Converter = Callable[[str, Sequence[Any], bool], np.ndarray]


class InputSchema:
    """The model's input columns and their rules, compiled once."""

    def __init__(self, columns: list[str], specs: dict[str, ColumnSpec]) -> None:
        self.columns = list(columns)
        self.specs = {c: specs[c] for c in self.columns}
        self._expected = set(self.columns)
        self._allowed = {
            c: frozenset(s.categories or ()) for c, s in self.specs.items() if s.categories
        }

    # -- entry point ---------------------------------------------------------------------------

    def parse(self, body: bytes, content_type: str | None) -> pd.DataFrame:
        """One checked DataFrame, columns in the model's order; raises RequestError."""
        return estimator_frame(self.parse_columns(body, content_type))

    def parse_columns(self, body: bytes, content_type: str | None) -> Columns:
        """The checked column arrays, in the model's order; raises RequestError.

        The server works on these: building a DataFrame costs more than a fast predict.
        """
        kind = media_type(content_type)
        if kind == JSON:
            names, values = self._json_columns(body)
            from_text = False
        elif kind == CSV:
            names, values = self._csv_columns(body)
            from_text = True
        else:
            raise UnsupportedMediaType(
                f"content type {content_type or '(none)'!r} is not supported; send {JSON} or {CSV}"
            )
        return self._check(names, values, from_text)

    def check_columns(self, names: list[str], values: list[Sequence[Any]]) -> Columns:
        """Check values already split by column (Python values, as JSON decodes them).

        For protocols that send columns themselves (``serving.oip``); raises RequestError.
        """
        return self._check(names, values, from_text=False)

    # -- JSON -----------------------------------------------------------------------------------

    def _json_columns(self, body: bytes) -> tuple[list[str], list[Sequence[Any]]]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(f"malformed JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise RequestError(f"the JSON body must be an object with one of {JSON_SHAPES}")
        shapes = [k for k in JSON_SHAPES if k in doc]
        unknown = sorted(set(doc) - set(JSON_SHAPES))
        if len(shapes) != 1 or unknown:
            raise RequestError(
                f"the JSON body must have exactly one of {', '.join(JSON_SHAPES)}"
                + (f"; unknown key(s): {', '.join(unknown)}" if unknown else "")
            )
        shape = shapes[0]
        payload = doc[shape]
        if shape == "dataframe_split":
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise RequestError('dataframe_split must be {"columns": [...], "data": [[...]]}')
            names = payload.get("columns", self.columns)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise RequestError("dataframe_split.columns must be a list of column names")
            return names, self._rows_to_columns(payload["data"], names, shape)
        if not isinstance(payload, list) or not payload:
            raise RequestError(f"{shape} must be a non-empty list of rows")
        if shape == "instances" and isinstance(payload[0], list):
            return self.columns, self._rows_to_columns(payload, self.columns, shape)
        return self._records_to_columns(payload, shape)

    def _rows_to_columns(
        self, rows: list[Any], names: list[str], shape: str
    ) -> list[Sequence[Any]]:
        if not rows:
            raise RequestError(f"{shape} has no rows")
        width = len(names)
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                raise RequestError(
                    f"{shape}: row {i} must be a list of {width} values ({', '.join(names)})",
                    row=i,
                )
        return list(zip(*rows, strict=True))

    def _records_to_columns(
        self, records: list[Any], shape: str
    ) -> tuple[list[str], list[Sequence[Any]]]:
        expected = self._expected
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise RequestError(f"{shape}: row {i} must be an object of column: value", row=i)
            if record.keys() != expected:
                keys = set(record)
                self._check_names([*keys], row=i)
        return self.columns, [[r[c] for r in records] for c in self.columns]

    # -- CSV ------------------------------------------------------------------------------------

    def _csv_columns(self, body: bytes) -> tuple[list[str], list[Sequence[Any]]]:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RequestError(f"the CSV body is not UTF-8: {exc}") from None
        try:
            rows = [row for row in csv.reader(io.StringIO(text)) if row]
        except csv.Error as exc:
            raise RequestError(f"malformed CSV: {exc}") from None
        if not rows:
            raise RequestError("the CSV body is empty; send a header row and at least one row")
        header = [h.strip() for h in rows[0]]
        if not self._expected.intersection(header):
            raise RequestError(
                "the first CSV row must be a header naming the columns: " + ",".join(self.columns)
            )
        data = rows[1:]
        if not data:
            raise RequestError("the CSV body has a header but no rows")
        width = len(header)
        for i, row in enumerate(data):
            if len(row) != width:
                raise RequestError(
                    f"CSV row {i} has {len(row)} fields; the header has {width}", row=i
                )
        return header, list(zip(*data, strict=True))

    # -- checks ---------------------------------------------------------------------------------

    def _check_names(self, names: list[str], row: int | None = None) -> None:
        at = f" (row {row})" if row is not None else ""
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise RequestError(f"column {name!r} appears twice{at}", column=name, row=row)
            seen.add(name)
        for name in self.columns:
            if name not in seen:
                raise RequestError(f"missing column {name!r}{at}", column=name, row=row)
        for name in names:
            if name not in self._expected:
                raise RequestError(
                    f"unexpected column {name!r}{at}; the model takes {', '.join(self.columns)}",
                    column=name,
                    row=row,
                )

    def _check(self, names: list[str], values: list[Sequence[Any]], from_text: bool) -> Columns:
        if names != self.columns:
            self._check_names(names)
            by_name = dict(zip(names, values, strict=True))
            values = [by_name[c] for c in self.columns]
        return {
            name: self._convert(name, self.specs[name], column, from_text)
            for name, column in zip(self.columns, values, strict=True)
        }

    def _convert(
        self, name: str, spec: ColumnSpec, values: Sequence[Any], from_text: bool
    ) -> np.ndarray:
        if spec.type.is_numeric:
            return self._numeric(name, spec, values, from_text)
        if spec.type is ColumnType.BOOL:
            return self._bool(name, spec, values, from_text)
        return self._text(name, spec, values, from_text)

    def _numeric(
        self, name: str, spec: ColumnSpec, values: Sequence[Any], from_text: bool
    ) -> np.ndarray:
        if from_text:
            try:
                arr = np.array(values, dtype=np.float64)
            except ValueError:
                arr = np.array([_parse_float(name, i, v) for i, v in enumerate(values)])
        else:
            kinds = set(map(type, values))
            if not kinds <= {int, float, _NONE}:
                for i, v in enumerate(values):
                    if type(v) not in (int, float, _NONE):
                        raise RequestError(
                            f"column {name!r}: row {i}: expected a number, got {v!r}",
                            column=name,
                            row=i,
                        )
            arr = np.array(values, dtype=np.float64)  # None -> nan
        nulls = np.isnan(arr)
        if nulls.any() and not spec.nullable:
            i = int(np.argmax(nulls))
            raise RequestError(
                f"column {name!r}: row {i}: a value is required (the column is not nullable)",
                column=name,
                row=i,
            )
        infinite = np.isinf(arr)
        if infinite.any():
            i = int(np.argmax(infinite))
            raise RequestError(
                f"column {name!r}: row {i}: {arr[i]} is not a finite number", column=name, row=i
            )
        # Tree models compute in float32, where a larger number becomes infinity and is refused
        # by the estimator: say so here, as a 400 naming the value, not as a 500 from predict.
        huge = np.abs(arr) > _FLOAT32_MAX
        if huge.any():
            i = int(np.argmax(huge))
            raise RequestError(
                f"column {name!r}: row {i}: {arr[i]:g} is beyond {_FLOAT32_MAX:.3g}, the largest "
                "number a model takes",
                column=name,
                row=i,
            )
        if spec.min is not None and (low := arr < spec.min).any():
            i = int(np.argmax(low))
            raise RequestError(
                f"column {name!r}: row {i}: {arr[i]:g} is below the minimum {spec.min:g}",
                column=name,
                row=i,
            )
        if spec.max is not None and (high := arr > spec.max).any():
            i = int(np.argmax(high))
            raise RequestError(
                f"column {name!r}: row {i}: {arr[i]:g} is above the maximum {spec.max:g}",
                column=name,
                row=i,
            )
        if spec.type is ColumnType.INT:
            fractional = ~nulls & (arr != np.floor(arr))
            if fractional.any():
                i = int(np.argmax(fractional))
                raise RequestError(
                    f"column {name!r}: row {i}: expected an integer, got {arr[i]:g}",
                    column=name,
                    row=i,
                )
            if not nulls.any():
                return arr.astype(np.int64)
        return arr

    def _bool(
        self, name: str, spec: ColumnSpec, values: Sequence[Any], from_text: bool
    ) -> np.ndarray:
        out: list[Any] = []
        for i, v in enumerate(values):
            if from_text and isinstance(v, str):
                lowered = v.strip().lower()
                v = {"true": True, "1": True, "false": False, "0": False, "": None}.get(lowered, v)
            if v is None:
                if not spec.nullable:
                    raise RequestError(
                        f"column {name!r}: row {i}: a value is required (the column is not "
                        "nullable)",
                        column=name,
                        row=i,
                    )
            elif type(v) is not bool:
                raise RequestError(
                    f"column {name!r}: row {i}: expected true or false, got {v!r}",
                    column=name,
                    row=i,
                )
            out.append(v)
        return np.array(out, dtype=object if None in out else bool)

    def _text(
        self, name: str, spec: ColumnSpec, values: Sequence[Any], from_text: bool
    ) -> np.ndarray:
        items = list(values)
        kinds = set(map(type, items))
        if from_text and "" in items:
            items = [None if v == "" else v for v in items]
            kinds.add(_NONE)
        if not kinds <= {str, _NONE}:
            for i, v in enumerate(items):
                if not isinstance(v, str | _NONE):
                    raise RequestError(
                        f"column {name!r}: row {i}: expected a string, got {v!r}",
                        column=name,
                        row=i,
                    )
        if _NONE in kinds and not spec.nullable:
            i = items.index(None)
            raise RequestError(
                f"column {name!r}: row {i}: a value is required (the column is not nullable)",
                column=name,
                row=i,
            )
        allowed = self._allowed.get(name)
        if allowed is not None and not allowed.issuperset(set(items) - {None}):
            for i, v in enumerate(items):
                if v is not None and v not in allowed:
                    raise RequestError(
                        f"column {name!r}: row {i}: {v!r} is not one of the categories "
                        f"{', '.join(spec.categories or ())}",
                        column=name,
                        row=i,
                    )
        if spec.type is ColumnType.DATETIME:
            try:
                return np.asarray(pd.to_datetime(items, errors="raise"))
            except (ValueError, TypeError) as exc:
                raise RequestError(
                    f"column {name!r}: not a date and time: {exc}", column=name
                ) from None
        return np.array(items, dtype=object)


def estimator_frame(data: Columns) -> pd.DataFrame:
    """The checked columns as the DataFrame the estimator was trained on.

    Training (``pipelines.stages.validate``) hands scikit-learn a text column's gaps as NaN;
    requests carry None. ``SimpleImputer`` counts only NaN as missing in an object column,
    and pandas turns None into NaN only in a column that also holds text: a column of
    nothing but None (a one-row request with a gap) was not imputed but encoded as an
    unknown category, unlike training and ``serving.fast_path``. Every predict through the
    estimator goes through here.
    """
    out: dict[str, np.ndarray] = {}
    for name, values in data.items():
        if values.dtype == object:
            missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
            if missing.any():
                values = np.where(missing, np.nan, values)
        out[name] = values
    return pd.DataFrame(out, copy=False)


def _parse_float(name: str, row: int, value: str) -> float:
    text = value.strip()
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise RequestError(
            f"column {name!r}: row {row}: expected a number, got {value!r}", column=name, row=row
        ) from None
