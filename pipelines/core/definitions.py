"""The model definition contract: the schema of ``models/<name>/model.yaml``.

Every part of the template (pipelines, infra, workflows, monitoring) reads models through
``load_model`` and never parses the YAML by hand. ``mlops schema`` exports the JSON Schema
that editors use to check the files as they are typed.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.core.datasets import NAME_PATTERN, ColumnType, Dataset, load_dataset_by_name
from pipelines.core.drift_rules import Drift, check_definition
from pipelines.core.errors import DefinitionError
from pipelines.core.metric_catalog import DEFAULT_PRIMARY, METRICS, metrics_for
from pipelines.core.yamlfile import Strict, read_yaml_mapping, validate_document

MODEL_FILE = "model.yaml"
IMPORT_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")

Fraction = Annotated[float, Field(gt=0, lt=1)]
Percent = Annotated[int, Field(ge=1, le=100)]


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


_CRON_RANGES = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 7),
)


def _check_cron(value: str | None) -> str | None:
    """A 5-field cron expression as GitHub Actions' schedule takes it, numbers in range."""
    if value is None:
        return value
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"{value!r} is not a 5-field cron expression (minute hour day month weekday)"
        )
    for text, (part, low, high) in zip(fields, _CRON_RANGES, strict=True):
        for number in re.findall(r"\d+", text.split("/")[0]):
            if not low <= int(number) <= high:
                raise ValueError(
                    f"{value!r} is not a valid cron expression: {part} {number} is outside "
                    f"{low}-{high}"
                )
    return value


class EstimatorSpec(Strict):
    path: Annotated[
        str,
        Field(
            pattern=IMPORT_PATH,
            description="Import path of a scikit-learn compatible estimator class, or of a "
            "function that returns one (for a custom pipeline).",
            examples=["sklearn.ensemble.RandomForestClassifier"],
        ),
    ]
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments.")


class Preprocessing(Strict):
    numeric: Literal["passthrough", "standard", "minmax"] = "passthrough"
    categorical: Literal["one_hot", "ordinal"] = "one_hot"
    impute: bool = Field(
        default=False,
        description="Impute missing feature values (median / most frequent) instead of "
        "rejecting data with nulls in feature columns.",
    )


class Split(Strict):
    seed: int = 42
    test_fraction: Fraction = 0.2
    time_column: str | None = Field(
        default=None,
        description="Order rows by this column and hold out the latest test_fraction of them, "
        "instead of a random split.",
    )
    stratify: bool = Field(default=True, description="Stratify a random split by the target.")


