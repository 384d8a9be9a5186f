"""The current window folded into per-feature state as it is read: bounded memory, mergeable.

``fold_window`` reads the capture files one line at a time (an S3 object is streamed, never
downloaded whole), parses each record as ``monitoring.current`` does (the same leniency, the
same skipped-and-counted malformed records) and folds every batch of rows into one state per
column. No list of the window's rows and no DataFrame of it is ever built: memory is bounded by
the model's width and ``exact_limit``, not by the traffic.

- A categorical column (and a boolean one) is a ``Counter`` of its values: exact at any size.
- A numeric column keeps its values exactly up to ``exact_limit`` rows, so that every statistic
  is the one ``monitoring.drift`` computes in memory, bit for bit. Past the limit the values go
  into a KLL quantile sketch (Apache DataSketches, ``kll_doubles_sketch``; Karnin, Lang and
  Liberty 2016), whose normalised rank error is at most ``sketch.normalized_rank_error(False)``
  with 99% confidence (about 0.28% at k = 1000, whatever the number of rows). Counts that do not
  need order statistics stay exact in both modes: rows, mean (a running sum), PSI's reference
  decile bins, and the distinct values while there are few (``DISTINCT_CAP``). The error bounds
  this gives KS and Wasserstein are in ``monitoring.drift.Sketched``.

States merge (``WindowState.merge``): counts add, exact values concatenate (and turn into a
sketch when the sum passes the limit), sketches merge with the same error bound. That is what
lets ``mlops monitor --shard i/n`` split a window by capture file across workers and
``--merge`` combine their partial states into one verdict (``save_state``/``load_state``).
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from monitoring.current import (
    SKIPPED_EXAMPLES,
    Malformed,
    MissingColumns,
    _record,
    _typed,
    numbers_of,
)
from monitoring.drift import Counts, Sketched
from monitoring.fast_records import FastReader, columns
from pipelines.core.errors import DataError

if TYPE_CHECKING:
    from monitoring.current import _Record
    from pipelines.core.datasets import ColumnSpec
    from pipelines.core.drift_rules import Kind
    from serving.capture import CaptureLine

# Rows a numeric column keeps exactly before switching to the sketch (8 bytes each).
EXACT_LIMIT = 1_000_000
# KLL's accuracy parameter: rank error ~1.7/k^0.9 (0.28% at 1000), a few thousand doubles kept.
SKETCH_K = 1000
# Points of the sketched quantile function the order-statistic tests are computed on; their
# spacing adds 1/QUANTILE_POINTS to the sketch's rank error.
QUANTILE_POINTS = 20_000
# Distinct numeric values counted exactly (all that the few-values tests need, and more).
DISTINCT_CAP = 1024
# Rows parsed before they are folded in one vectorised step (bounds the parse buffers).
BATCH_ROWS = 1 << 16
STATE_FORMAT = 1


@dataclass
class NumericState:
    """One numeric column: exact values up to ``exact_limit`` rows, then a KLL sketch."""

    edges: np.ndarray  # the reference's PSI bin edges
    exact_limit: int = EXACT_LIMIT
    chunks: list[np.ndarray] = field(default_factory=list)
    sketch: Any = None
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    values: dict[float, int] | None = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bins.size != self.edges.size + 1:
            self.bins = np.zeros(self.edges.size + 1, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        """Fold float64 values in (NaN already dropped)."""
        if not values.size:
            return
        self.count += int(values.size)
        self.total += float(values.sum())
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        # Bin k holds e(k-1) < v <= e(k), as drift.psi_from_sorted counts them.
        side = np.searchsorted(self.edges, values, side="left")
        self.bins += np.bincount(side, minlength=self.edges.size + 1)
        if self.values is not None:
            keys, counts = np.unique(values, return_counts=True)
            for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
                self.values[key] = self.values.get(key, 0) + n
            if len(self.values) > DISTINCT_CAP:
                self.values = None
        if self.sketch is not None:
            self.sketch.update(values)
            return
        self.chunks.append(values)
        if self.count > self.exact_limit:
            self._to_sketch()

    def _to_sketch(self) -> None:
        from datasketches import kll_doubles_sketch

        if self.sketch is None:
            self.sketch = kll_doubles_sketch(SKETCH_K)
        for chunk in self.chunks:
            self.sketch.update(chunk)
        self.chunks = []

    def merge(self, other: NumericState) -> None:
        self.count += other.count
        self.total += other.total
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        self.bins = self.bins + other.bins
        if self.values is None or other.values is None:
            self.values = None
        else:
            for key, n in other.values.items():
                self.values[key] = self.values.get(key, 0) + n
            if len(self.values) > DISTINCT_CAP:
                self.values = None
        if self.sketch is None and other.sketch is None and self.count <= self.exact_limit:
            self.chunks.extend(other.chunks)
            return
        self._to_sketch()
        if other.sketch is not None:
            self.sketch.merge(other.sketch)
        for chunk in other.chunks:
            self.sketch.update(chunk)

    @property
    def exact(self) -> bool:
        return self.sketch is None

    def current(self) -> np.ndarray | Sketched:
        """What ``monitoring.drift.compare`` takes: the exact values, or the sketch's summary."""
        if self.sketch is None:
            return np.concatenate(self.chunks) if self.chunks else np.zeros(0)
        grid = (np.arange(QUANTILE_POINTS) + 0.5) / QUANTILE_POINTS
        value_counts = None
        if self.values is not None:
            keys = np.array(sorted(self.values), dtype=np.float64)
            value_counts = (keys, np.array([self.values[k] for k in keys.tolist()]))
        return Sketched(
            rows=self.count,
            mean=self.total / self.count,
            bins=self.bins.copy(),
            quantiles=np.asarray(self.sketch.get_quantiles(grid), dtype=np.float64),
            rank_error=float(self.sketch.normalized_rank_error(False)) + 1 / QUANTILE_POINTS,
            low=self.low,
            high=self.high,
            value_counts=value_counts,
            summary=f"kll(k={self.sketch.k}, n={self.count})",
        )


