"""Data validation: check a dataset, and the columns one model uses, before any training.

Every violation is collected (column, rule, how many rows, a few examples) rather than stopping
at the first, so a data scientist fixes the data in one pass.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.core.datasets import (
    BOOL_FALSE,
    BOOL_TRUE,
    ColumnSpec,
    ColumnType,
    Dataset,
    fingerprint_bytes,
)
from pipelines.core.errors import DataError, Rejected

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.core.definitions import Model

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Violation:
    column: str | None
    rule: str
    count: int
    message: str
    examples: list[str] = field(default_factory=list)

    def render(self) -> str:
        where = f"column {_shown(self.column)!r}" if self.column else "dataset"
        text = f"{where}: {self.rule}: {self.message} ({self.count} row{'s' * (self.count != 1)})"
        if self.examples:
            text += "; e.g. " + ", ".join(_shown(e) for e in self.examples)
        return text


SHOWN_CHARACTERS = 60
MAX_EXTRA_COLUMNS_LISTED = 20


def _shown(text: str) -> str:
    """Data echoed in a message, cut short: CI logs are public and a file may hold anything."""
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "..."


@dataclass
class ValidationReport:
    dataset: str
    source: str
    rows: int
    fingerprint: str
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "source": self.source,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
            "passed": self.ok,
            "violations": [v.__dict__ for v in self.violations],
        }

    def raise_if_failed(self, definition_file: str) -> None:
        if self.ok:
            return
        lines = "\n".join(f"  - {v.render()}" for v in self.violations)
        raise Rejected(
            f"data validation failed for dataset {self.dataset!r} ({self.source}) with "
            f"{len(self.violations)} violation(s):\n{lines}",
            file=definition_file,
        )


def read_raw_frame(dataset: Dataset, data: bytes) -> pd.DataFrame:
    import pandas as pd

    try:
        if dataset.definition.file_format == "parquet":
            return pd.read_parquet(io.BytesIO(data))
        # Read every column as text so that type problems are found by our rules, with row
        # numbers, instead of pandas silently inferring object columns.
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=True, encoding="utf-8-sig")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise DataError(
            f"cannot parse {dataset.source} as {dataset.definition.file_format}: {exc}",
            file=dataset.path,
            field="source",
        ) from exc


def validate_dataset(dataset: Dataset) -> tuple[pd.DataFrame, ValidationReport]:
    """Read the dataset once, check it against its schema, and return it typed."""
    typed, _, report = _validate(dataset)
    return typed, report


def _validate(dataset: Dataset) -> tuple[pd.DataFrame, pd.DataFrame, ValidationReport]:
    """Typed frame, the mask of values missing in the source itself, and the report.

    The typed frame also has NaN where a value was present but of the wrong type; rules about
    missing values use the mask so one bad cell is never reported twice.
    """
    data = dataset.read_bytes()
    raw = read_raw_frame(dataset, data)
    report = ValidationReport(dataset.name, dataset.source, len(raw), fingerprint_bytes(data))
    definition = dataset.definition
    if report.fingerprint != definition.fingerprint:
        report.violations.append(
            Violation(
                None,
                "fingerprint",
                len(raw),
                f"the data's fingerprint {report.fingerprint} differs from the one declared in "
                f"{dataset.path} ({definition.fingerprint}); if the change is intended, run "
                f"`mlops dataset-fingerprint {dataset.name} --write` and commit it",
            )
        )
    bounds = definition.rows
    if len(raw) < bounds.min or (bounds.max is not None and len(raw) > bounds.max):
        report.violations.append(
            Violation(
                None,
                "row_count",
                len(raw),
                f"expected between {bounds.min} and {bounds.max or 'any number of'} rows",
            )
        )
    missing = [c for c in definition.columns if c not in raw.columns]
    for column in missing:
        report.violations.append(Violation(column, "missing_column", len(raw), "column is absent"))
    extra = [str(c) for c in raw.columns if c not in definition.columns]
    if extra and not definition.allow_extra_columns:
        if len(extra) > MAX_EXTRA_COLUMNS_LISTED:
            report.violations.append(
                Violation(
                    None,
                    "unexpected_columns",
                    len(raw),
                    f"{len(extra)} columns are not declared in the schema; the first "
                    f"{MAX_EXTRA_COLUMNS_LISTED} follow",
                )
            )
        for column in extra[:MAX_EXTRA_COLUMNS_LISTED]:
            report.violations.append(
                Violation(
                    column,
                    "unexpected_column",
                    len(raw),
                    "column is not declared in the schema (declare it, or set "
                    "allow_extra_columns: true)",
                )
            )
    typed = raw[[c for c in definition.columns if c in raw.columns]].copy()
    missing = typed.isna()
    for column, spec in definition.columns.items():
        if column in typed.columns:
            typed[column], problems = _check_column(typed[column], column, spec)
            report.violations.extend(problems)
    return typed, missing, report


def validate_for_model(model: Model) -> tuple[pd.DataFrame, ValidationReport]:
    """Dataset checks plus what this model needs: usable features and a learnable target."""
    frame, missing, report = _validate(model.dataset)
    definition = model.definition
    columns = model.dataset.definition.columns

    def check_missing(column: str | None, rule: str, message: str) -> None:
        # Only nullable columns: the schema's `null` rule already reports the others.
        if column and column in missing.columns and columns[column].nullable:
            nulls = missing[column]
            if nulls.any():
                report.violations.append(_violation(column, rule, nulls, None, message))

    if not definition.preprocessing.impute:
        for feature in definition.features:
            check_missing(
                feature,
                "null_feature",
                "missing values in a feature; set preprocessing.impute: true in "
                f"{model.path} or remove them",
            )
    check_missing(definition.target, "null_target", "the target may not be missing")
    check_missing(definition.split.time_column, "null_time", "the time column may not be missing")
    present = set(frame.columns)
    if definition.target in present:
        distinct = frame[definition.target].dropna().nunique()
        if definition.task.value == "classification" and distinct < 2:
            report.violations.append(
                Violation(
                    definition.target,
                    "single_class",
                    len(frame),
                    f"the target has {distinct} class(es); classification needs at least 2",
                )
            )
        if definition.task.value == "regression" and distinct < 2:
            report.violations.append(
                Violation(
                    definition.target, "constant_target", len(frame), "the target is constant"
                )
            )
    return frame, report


def _check_column(
    values: pd.Series, column: str, spec: ColumnSpec
) -> tuple[pd.Series, list[Violation]]:
    import numpy as np
    import pandas as pd

    problems: list[Violation] = []
    present = values.notna()
    typed: pd.Series
    if spec.type.is_numeric:
        typed = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = present & (typed.isna() | ~np.isfinite(typed.fillna(0)))
        if spec.type is ColumnType.INT:
            bad |= present & typed.notna() & (typed != typed.round())
        if bad.any():
            problems.append(
                _violation(column, "type", bad, values, f"expected {spec.type.value} values")
            )
        typed = typed.where(~bad)
        if spec.min is not None:
            low = typed < spec.min
            if low.any():
                problems.append(
                    _violation(column, "min", low, values, f"below the minimum {spec.min:g}")
                )
        if spec.max is not None:
            high = typed > spec.max
            if high.any():
                problems.append(
                    _violation(column, "max", high, values, f"above the maximum {spec.max:g}")
                )
        # A nullable int column stays float so that the model's signature accepts missing values.
        if spec.type is ColumnType.INT and not spec.nullable and not typed.isna().any():
            typed = typed.astype("int64")
    elif spec.type is ColumnType.BOOL:
        text = values.astype("string").str.strip().str.lower()
        typed = text.map(lambda v: True if v in BOOL_TRUE else False if v in BOOL_FALSE else None)
        bad = present & typed.isna()
        if bad.any():
            problems.append(_violation(column, "type", bad, values, "expected true/false values"))
        # Gaps as NaN, not pandas' NA: scikit-learn's imputer cannot compare NA, and the server
        # hands the estimator a bool gap as NaN too (serving.schema.estimator_frame).
        typed = typed.astype("object").where(typed.notna(), np.nan)
    elif spec.type is ColumnType.DATETIME:
        typed = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = present & typed.isna()
        if bad.any():
            problems.append(_violation(column, "type", bad, values, "expected dates or timestamps"))
    else:
        typed = values.where(~present, values.astype(str)).astype("object")
        if spec.categories is not None:
            unknown = present & ~typed.isin(spec.categories)
            if unknown.any():
                problems.append(
                    _violation(
                        column,
                        "category",
                        unknown,
                        values,
                        f"not one of the allowed categories {spec.categories}",
                    )
                )
    if not spec.nullable:
        nulls = ~present
        if nulls.any():
            problems.append(
                _violation(column, "null", nulls, None, "missing values in a non-nullable column")
            )
    return typed, problems


def _show(value: Any) -> str:
    """A value as the user wrote it: quoted text, plain numbers (not numpy reprs)."""
    if isinstance(value, str):
        return repr(value)
    return str(value.item() if hasattr(value, "item") else value)


def _violation(
    column: str, rule: str, mask: pd.Series, values: pd.Series | None, message: str
) -> Violation:
    """A violation with example rows; ``values`` None means the examples are missing values."""
    rows = mask[mask].index[:MAX_EXAMPLES]
    # Row numbers are 1-based data rows, as a spreadsheet (after the header) shows them.
    examples = [
        f"row {int(i) + 1}: {'missing' if values is None else _show(values.loc[i])}" for i in rows
    ]
    return Violation(column, rule, int(mask.sum()), message, examples)
