"""Turning a model definition into an unfitted scikit-learn pipeline.

Models are declared, not coded: the estimator comes from an import path, and preprocessing is
derived from the dataset schema (numeric columns scaled or passed through, categorical ones
encoded with the categories the schema declares, so unseen values at serving time are safe).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pipelines.core.datasets import ColumnType
from pipelines.core.errors import DefinitionError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from pipelines.core.definitions import Model

# A definition may name estimators from these packages only, and nothing is imported before
# that check: importing a module runs its code, so ``estimator.path`` must not reach any module.
ESTIMATOR_PACKAGES = ("sklearn", "xgboost", "lightgbm", "catboost")
# Your own package of estimators or factories: MLOPS_ESTIMATOR_PACKAGES=my_models,other
EXTRA_PACKAGES_ENV = "MLOPS_ESTIMATOR_PACKAGES"
_FACTORY_MARK = "__mlops_estimator_factory__"

F = TypeVar("F", bound=Callable[..., Any])


def estimator_factory(function: F) -> F:
    """Mark a function as one a model definition may call to build its estimator.

    Only marked functions are called: a definition must never be able to run just any function
    of an allowed package (a CLI command, ``os.system`` re-exported somewhere, ...).
    """
    setattr(function, _FACTORY_MARK, True)
    return function


def allowed_packages() -> tuple[str, ...]:
    extra = os.environ.get(EXTRA_PACKAGES_ENV, "")
    return ESTIMATOR_PACKAGES + tuple(p.strip() for p in extra.split(",") if p.strip())


def resolve_import_path(path: str, *, file: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    allowed = allowed_packages()
    if module_name.split(".")[0] not in allowed:
        raise DefinitionError(
            f"{path} is outside the estimator packages ({', '.join(allowed)}); add yours to "
            f"{EXTRA_PACKAGES_ENV}",
            file=file,
            field="estimator.path",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DefinitionError(
            f"cannot import module {module_name!r} ({exc}); is the package installed?",
            file=file,
            field="estimator.path",
        ) from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise DefinitionError(
            f"module {module_name!r} has no attribute {attribute!r}",
            file=file,
            field="estimator.path",
        ) from None


def build_estimator(model: Model) -> Any:
    """The bare estimator from ``estimator.path`` and ``estimator.params``, checked for the task."""
    from sklearn.base import is_classifier, is_regressor

    spec = model.definition.estimator
    file = str(model.path)
    factory = resolve_import_path(spec.path, file=file)
    # Only estimator classes, or functions marked with @estimator_factory, are called: a model
    # definition must not be able to run an arbitrary function such as os.system.
    is_estimator_class = isinstance(factory, type) and all(
        hasattr(factory, method) for method in ("fit", "predict")
    )
    is_marked_factory = inspect.isfunction(factory) and getattr(factory, _FACTORY_MARK, False)
    if not (is_estimator_class or is_marked_factory):
        raise DefinitionError(
            f"{spec.path} is not an estimator class (with fit and predict) nor a function "
            "marked with pipelines.core.estimators.estimator_factory",
            file=file,
            field="estimator.path",
        )
    try:
        estimator = factory(**spec.params)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(
            f"{spec.path} rejected its parameters: {exc}", file=file, field="estimator.params"
        ) from exc
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise DefinitionError(
            f"{spec.path} did not give an estimator with fit() and predict()",
            file=file,
            field="estimator.path",
        )
    params = estimator.get_params() if hasattr(estimator, "get_params") else {}
    if "random_state" in params and "random_state" not in spec.params:
        # Reproducible from the definition's seed even when the author forgot random_state.
        estimator.set_params(random_state=model.definition.split.seed)
    task = model.definition.task.value
    if task == "classification" and is_regressor(estimator):
        raise DefinitionError(
            f"{spec.path} is a regressor but task is classification",
            file=file,
            field="estimator.path",
        )
    if task == "regression" and is_classifier(estimator):
        raise DefinitionError(
            f"{spec.path} is a classifier but task is regression", file=file, field="estimator.path"
        )
    if hasattr(estimator, "get_params"):
        # Validate hyperparameters now (sklearn checks them only in fit) to fail before any run.
        try:
            from sklearn.base import clone

            clone(estimator)._validate_params()
        except AttributeError:
            pass
        except (TypeError, ValueError) as exc:
            raise DefinitionError(str(exc), file=file, field="estimator.params") from exc
    return estimator


def build_pipeline(model: Model) -> Pipeline:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

    definition = model.definition
    columns = model.dataset.definition.columns
    prep = definition.preprocessing
    numeric = [f for f in definition.features if columns[f].type.is_numeric]
    categorical = [f for f in definition.features if f not in numeric]

    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[Any] = [SimpleImputer(strategy="median")] if prep.impute else []
        if prep.numeric == "standard":
            steps.append(StandardScaler())
        elif prep.numeric == "minmax":
            steps.append(MinMaxScaler())
        transformers.append(("numeric", make_pipeline(*steps) if steps else "passthrough", numeric))
    if categorical:
        per_column = [_categories(columns[c].type, columns[c].categories) for c in categorical]
        # scikit-learn takes either one list per column or "auto" for all of them.
        categories: Any = "auto" if "auto" in per_column else per_column
        encoder: Any
        if prep.categorical == "one_hot":
            # The schema's categories, not the training sample's, so a rare category absent
            # from training still has a column, and an unknown one at serving time is ignored.
            encoder = OneHotEncoder(
                categories=categories, handle_unknown="ignore", sparse_output=False
            )
        else:
            encoder = OrdinalEncoder(
                categories=categories, handle_unknown="use_encoded_value", unknown_value=-1
            )
        steps = [SimpleImputer(strategy="most_frequent")] if prep.impute else []
        transformers.append(("categorical", make_pipeline(*steps, encoder), categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("estimator", build_estimator(model))])


def _categories(kind: ColumnType, declared: list[str] | None) -> Any:
    if declared:
        return list(declared)
    if kind is ColumnType.BOOL:
        return [False, True]
    return "auto"
