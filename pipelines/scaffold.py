"""``mlops new-model``: a new model is a YAML file, never copied Python."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

from pipelines.datasets import NAME_PATTERN
from pipelines.errors import DefinitionError

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
) -> Path:
    """Write models/<name>/model.yaml from the template and prove it loads.

    On any error nothing is left behind, so the command can simply be run again.
    """
    from pipelines.datasets import load_dataset_by_name
    from pipelines.definitions import load_model, model_path
    from pipelines.metric_catalog import DEFAULT_PRIMARY

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
    columns = load_dataset_by_name(data_dir, dataset).definition.columns
    if features is None:
        features = [
            c for c, spec in columns.items() if c != target and spec.type.value != "datetime"
        ]
    template = files("pipelines").joinpath("templates/model.yaml.tmpl").read_text(encoding="utf-8")
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
    return path