class Bound(Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_side(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class ChampionGate(Strict):
    enabled: bool = True
    metric: str | None = Field(default=None, description="Defaults to the primary metric.")
    require: Literal["not_worse", "better"] = Field(
        default="not_worse",
        description="not_worse: reject only a challenger that is worse than the champion by "
        "more than margin with the given confidence. better: promote only a challenger that "
        "beats the champion by more than margin with that confidence.",
    )
    margin: Annotated[float, Field(ge=0)] = 0.0
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    resamples: Annotated[int, Field(ge=100, le=100_000)] = 1000


class FairnessGate(Strict):
    group_column: str
    metric: str
    max_gap: Annotated[float, Field(gt=0)]
    min_group_size: Annotated[int, Field(ge=1)] = 10


class LatencyGate(Strict):
    p99_ms: Annotated[float, Field(gt=0)]
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 1
    repeats: Annotated[int, Field(ge=20, le=10_000)] = 200


class SizeGate(Strict):
    max_mb: Annotated[float, Field(gt=0)]


class Gates(Strict):
    thresholds: dict[str, Bound] = Field(
        default_factory=dict, description="Absolute bounds per metric, e.g. accuracy: {min: 0.9}."
    )
    champion: ChampionGate = ChampionGate()
    fairness: FairnessGate | None = None
    latency: LatencyGate | None = None
    size: SizeGate | None = None


_BAKE = (
    "Minutes each traffic step bakes with the rollback alarms armed. On SageMaker the whole "
    "rollout (every step's bake and 5 minutes before the old fleet goes) must fit in 40 "
    "minutes, what a deploy can wait; mlops check refuses more."
)


class AllAtOnce(Strict):
    type: Literal["all_at_once"] = "all_at_once"
    bake_minutes: Annotated[int, Field(ge=0, le=1440, description=_BAKE)] = 0


class Canary(Strict):
    type: Literal["canary"]
    canary_percent: Percent = 10
    bake_minutes: Annotated[int, Field(ge=0, le=1440, description=_BAKE)] = 10


class Linear(Strict):
    type: Literal["linear"]
    step_percent: Percent = 20
    bake_minutes: Annotated[int, Field(ge=0, le=1440, description=_BAKE)] = 5


class Autoscaling(Strict):
    min_instances: Annotated[int, Field(ge=0)] = 1
    max_instances: Annotated[int, Field(ge=1)] = 2
    target_invocations_per_instance: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.max_instances < self.min_instances:
            raise ValueError(
                f"max_instances ({self.max_instances}) is below min_instances "
                f"({self.min_instances})"
            )
        return self


class Resources(Strict):
    cpu: str = "500m"
    memory: str = "1Gi"


class DeploymentFlavor(Strict):
    """Plain Deployments (stable and canary) behind one Service, scaled by an HPA."""

    flavor: Literal["deployment"] = "deployment"


class KServeFlavor(Strict):
    """A KServe InferenceService with the serving image as its custom predictor."""

    flavor: Literal["kserve"]


class RolloutFlavor(Strict):
    """An Argo Rollouts Rollout whose canary steps are gated by the alert rules' queries."""

    flavor: Literal["rollout"]
    analysis_interval: Annotated[
        str,
        Field(
            pattern=r"^[1-9][0-9]*[smh]$",
            description="How often the analysis runs the latency and error-rate queries.",
        ),
    ] = "1m"
    failure_limit: Annotated[
        int,
        Field(ge=0, le=10, description="Failed measurements tolerated before the rollback."),
    ] = 1


KubernetesFlavor = Annotated[
    DeploymentFlavor | KServeFlavor | RolloutFlavor, Field(discriminator="flavor")
]


class Deployment(Strict):
    target: Literal["local", "sagemaker", "kubernetes"] = "local"
    instance_type: str = Field(default="ml.m5.large", description="SageMaker instance type.")
    instance_count: Annotated[int, Field(ge=1)] = 1
    resources: Resources = Field(default_factory=Resources, description="Kubernetes requests.")
    strategy: Annotated[AllAtOnce | Canary | Linear, Field(discriminator="type")] = AllAtOnce()
    autoscaling: Autoscaling = Autoscaling()
    kubernetes: KubernetesFlavor = Field(
        default_factory=DeploymentFlavor,
        description="How a target: kubernetes endpoint is expressed: deployment, kserve or "
        "rollout (docs/infrastructure.md says which needs what in the cluster).",
    )

    @model_validator(mode="after")
    def _flavor_fits(self) -> Deployment:
        if not isinstance(self.kubernetes, DeploymentFlavor) and self.target != "kubernetes":
            raise ValueError(
                f"kubernetes.flavor: {self.kubernetes.flavor} is for a target: kubernetes model "
                f"(target is {self.target})"
            )
        if isinstance(self.kubernetes, RolloutFlavor) and isinstance(self.strategy, AllAtOnce):
            raise ValueError(
                "kubernetes.flavor: rollout needs strategy.type canary or linear (the steps "
                "the Rollout walks through), not all_at_once"
            )
        return self


class Monitoring(Strict):
    schedule: str = "0 * * * *"
    capture_percent: Percent = 100
    drift: Drift = Drift()

    check_schedule = field_validator("schedule")(_check_cron)


class Retraining(Strict):
    schedule: str | None = Field(default=None, description="Cron for scheduled retraining.")
    on_drift: bool = False

    check_schedule = field_validator("schedule")(_check_cron)


class ModelDefinition(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: Annotated[str, Field(min_length=1)]
    owner: Annotated[str, Field(min_length=1)]
    dataset: Annotated[str, Field(pattern=NAME_PATTERN, description="A data/<name>/ dataset.")]
    task: Task
    target: str
    features: Annotated[list[str], Field(min_length=1)]
    groups: list[str] = Field(
        default_factory=list,
        description="Columns to report per-group metrics for (need not be features).",
    )
    primary_metric: str | None = None
    estimator: EstimatorSpec
    preprocessing: Preprocessing = Preprocessing()
    split: Split = Split()
    gates: Gates = Gates()
    deployment: Deployment = Deployment()
    monitoring: Monitoring = Monitoring()
    retraining: Retraining = Retraining()

    @property
    def metric(self) -> str:
        return self.primary_metric or DEFAULT_PRIMARY[self.task.value]

    @property
    def champion_metric(self) -> str:
        return self.gates.champion.metric or self.metric

    @model_validator(mode="after")
    def _consistent(self) -> ModelDefinition:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features: listed more than once: " + ", ".join(_dupes(self.features)))
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed in features")
        allowed = metrics_for(self.task.value)
        named = {
            "primary_metric": self.primary_metric,
            "gates.champion.metric": self.gates.champion.metric,
        }
        named |= {f"gates.thresholds.{m}": m for m in self.gates.thresholds}
        if self.gates.fairness:
            named["gates.fairness.metric"] = self.gates.fairness.metric
        for field, metric in named.items():
            if metric is not None and metric not in allowed:
                raise ValueError(
                    f"{field}: unknown metric {metric!r} for {self.task.value}; "
                    f"choose one of {', '.join(allowed)}"
                )
        if self.gates.fairness and self.gates.fairness.group_column == self.target:
            raise ValueError("gates.fairness.group_column cannot be the target")
        if self.split.time_column == self.target:
            raise ValueError("split.time_column cannot be the target")
        unknown = set(self.monitoring.drift.features) - set(self.features)
        if unknown:
            raise ValueError(
                f"monitoring.drift.features: {', '.join(sorted(unknown))} are not features"
            )
        return self

    def columns_used(self) -> list[str]:
        extra = [*self.groups, self.split.time_column]
        if self.gates.fairness:
            extra.append(self.gates.fairness.group_column)
        return _unique([*self.features, self.target, *(c for c in extra if c)])


def _dupes(items: list[str]) -> list[str]:
    return sorted({i for i in items if items.count(i) > 1})


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def higher_is_better(metric: str) -> bool:
    return METRICS[metric].higher_is_better


class Model:
    """A validated model definition, the file it came from, and its dataset."""

    def __init__(self, definition: ModelDefinition, path: Path, dataset: Dataset) -> None:
        self.definition = definition
        self.path = path
        self.dataset = dataset

    @property
    def name(self) -> str:
        return self.definition.name


def model_path(models_dir: Path, name: str) -> Path:
    return models_dir / name / MODEL_FILE


def discover_models(models_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in models_dir.glob(f"*/{MODEL_FILE}"))


def load_definition(path: Path, overrides: dict[str, Any] | None = None) -> ModelDefinition:
    """Read and validate one model.yaml; ``overrides`` set dotted keys first (``--set``)."""

    data = read_yaml_mapping(path)
    label = f"{path} (with --set)" if overrides else str(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value, file=label)
    definition = validate_document(data, ModelDefinition, label)
    if path.parent.name != definition.name:
        raise DefinitionError(
            f"name {definition.name!r} must match its folder name {path.parent.name!r}",
            file=path,
            field="name",
        )
    return definition


def load_model(
    models_dir: Path, data_dir: Path, name: str, overrides: dict[str, Any] | None = None
) -> Model:
    """Load a model definition and its dataset, and check that the two agree."""

    path = model_path(models_dir, name)
    if not path.is_file():
        known = discover_models(models_dir)
        raise DefinitionError(
            f"model {name!r} not found (no {path}); known models: {', '.join(known) or 'none'}"
        )
    definition = load_definition(path, overrides)
    try:
        dataset = load_dataset_by_name(data_dir, definition.dataset)
    except DefinitionError as exc:
        if exc.file:
            raise
        raise DefinitionError(exc.message, file=path, field="dataset") from None
    check_against_dataset(definition, dataset, path)
    check_definition(definition, dataset, str(path))
    return Model(definition, path, dataset)


def check_against_dataset(definition: ModelDefinition, dataset: Dataset, path: Path) -> None:
    columns = dataset.definition.columns
    where = f"{dataset.path}"
    references: list[tuple[str, str]] = [
        (f"features[{i}]", f) for i, f in enumerate(definition.features)
    ]
    references.append(("target", definition.target))
    references += [(f"groups[{i}]", g) for i, g in enumerate(definition.groups)]
    if definition.split.time_column:
        references.append(("split.time_column", definition.split.time_column))
    if definition.gates.fairness:
        references.append(("gates.fairness.group_column", definition.gates.fairness.group_column))
    for field, column in references:
        if column not in columns:
            raise DefinitionError(
                f"column {column!r} is not in dataset {dataset.name!r} ({where}); "
                f"its columns are {', '.join(columns)}",
                file=path,
                field=field,
            )
    target_type = columns[definition.target].type
    if definition.task is Task.REGRESSION and not target_type.is_numeric:
        raise DefinitionError(
            f"a regression target must be an int or float column; {definition.target!r} is "
            f"{target_type.value}",
            file=path,
            field="target",
        )
    if definition.task is Task.CLASSIFICATION and target_type in (
        ColumnType.FLOAT,
        ColumnType.DATETIME,
    ):
        raise DefinitionError(
            f"a classification target must be a category, string, bool or int column; "
            f"{definition.target!r} is {target_type.value}",
            file=path,
            field="target",
        )
    for i, feature in enumerate(definition.features):
        if columns[feature].type is ColumnType.DATETIME:
            raise DefinitionError(
                f"datetime column {feature!r} cannot be a feature as it is; derive numeric "
                "features from it in the dataset",
                file=path,
                field=f"features[{i}]",
            )


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, *, file: str) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise DefinitionError(
                f"cannot set {dotted}: {key} is not a mapping", file=file, field=dotted
            )
        node = child
    node[keys[-1]] = value
