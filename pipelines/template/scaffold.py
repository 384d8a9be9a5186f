"""``mlops new-model``: a new model is a YAML file, never copied Python.

``--from-csv`` also writes the dataset it trains on: the CSV is copied under data/<dataset>/ and
its dataset.yaml is inferred from the data (types, observed ranges, categories), commented
field by field, and proven to accept the data it came from before anything is kept.
"""

from __future__ import annotations

import json
import re
import shutil
from importlib.resources import files
from pathlib import Path

from pipelines.core.datasets import (
    DATASET_FILE,
    NAME_PATTERN,
    fingerprint_bytes,
    load_dataset,
    load_dataset_by_name,
)
from pipelines.core.definitions import discover_models, load_model, model_path
from pipelines.core.errors import DefinitionError
from pipelines.core.metric_catalog import DEFAULT_PRIMARY
from pipelines.stages.validate import validate_dataset

DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.RandomForestClassifier",
    "regression": "sklearn.ensemble.RandomForestRegressor",
}


def new_model(
    models_dir: Path,
    data_dir: Path,
    *,
    name: str,
    dataset: str,
    task: str,
    target: str,
    features: list[str] | None,
    owner: str,
    description: str,
    from_csv: Path | None = None,
) -> Path:
    """Write models/<name>/model.yaml from the template and prove it loads.

    With ``from_csv`` the dataset is scaffolded first (it must not exist yet). On any error
    nothing is left behind, so the command can simply be run again.
    """

    if not re.fullmatch(NAME_PATTERN, name):
        raise DefinitionError(
            f"{name!r} is not a valid model name (lower case letters, digits, - and _, starting "
            "with a letter)",
            field="NAME",
        )
    path = model_path(models_dir, name)
    if path.exists():
        raise DefinitionError("already exists; choose another name or edit it", file=path)
    if task not in DEFAULT_ESTIMATORS:
        raise DefinitionError(
            f"task must be one of {', '.join(DEFAULT_ESTIMATORS)}, not {task!r}", field="--task"
        )
    created_dataset = None
    if from_csv is not None:
        created_dataset = new_dataset(data_dir, dataset, from_csv)
    try:
        return _write_model(
            models_dir, data_dir, path, name, dataset, task, target, features, owner, description
        )
    except BaseException:
        if created_dataset is not None:
            shutil.rmtree(created_dataset.parent)
        raise


def _write_model(
    models_dir: Path,
    data_dir: Path,
    path: Path,
    name: str,
    dataset: str,
    task: str,
    target: str,
    features: list[str] | None,
    owner: str,
    description: str,
) -> Path:

    columns = load_dataset_by_name(data_dir, dataset).definition.columns
    if target not in columns:
        raise DefinitionError(
            f"{target!r} is not a column of dataset {dataset!r} (columns: {', '.join(columns)})",
            field="--target",
        )
    if features is None:
        features = [
            c for c, spec in columns.items() if c != target and spec.type.value != "datetime"
        ]
    template = (
        files("pipelines.template")
        .joinpath("templates/model.yaml.tmpl")
        .read_text(encoding="utf-8")
    )
    # JSON strings are valid YAML scalars, so user text with ':' or '#' stays one value.
    text = template.format(
        name=name,
        description=json.dumps(description or f"{task.capitalize()} of {target} from {dataset}."),
        owner=json.dumps(owner),
        dataset=dataset,
        task=task,
        target=json.dumps(target),
        features=", ".join(json.dumps(f) for f in features),
        estimator=DEFAULT_ESTIMATORS[task],
        metric=DEFAULT_PRIMARY[task],
    )
    created_dir = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    try:
        load_model(models_dir, data_dir, name)
    except BaseException:
        path.unlink()
        if created_dir:
            path.parent.rmdir()
        raise
    for workflow, updated in dispatch_choice_updates(
        models_dir.parent, discover_models(models_dir)
    ).items():
        workflow.write_text(updated, encoding="utf-8")
    return path


# The `model` input of the workflows a person dispatches by hand: a choice of every model.
# GitHub (and actionlint) reject a choice with no options, so while there is no model (the
# examples dropped, none added yet) the input is a plain string; the first model makes it a
# choice again.
DISPATCH_WORKFLOWS = ("retrain.yml", "promote-manual.yml")
_MODEL_INPUT = re.compile(r"^      model:\n(?:        .*\n)*", re.M)
_MODEL_TYPE = re.compile(r"^(        type: )\w+\n(?:        options: .*\n)?", re.M)


def set_model_choices(workflow: str, models: list[str]) -> str:
    """``workflow`` with its ``model`` dispatch input offering exactly ``models``."""
    choices = f"choice\n        options: [{', '.join(models)}]" if models else "string"
    return _MODEL_INPUT.sub(
        lambda m: _MODEL_TYPE.sub(lambda t: f"{t.group(1)}{choices}\n", m.group(0), count=1),
        workflow,
        count=1,
    )


