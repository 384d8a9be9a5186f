"""The public API for your own estimators: ``@pipelines.estimators.estimator_factory``.

A module of yours (named in ``MLOPS_ESTIMATOR_PACKAGES``) marks the functions a model
definition's ``estimator.path`` may call with this decorator. The implementation and the
``estimator.path`` rules live in ``pipelines.core.estimators``; this module keeps the import
path that users' code and the README name stable.
"""

from pipelines.core.estimators import (
    ESTIMATOR_PACKAGES,
    EXTRA_PACKAGES_ENV,
    build_estimator,
    build_pipeline,
    estimator_factory,
)

__all__ = [
    "ESTIMATOR_PACKAGES",
    "EXTRA_PACKAGES_ENV",
    "build_estimator",
    "build_pipeline",
    "estimator_factory",
]