@dataclass
class CategoricalState:
    """One categorical (or boolean) column: every value counted; exact at any size."""

    counter: Counter[Any] = field(default_factory=Counter)

    def add(self, values: Iterable[Any]) -> None:
        self.counter.update(values)

    def merge(self, other: CategoricalState) -> None:
        self.counter.update(other.counter)

    @property
    def exact(self) -> bool:
        return True

    @property
    def count(self) -> int:
        return sum(n for k, n in self.counter.items() if _present(k))

    def current(self) -> Counts:
        return Counts.of(list(self.counter), list(self.counter.values()))


State = NumericState | CategoricalState


def _present(value: Any) -> bool:
    return value is not None and value != "" and not (isinstance(value, float) and value != value)


@dataclass
class WindowState:
    """The whole window as folded state: one state per feature and for the predictions."""

    location: str
    features: dict[str, State]
    prediction: State
    records: int = 0
    rows: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    lacking: int = 0  # skipped because they lack the model's features (another model's?)
    missing: list[str] = field(default_factory=list)
    files: int = 0
    shard: str = "1/1"
    # (event id, row, time, prediction) of the rows whose event id has a label; only those.
    labelled: list[tuple[str, int, str, Any]] = field(default_factory=list)

    def merge(self, other: WindowState) -> None:
        if set(other.features) != set(self.features):
            raise ValueError("the partial states are of different features")
        for name, state in self.features.items():
            state.merge(other.features[name])  # type: ignore[arg-type]
        self.prediction.merge(other.prediction)  # type: ignore[arg-type]
        self.records += other.records
        self.rows += other.rows
        self.skipped += other.skipped
        room = SKIPPED_EXAMPLES - len(self.skipped_examples)
        self.skipped_examples.extend(other.skipped_examples[: max(room, 0)])
        self.lacking += other.lacking
        self.missing.extend(f for f in other.missing if f not in self.missing)
        self.files += other.files
        self.labelled.extend(other.labelled)

    def check(self, endpoint: str | None = None, since: datetime | None = None) -> None:
        """Bad input when nothing can be judged: the errors ``read_current`` raises."""
        where = self.location
        if self.records == 0 and self.missing and self.lacking == self.skipped:
            raise DataError(
                "the captured requests lack the model's feature column(s) "
                + ", ".join(self.missing),
                file=where,
            )
        if self.records == 0 and self.skipped:
            raise DataError(
                f"no valid capture record: {self.skipped} malformed record(s) skipped; the "
                "first: " + self.skipped_examples[0],
                file=where,
                field="--captures",
            )
        if self.records == 0:
            raise DataError(
                "no capture records found"
                + (f" for endpoint {endpoint}" if endpoint else "")
                + (f" since {since:%Y-%m-%dT%H:%M}" if since else ""),
                file=where,
                field="--captures",
            )
        if not self.rows:
            raise DataError(
                f"the {self.records} capture record(s) hold no rows", file=where, field="--captures"
            )

    def summaries(self) -> dict[str, str]:
        """Which summary each column was judged on, for the report."""
        out = {n: _summary(s) for n, s in self.features.items()}
        out["prediction"] = _summary(self.prediction)
        return out