def dispatch_choice_updates(root: Path, models: list[str]) -> dict[Path, str]:
    """New texts of the dispatch workflows whose model choices differ from ``models``.

    GitHub shows a dropdown of exactly these names, so a model added or removed must appear or
    disappear there too (tests/workflows checks that they list every model).
    """
    updates = {}
    for name in DISPATCH_WORKFLOWS:
        path = root / ".github" / "workflows" / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = set_model_choices(text, models)
        if new != text:
            updates[path] = new
    return updates


# Fewer distinct text values than this (and at most half the rows) make a category column.
MAX_CATEGORIES = 30


def new_dataset(data_dir: Path, name: str, csv: Path, description: str = "") -> Path:
    """Copy ``csv`` to data/<name>/ and write its inferred, commented dataset.yaml.

    The definition is validated against the very data it was inferred from; on any error the
    folder is removed again.
    """

    if not re.fullmatch(NAME_PATTERN, name):
        raise DefinitionError(
            f"{name!r} is not a valid dataset name (lower case letters, digits, - and _, "
            "starting with a letter)",
            field="--dataset",
        )
    if not csv.is_file():
        raise DefinitionError("does not exist or is not a file", file=csv, field="--from-csv")
    folder = data_dir / name
    if folder.exists():
        raise DefinitionError(
            "already exists; drop --from-csv to use it, or choose another --dataset", file=folder
        )
    data = csv.read_bytes()
    columns, rows = infer_columns(data, csv)
    template = (
        files("pipelines.template")
        .joinpath("templates/dataset.yaml.tmpl")
        .read_text(encoding="utf-8")
    )
    source = f"{name}.csv"
    text = template.format(
        name=name,
        csv_name=csv.name,
        row_count=rows,
        description=json.dumps(description or f"Rows of {csv.name}; say what one row is."),
        source=source,
        fingerprint=fingerprint_bytes(data),
        rows_min=max(1, rows // 2),
        columns="\n".join(columns),
    )
    folder.mkdir(parents=True)
    try:
        (folder / source).write_bytes(data)
        path = folder / DATASET_FILE
        path.write_text(text, encoding="utf-8")
        _, report = validate_dataset(load_dataset(path))
        report.raise_if_failed(str(path))
    except BaseException:
        shutil.rmtree(folder)
        raise
    return path


def infer_columns(data: bytes, csv: Path) -> tuple[list[str], int]:
    """One commented YAML line per column, read as text the way validation reads it."""
    import io

    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=True, encoding="utf-8-sig")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DefinitionError(f"cannot parse as CSV: {exc}", file=csv, field="--from-csv") from exc
    if frame.empty:
        raise DefinitionError("has no data rows", file=csv, field="--from-csv")
    lines = []
    for column in frame.columns:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", str(column)):
            raise DefinitionError(
                f"column {column!r} is not a plain name (letters, digits, _ . -)",
                file=csv,
                field="--from-csv",
            )
        spec, note = _infer(frame[column])
        lines.append(f"  {column}: {{{spec}}}  # {note}")
    return lines, len(frame)


def _infer(values: object) -> tuple[str, str]:
    """The flow-style spec of one column and a comment saying what it was inferred from."""
    import pandas as pd

    assert isinstance(values, pd.Series)
    present = values.dropna().str.strip()
    nullable = ", nullable: true" if len(present) < len(values) else ""
    missing = f"; {len(values) - len(present)} missing" if nullable else ""
    if present.empty:
        return f"type: string{nullable}", "no values to infer from; set the type"
    numbers = pd.to_numeric(present, errors="coerce")
    lowered = set(present.str.lower())
    if lowered <= {"true", "false", "yes", "no", "t", "f", "y", "n"}:
        return f"type: bool{nullable}", f"only true/false values{missing}"
    if numbers.notna().all():
        whole = (
            bool((numbers == numbers.round()).all()) and not present.str.contains(r"[.eE]").any()
        )
        kind = "int" if whole else "float"
        low, high = _plain(numbers.min()), _plain(numbers.max())
        note = f"observed {low} to {high}{missing}; widen to the plausible range"
        return f"type: {kind}, min: {low}, max: {high}{nullable}", note
    dates = pd.to_datetime(present, errors="coerce", format="mixed")
    if dates.notna().all() and present.str.contains(r"\d{4}-\d{2}-\d{2}").all():
        return f"type: datetime{nullable}", f"ISO dates{missing}"
    distinct = sorted(set(present))
    if len(distinct) <= MAX_CATEGORIES and len(distinct) <= max(2, len(present) // 2):
        categories = ", ".join(json.dumps(c) for c in distinct)
        note = f"{len(distinct)} distinct values{missing}; add any you expect later"
        return f"type: category, categories: [{categories}]{nullable}", note
    return f"type: string{nullable}", f"{len(distinct)} distinct values{missing}; free text"


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
