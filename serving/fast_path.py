"""A faster predict for the pipelines the template trains, proven equal to the estimator's own.

scikit-learn spends most of a one-row predict on bookkeeping, not arithmetic: the
ColumnTransformer goes through pandas and validates at every step (about 2 ms here), and a
forest dispatches each of its trees through joblib (about 2 ms for 100 trees), while the trees
themselves need about 0.3 ms. For the shapes ``pipelines.core.estimators.build_pipeline`` produces,
this module does the same arithmetic directly on the request's column arrays, with the fitted
objects' own learned values and each tree's compiled ``tree_.predict``, in scikit-learn's order,
so the answers are the same numbers, not nearly the same ones.

Nothing is taken on trust: ``compile_predict`` returns None for any other shape, and
``verified`` adopts the fast path only after it gave exactly the estimator's answers on probe
rows (the model's input example, every declared category, missing values, values across each
column's range). Otherwise the estimator's own predict serves and the log says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.core.datasets import ColumnSpec, ColumnType
from serving.schema import Columns, estimator_frame

log = logging.getLogger("serving.fast_path")

ColumnPredict = Callable[[Columns], np.ndarray]

PROBE_ROWS = 256
_UNKNOWN_CATEGORY = "__mlops_probe_unknown_category__"


class Unsupported(Exception):
    """The pipeline has a part this module does not reproduce exactly."""


# -- preprocessing --------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


@dataclass(frozen=True)
class _NumericBlock:
    columns: list[str]
    fill: np.ndarray | None  # SimpleImputer(strategy="median").statistics_
    scaler: Any  # a fitted StandardScaler or MinMaxScaler, or None

    def transform(self, data: Columns) -> np.ndarray:
        block = np.column_stack([np.asarray(data[c], dtype=np.float64) for c in self.columns])
        if self.fill is not None:
            missing = np.isnan(block)
            if missing.any():
                block = np.where(missing, self.fill, block)
        scaler = self.scaler
        if scaler is None:
            return block
        # The same in-place operations, in the same order, as the scalers' own transform.
        if type(scaler).__name__ == "StandardScaler":
            if scaler.with_mean:
                block = block - scaler.mean_
            if scaler.with_std:
                block = block / scaler.scale_
            return block
        block = block * scaler.scale_
        block += scaler.min_
        return block


@dataclass(frozen=True)
class _CategoricalBlock:
    columns: list[str]
    fill: list[Any] | None  # SimpleImputer(strategy="most_frequent").statistics_
    lookups: list[dict[Any, int]]
    widths: list[int]
    one_hot: bool

    def transform(self, data: Columns) -> np.ndarray:
        n = len(data[self.columns[0]])
        width = sum(self.widths) if self.one_hot else len(self.columns)
        out = np.zeros((n, width), dtype=np.float64)
        offset = 0
        for i, column in enumerate(self.columns):
            lookup = self.lookups[i]
            values = data[column]
            for row in range(n):
                value = values[row]
                if self.fill is not None and _is_missing(value):
                    value = self.fill[i]
                code = lookup.get(value, -1)
                if self.one_hot:
                    if code >= 0:  # an unknown category is all zeros (handle_unknown="ignore")
                        out[row, offset + code] = 1.0
                else:
                    out[row, i] = code  # unknown_value=-1
            offset += self.widths[i]
        return out


def _steps(transformer: Any) -> list[Any]:
    if type(transformer).__name__ == "Pipeline":
        return [step for _, step in transformer.steps]
    return [transformer]


def _numeric_block(transformer: Any, columns: list[str]) -> _NumericBlock:
    steps = _steps(transformer)
    fill, scaler = None, None
    if steps and type(steps[0]).__name__ == "FunctionTransformer":
        if steps[0].func is not None or len(steps) > 1:
            raise Unsupported("a function transformer")
        return _NumericBlock(columns, None, None)
    if steps and type(steps[0]).__name__ == "SimpleImputer":
        imputer = steps.pop(0)
        if imputer.strategy != "median" or imputer.add_indicator:
            raise Unsupported(f"SimpleImputer(strategy={imputer.strategy!r})")
        if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
            raise Unsupported("an imputer for values other than NaN")
        fill = np.asarray(imputer.statistics_, dtype=np.float64)
    if steps:
        scaler = steps.pop(0)
        kind = type(scaler).__name__
        if kind == "MinMaxScaler" and scaler.clip:
            raise Unsupported("MinMaxScaler(clip=True)")
        if kind not in ("StandardScaler", "MinMaxScaler") or steps:
            raise Unsupported(f"numeric step {kind}")
    return _NumericBlock(columns, fill, scaler)


def _categorical_block(transformer: Any, columns: list[str]) -> _CategoricalBlock:
    steps = _steps(transformer)
    fill = None
    if steps and type(steps[0]).__name__ == "SimpleImputer":
        imputer = steps.pop(0)
        if imputer.strategy != "most_frequent" or imputer.add_indicator:
            raise Unsupported(f"SimpleImputer(strategy={imputer.strategy!r})")
        fill = list(imputer.statistics_)
    if len(steps) != 1:
        raise Unsupported("a categorical pipeline other than [imputer,] encoder")
    encoder = steps[0]
    kind = type(encoder).__name__
    if kind == "OneHotEncoder":
        if encoder.drop is not None or encoder.handle_unknown != "ignore":
            raise Unsupported("OneHotEncoder with drop or without handle_unknown='ignore'")
        if encoder.sparse_output or getattr(encoder, "_infrequent_enabled", False):
            raise Unsupported("a sparse or infrequent-category OneHotEncoder")
        if np.dtype(encoder.dtype) != np.float64:
            raise Unsupported(f"OneHotEncoder(dtype={encoder.dtype})")
    elif kind == "OrdinalEncoder":
        if encoder.handle_unknown != "use_encoded_value" or encoder.unknown_value != -1:
            raise Unsupported("OrdinalEncoder without unknown_value=-1")
        if getattr(encoder, "_infrequent_enabled", False):
            raise Unsupported("an infrequent-category OrdinalEncoder")
    else:
        raise Unsupported(f"categorical step {kind}")
    lookups, widths = [], []
    for categories in encoder.categories_:
        if any(_is_missing(c) for c in categories):
            raise Unsupported("a missing value among the categories")
        lookups.append({c: i for i, c in enumerate(categories.tolist())})
        widths.append(len(categories))
    return _CategoricalBlock(columns, fill, lookups, widths, kind == "OneHotEncoder")


def _blocks(preprocess: Any) -> list[_NumericBlock | _CategoricalBlock]:
    if type(preprocess).__name__ != "ColumnTransformer":
        raise Unsupported(f"preprocessing step {type(preprocess).__name__}")
    if preprocess.sparse_output_ or getattr(preprocess, "_output_config", {}).get("transform"):
        raise Unsupported("sparse or pandas ColumnTransformer output")
    blocks: list[_NumericBlock | _CategoricalBlock] = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder":
            if transformer != "drop":
                raise Unsupported("a remainder other than drop")
            continue
        if transformer == "drop" or not len(columns):
            continue
        names = [str(c) for c in columns]
        if name == "numeric":
            blocks.append(_numeric_block(transformer, names))
        elif name == "categorical":
            blocks.append(_categorical_block(transformer, names))
        else:
            raise Unsupported(f"a transformer named {name!r}")
    if not blocks:
        raise Unsupported("no columns")
    return blocks


# -- trees ----------------------------------------------------------------------------------------

_FORESTS = {
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
}
_TREES = {"DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier"}


def _tree_predict(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Reproduce ``estimator.predict`` for a fitted scikit-learn forest or tree, else its own."""
    kind = type(estimator).__name__
    if getattr(estimator, "n_outputs_", 1) != 1 or type(estimator).__module__.split(".")[0] != (
        "sklearn"
    ):
        return _own_predict(estimator)
    if kind in _FORESTS:
        trees = [e.tree_ for e in estimator.estimators_]
        if kind.endswith("Classifier"):
            classes, width = estimator.classes_, int(estimator.n_classes_)

            def forest_classify(x: np.ndarray) -> np.ndarray:
                # ForestClassifier.predict_proba: sum the trees in order, then divide once.
                proba = np.zeros((x.shape[0], width), dtype=np.float64)
                for tree in trees:
                    proba += tree.predict(x)[:, :width]
                proba /= len(trees)
                return classes.take(np.argmax(proba, axis=1), axis=0)

            return _on_float32(forest_classify, estimator)

        def forest_regress(x: np.ndarray) -> np.ndarray:
            total = np.zeros(x.shape[0], dtype=np.float64)
            for tree in trees:
                total += tree.predict(x)[:, 0]
            total /= len(trees)
            return total

        return _on_float32(forest_regress, estimator)
    if kind in _TREES:
        tree = estimator.tree_
        if kind.endswith("Classifier"):
            classes = estimator.classes_
            return _on_float32(
                lambda x: classes.take(np.argmax(tree.predict(x), axis=1), axis=0), estimator
            )
        return _on_float32(lambda x: tree.predict(x)[:, 0], estimator)
    return _own_predict(estimator)