def _summary(state: State) -> str:
    if isinstance(state, CategoricalState):
        return "exact counts"
    if state.sketch is None:
        return f"exact values ({state.count} rows)"
    error = float(state.sketch.normalized_rank_error(False)) + 1 / QUANTILE_POINTS
    return f"KLL sketch k={state.sketch.k} (rank error <= {error:.4f}, 99% confidence)"


def new_state(
    location: str,
    kinds: dict[str, Kind],
    edges: dict[str, np.ndarray],
    prediction_kind: Kind,
    prediction_edges: np.ndarray,
    exact_limit: int = EXACT_LIMIT,
) -> WindowState:
    def one(kind: Kind, cuts: np.ndarray) -> State:
        return NumericState(cuts, exact_limit) if kind == "numeric" else CategoricalState()

    features = {n: one(k, edges.get(n, np.zeros(0))) for n, k in kinds.items()}
    return WindowState(location, features, one(prediction_kind, prediction_edges))


def shard_files(files: list[str], shard: tuple[int, int]) -> list[str]:
    """The files of shard i of n (1-based): every n-th file in path order, deterministic."""
    index, total = shard
    return [name for k, name in enumerate(files) if k % total == index - 1]


def fold_window(
    state: WindowState,
    files: list[str],
    schema: dict[str, ColumnSpec],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    labelled_events: set[str] | None = None,
) -> WindowState:
    """Read ``files`` line by line into ``state``; malformed records are skipped and counted."""
    from serving.capture import CaptureLine, _s3, file_lines

    features = list(state.features)
    client = _s3() if any(f.startswith("s3://") for f in files) else None
    buffers: dict[str, list[Any]] = {f: [] for f in features}
    predictions: list[Any] = []
    # Rows of fast-read records (sequences in the features' order), turned into the column
    # buffers by one zip before any slow-read record's columns go in, so row order is kept.
    rows: list[Any] = []
    reader = FastReader(features, since, until)
    slow_rows = records = total = 0

    def drain() -> None:
        if rows:
            for feature, column in zip(features, columns(rows, len(features)), strict=True):
                buffers[feature].extend(column)
            rows.clear()

    def flush() -> None:
        nonlocal slow_rows
        drain()
        _flush(state, buffers, predictions, schema)
        slow_rows = 0

    try:
        for name in files:
            state.files += 1
            lines = file_lines(name, client)
            for number, data in reader.fold(
                lines, rows, predictions, labelled_events, state.labelled, BATCH_ROWS
            ):
                if number == 0:  # FULL
                    flush()
                    continue
                if not data.strip():
                    continue
                record = _lenient_record(state, CaptureLine(name, number, data), features,
                                         since, until)  # fmt: skip
                if record is None:
                    continue
                drain()
                for feature in features:
                    buffers[feature].extend(record.columns[feature])
                predictions.extend(record.predictions)
                if labelled_events is not None and record.event_id in labelled_events:
                    state.labelled.extend(
                        (record.event_id, row, record.stamp, value)
                        for row, value in enumerate(record.predictions)
                    )
                records += 1
                total += record.rows
                slow_rows += record.rows
                if slow_rows >= BATCH_ROWS:
                    flush()
    except OSError as exc:
        raise DataError(f"cannot read the captures: {exc}", file=state.location) from None
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):  # S3 refused or unreachable
            raise DataError(f"cannot read the captures: {exc}", file=state.location) from None
        raise
    state.records += records + reader.records
    state.rows += total + reader.rows_read
    flush()
    return state


