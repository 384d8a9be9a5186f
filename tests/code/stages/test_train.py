"""Training's pure steps (``pipelines.stages.train``): preparing the rows, fitting, and the
lineage a run records; the MLflow logging itself is covered end to end in tests/e2e."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.core.definitions import load_model
from pipelines.core.errors import DefinitionError, Rejected
from pipelines.stages.train import fit, prepare, run_params, run_tags

pytestmark = pytest.mark.code


def _penguins(repo: Path, **overrides: object):
    return load_model(repo / "models", repo / "data", "penguins", overrides or None)


def test_prepare_splits_every_row_once_and_fingerprints_the_data(repo: Path) -> None:
    model = _penguins(repo)
    training = prepare(model)
    rows = np.concatenate([training.train_rows, training.test_rows])
    assert sorted(rows.tolist()) == list(range(len(training.frame)))
    assert training.fingerprints.data == training.report.fingerprint
    assert list(training.x_train(model.definition).columns) == model.definition.features


def test_prepare_refuses_data_that_fails_validation(repo: Path) -> None:
    source = repo / "data" / "penguins" / "penguins.csv"
    lines = source.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("bill_length_mm")] = "not-a-number"
    source.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    with pytest.raises(Rejected, match="bill_length_mm"):
        prepare(_penguins(repo))


def test_an_estimator_that_cannot_fit_is_a_definition_error_naming_it(repo: Path) -> None:
    # Each parameter is valid on its own; scikit-learn refuses the pair only when fitting.
    model = _penguins(
        repo,
        **{
            "estimator.path": "sklearn.linear_model.LogisticRegression",
            "estimator.params": {"penalty": "l1", "solver": "lbfgs"},
        },
    )
    training = prepare(model)
    with pytest.raises(DefinitionError, match="LogisticRegression failed to fit") as caught:
        fit(model, training)
    assert caught.value.field == "estimator"


def test_run_tags_record_the_lineage_and_the_overrides(repo: Path) -> None:
    model = _penguins(repo)
    training = prepare(model)
    tags = run_tags(model, training, "0" * 40, {"estimator.params.n_estimators": 5})
    assert tags["mlops.model"] == "penguins"
    assert tags["mlops.git_commit"] == "0" * 40
    assert tags["mlops.overrides"] == '{"estimator.params.n_estimators": 5}'
    assert tags["mlops.fingerprint.data"] == training.report.fingerprint


def test_run_params_fit_mlflows_500_character_limit(repo: Path) -> None:
    model = _penguins(repo)
    params = run_params(model.definition, prepare(model))
    assert params["rows.train"] != "0"
    assert all(isinstance(v, str) and len(v) <= 500 for v in params.values())
