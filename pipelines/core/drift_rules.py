"""The ``monitoring.drift`` section of model.yaml: its settings and the rules that check them.

Part of the model definition contract: ``load_model`` refuses a method that cannot apply to a
column's type (chi2 on a numeric feature), an override of a non-feature or a p-value threshold
outside (0, 1) before any run, and ``monitoring.drift`` computes with the same rules
(``resolve``). The statistics themselves live in ``monitoring.drift``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from pipelines.core.errors import DefinitionError
from pipelines.core.yamlfile import Strict

Kind = Literal["numeric", "categorical"]

P_VALUE_METHODS = frozenset({"ks", "chi2", "z"})
DEFAULT_THRESHOLDS = {
    "ks": 0.05,
    "chi2": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensen_shannon": 0.1,
    "psi": 0.1,
}
ALLOWED = {
    "numeric": frozenset({"ks", "wasserstein", "psi", "jensen_shannon"}),
    "categorical": frozenset({"chi2", "jensen_shannon", "psi", "z"}),
}


DriftMethod = Literal["auto", "psi", "ks", "wasserstein", "chi2", "jensen_shannon"]


class FeatureDrift(Strict):
    method: DriftMethod = "auto"
    threshold: Annotated[float, Field(gt=0)] | None = None


class Drift(Strict):
    method: DriftMethod = Field(
        default="auto",
        description="auto: normalised Wasserstein for numeric, Jensen-Shannon for categorical.",
    )
    threshold: Annotated[float, Field(gt=0)] = 0.1
    share_of_drifted_features: Annotated[float, Field(gt=0, le=1)] = 0.5
    features: dict[str, FeatureDrift] = Field(default_factory=dict)


def resolve(settings: Drift, feature: str) -> tuple[str, float | None]:
    """The method asked for a feature (maybe ``auto``) and an explicit threshold, if any.

    A per-feature setting wins; else the model-wide method. The model-wide threshold applies to
    an explicit method, and to ``auto`` only where auto picks a distance: a p-value test keeps
    its conventional 0.05 rather than reading a distance threshold as a significance level.
    """
    override = settings.features.get(feature)
    if override is not None:
        method = override.method if override.method != "auto" else settings.method
        return method, override.threshold
    return settings.method, None


def check_methods(settings: Drift, kinds: dict[str, Kind], file: str) -> None:
    """Refuse a method that cannot apply to a feature, naming the model.yaml field."""
    for feature in settings.features:
        if feature not in kinds:
            raise DefinitionError(
                f"{feature!r} is not a feature of the model ({', '.join(kinds)})",
                file=file,
                field=f"monitoring.drift.features.{feature}",
            )
    for feature, kind in kinds.items():
        method, _ = resolve(settings, feature)
        if method != "auto" and method not in ALLOWED[kind]:
            where = (
                f"monitoring.drift.features.{feature}.method"
                if feature in settings.features
                else "monitoring.drift.method"
            )
            raise DefinitionError(
                f"method {method!r} does not apply to the {kind} feature {feature!r}; "
                f"use one of {', '.join(sorted(ALLOWED[kind]))}",
                file=file,
                field=where,
            )


def check_thresholds(settings: Drift, kinds: dict[str, Kind], file: str) -> None:
    """Refuse a p-value test threshold outside (0, 1), naming the model.yaml field.

    A p-value test flags drift below its threshold, so a threshold of 1 or more flags every
    window (``threshold: 5`` meant as a distance). Under ``method: auto`` a feature's own
    threshold may end up read as a significance level (auto picks a p-value test on a small
    reference), so it is held to the same bound; a distance needs its method named.
    """
    for feature in kinds:
        method, threshold = resolve(settings, feature)
        where = f"monitoring.drift.features.{feature}.threshold"
        if threshold is None and method in P_VALUE_METHODS:
            threshold, where = settings.threshold, "monitoring.drift.threshold"
        if threshold is None or not (method in P_VALUE_METHODS or method == "auto"):
            continue
        if not 0 < threshold < 1:
            test = (
                f"the {method} test" if method != "auto" else "method auto (maybe a p-value test)"
            )
            raise DefinitionError(
                f"threshold {threshold:g} for {feature!r} under {test} is a significance level "
                "and must be between 0 and 1 (drift when the p-value is below it); for a "
                "distance threshold name the method (wasserstein, jensen_shannon or psi)",
                file=file,
                field=where,
            )


def definition_kinds(definition: Any, dataset: Any) -> dict[str, Kind]:
    """numeric or categorical per feature, from the dataset's column types (bool: categorical)."""
    columns = getattr(dataset, "definition", dataset).columns
    return {
        f: "numeric" if columns[f].type.is_numeric else "categorical"
        for f in definition.features
        if f in columns
    }


def check_definition(definition: Any, dataset: Any, file: str | None = None) -> None:
    """Validate a model's monitoring.drift settings against its dataset, before any run.

    ``definition`` is a ``pipelines.core.definitions.ModelDefinition``, ``dataset`` a loaded
    ``pipelines.core.datasets`` dataset (or its definition). Raises ``DefinitionError`` naming
    ``models/<name>/model.yaml`` and the field: a method that cannot apply to the column's type
    (chi2 on a numeric feature), an override of a non-feature, a p-value threshold outside (0, 1).
    """
    where = file or f"models/{definition.name}/model.yaml"
    kinds = definition_kinds(definition, dataset)
    settings = definition.monitoring.drift
    check_methods(settings, kinds, where)
    check_thresholds(settings, kinds, where)