def _lenient_record(
    state: WindowState,
    line: CaptureLine,
    features: list[str],
    since: datetime | None,
    until: datetime | None,
) -> _Record | None:
    """``current._record`` of a line; a malformed one is counted (and named) in ``state``."""
    try:
        return _record(line.data, features, since, until)
    except Malformed as exc:
        state.skipped += 1
        if len(state.skipped_examples) < SKIPPED_EXAMPLES:
            state.skipped_examples.append(f"{line.source}:{line.number}: {exc}")
        if isinstance(exc, MissingColumns):
            state.lacking += 1
            state.missing.extend(f for f in exc.columns if f not in state.missing)
        return None


def _flush(
    state: WindowState,
    buffers: dict[str, list[Any]],
    predictions: list[Any],
    schema: dict[str, ColumnSpec],
) -> None:
    """Type a batch of rows as ``read_current`` types the whole window, and fold it in."""
    for name, values in buffers.items():
        if values:
            _fold(state.features[name], _typed_batch(values, schema.get(name)))
            values.clear()
    if predictions:
        if isinstance(state.prediction, NumericState):
            import pandas as pd

            numbers = pd.to_numeric(pd.Series(predictions, dtype=object), errors="coerce")
            _fold(state.prediction, numbers.astype("float64"))
        else:
            _fold(state.prediction, predictions)
        predictions.clear()


def _typed_batch(values: list[Any], spec: ColumnSpec | None) -> Any:
    """``_typed`` without pandas for the batches that need none of its conversions.

    A numeric column of only ints and floats (no booleans, no text, no gaps) is those numbers,
    one of only text (CSV) is read as ``_typed`` reads text, without its pass for booleans;
    a categorical column is counted as it is (``_fold`` drops the absent values ``_typed``
    would have made None). Anything else goes through ``_typed``.
    """
    from pipelines.core.datasets import ColumnType

    if spec is not None and spec.type.is_numeric:
        kinds = set(map(type, values))
        if kinds <= {float, int}:
            return np.array(values, dtype=np.float64)
        if kinds == {str}:  # CSV: no booleans to set aside, so no pass over the values
            return numbers_of(values)
        return _typed(values, spec)
    if spec is not None and spec.type is ColumnType.BOOL:
        return _typed(values, spec)
    return values


def _fold(state: State, values: Any) -> None:
    if isinstance(state, NumericState):
        array = np.asarray(values, dtype=np.float64)
        state.add(array[~np.isnan(array)])
        return
    counted = Counter(values.tolist() if hasattr(values, "tolist") else values)
    for absent in [k for k in counted if not _present(k)]:
        del counted[absent]
    state.counter.update(counted)


# -- partial states on disk ----------------------------------------------------------------------