def _on_float32(
    predict: Callable[[np.ndarray], np.ndarray], estimator: Any
) -> Callable[[np.ndarray], np.ndarray]:
    def run(matrix: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # an overflow is handled just below
            single = np.ascontiguousarray(matrix, dtype=np.float32)
        if not np.isfinite(single).all():
            # Missing values, and numbers beyond float32 (1e39 becomes inf, which the
            # estimator refuses), take the estimator's own route, errors included.
            return np.asarray(estimator.predict(matrix))
        return predict(single)

    return run


def _own_predict(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    return lambda matrix: np.asarray(estimator.predict(matrix))


# -- assembly -------------------------------------------------------------------------------------


def compile_predict(estimator: Any) -> ColumnPredict:
    """A predict over column arrays doing what ``estimator.predict`` does; raises Unsupported."""
    if type(estimator).__name__ != "Pipeline" or len(estimator.steps) != 2:
        raise Unsupported("not a two-step preprocess + estimator Pipeline")
    (_, preprocess), (_, final) = estimator.steps
    blocks = _blocks(preprocess)
    predict_matrix = _tree_predict(final)

    def predict(data: Columns) -> np.ndarray:
        parts = [block.transform(data) for block in blocks]
        matrix = parts[0] if len(parts) == 1 else np.hstack(parts)
        return predict_matrix(matrix)

    return predict


def probe_columns(
    columns: list[str],
    schema: dict[str, ColumnSpec],
    example: Mapping[str, list[Any]] | None,
    rows: int = PROBE_ROWS,
) -> dict[str, np.ndarray]:
    """Rows that exercise every column: the example's values, the ranges, categories, gaps."""
    rng = np.random.default_rng(0)
    data: dict[str, np.ndarray] = {}
    for name in columns:
        spec = schema[name]
        seen = [v for v in (example or {}).get(name, []) if not _is_missing(v)]
        if spec.type.is_numeric:
            values = _numeric_probes(spec, seen, rows, rng)
            if spec.type is ColumnType.INT:
                values = np.round(values)
            column: list[Any] = values.tolist()
        elif spec.type is ColumnType.BOOL:
            column = [i % 2 == 0 for i in range(rows)]
        elif spec.categories:
            column = [spec.categories[i % len(spec.categories)] for i in range(rows)]
        else:
            pool = [*seen, _UNKNOWN_CATEGORY] if seen else [_UNKNOWN_CATEGORY]
            column = [pool[i % len(pool)] for i in range(rows)]
        column[: len(seen)] = seen[:rows]
        if spec.nullable:  # a gap in a different row for each column
            column[-1 - columns.index(name) % 7] = None
        if spec.type.is_numeric:
            data[name] = np.array(column, dtype=np.float64)
        else:
            data[name] = np.array(column, dtype=object)
    return data


def _numeric_probes(
    spec: ColumnSpec, seen: list[Any], rows: int, rng: np.random.Generator
) -> np.ndarray:
    known = np.asarray(seen, dtype=np.float64)
    low = spec.min if spec.min is not None else (known.min() if known.size else -1.0)
    high = spec.max if spec.max is not None else (known.max() if known.size else 1.0)
    spread = max(high - low, abs(high), 1.0)
    if spec.min is None:
        low -= spread
    if spec.max is None:
        high += spread
    return rng.uniform(low, high, rows)


def verified(
    estimator: Any,
    columns: list[str],
    schema: dict[str, ColumnSpec],
    example: Mapping[str, list[Any]] | None = None,
) -> ColumnPredict | None:
    """The fast predict if it gives exactly the estimator's answers on probe rows, else None."""
    if any(schema[c].type is ColumnType.DATETIME for c in columns):
        log.info("fast path off: a date-time column")
        return None
    try:
        fast = compile_predict(estimator)
    except (Unsupported, AttributeError) as exc:
        log.info("fast path off: %s", exc)
        return None
    probes = probe_columns(columns, schema, example)
    frame = estimator_frame(probes)  # what the server's estimator route predicts on
    try:
        expected = np.asarray(estimator.predict(frame))
    except Exception as exc:  # probes the estimator itself refuses: no way to compare
        log.info("fast path off: the estimator refused the probe rows (%s)", exc)
        return None
    try:
        got = np.asarray(fast(probes))
    except Exception as exc:
        log.warning("fast path off: it failed on the probe rows (%s)", exc)
        return None
    same = got.shape == expected.shape and bool(
        np.array_equal(got, expected, equal_nan=got.dtype.kind == "f")
    )
    if not same:
        log.warning("fast path off: it differs from the estimator's predict on the probe rows")
        return None
    return fast