def save_state(state: WindowState, path: Path, reference: str) -> None:
    """Write a partial state (``--state-out``): one .npz, no pickles; written whole or not at all.

    ``reference`` names the reference it was folded against (its PSI edges are in the state),
    so that ``--merge`` refuses partial states of different references.
    """
    arrays: dict[str, np.ndarray] = {}
    # Arrays are stored under slot names (f0, f1, ..., p), never under column names, which
    # could be anything.
    columns = [
        [name, _column_meta(column, f"f{i}", arrays)]
        for i, (name, column) in enumerate(state.features.items())
    ]
    meta = {
        "format": STATE_FORMAT,
        "reference": reference,
        "location": state.location,
        "shard": state.shard,
        "records": state.records,
        "rows": state.rows,
        "skipped": state.skipped,
        "skipped_examples": state.skipped_examples,
        "lacking": state.lacking,
        "missing": state.missing,
        "files": state.files,
        "labelled": state.labelled,
        "columns": columns,
        "prediction": _column_meta(state.prediction, "p", arrays),
    }
    arrays["meta"] = np.frombuffer(orjson.dumps(meta), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)


def _column_meta(column: State, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if isinstance(column, CategoricalState):
        return {"kind": "categorical", "counts": [[k, n] for k, n in column.counter.items()]}
    arrays[f"{key}.edges"] = column.edges
    arrays[f"{key}.bins"] = column.bins
    if column.sketch is not None:
        arrays[f"{key}.sketch"] = np.frombuffer(column.sketch.serialize(), dtype=np.uint8)
    else:
        arrays[f"{key}.values"] = np.concatenate(column.chunks) if column.chunks else np.zeros(0)
    return {
        "kind": "numeric",
        "exact_limit": column.exact_limit,
        "count": column.count,
        "total": column.total,
        "low": column.low if math.isfinite(column.low) else None,
        "high": column.high if math.isfinite(column.high) else None,
        "distinct": None if column.values is None else list(column.values.items()),
    }


def load_state(path: Path) -> tuple[WindowState, str]:
    """A partial state written by ``save_state`` and the reference it was folded against.

    Anything else (not a state file, another format) is a ``DataError`` naming the file.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = orjson.loads(arrays["meta"].tobytes())
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"state format {meta.get('format')!r}, expected {STATE_FORMAT}")
        columns = {n: _column(f"f{i}", v, arrays) for i, (n, v) in enumerate(meta["columns"])}
        prediction = _column("p", meta["prediction"], arrays)
        state = WindowState(
            meta["location"], columns, prediction, meta["records"], meta["rows"],
            meta["skipped"], meta["skipped_examples"], meta["lacking"], meta["missing"],
            meta["files"], meta["shard"], [tuple(r) for r in meta["labelled"]],
        )  # fmt: skip
        return state, str(meta["reference"])
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise DataError(f"not a monitor state file: {exc}", file=path, field="--merge") from None


def _column(key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> State:
    if meta["kind"] == "categorical":
        return CategoricalState(Counter({k: n for k, n in meta["counts"]}))
    sketch = None
    chunks: list[np.ndarray] = []
    if f"{key}.sketch" in arrays:
        from datasketches import kll_doubles_sketch

        sketch = kll_doubles_sketch.deserialize(arrays[f"{key}.sketch"].tobytes())
    elif arrays[f"{key}.values"].size:
        chunks = [arrays[f"{key}.values"].astype(np.float64)]
    distinct = meta["distinct"]
    return NumericState(
        edges=arrays[f"{key}.edges"],
        exact_limit=int(meta["exact_limit"]),
        chunks=chunks,
        sketch=sketch,
        count=int(meta["count"]),
        total=float(meta["total"]),
        low=math.inf if meta["low"] is None else float(meta["low"]),
        high=-math.inf if meta["high"] is None else float(meta["high"]),
        bins=arrays[f"{key}.bins"].astype(np.int64),
        values=None if distinct is None else {float(k): int(n) for k, n in distinct},
    )
