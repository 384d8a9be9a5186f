"""The fast path gives exactly the estimator's predictions, or it is not used.

Pipelines come from the real builder (``pipelines.core.estimators.build_pipeline``) for every
preprocessing choice a model definition can make, trained on synthetic rows with gaps,
then compared row for row with the pipeline's own ``predict`` on rows it has not seen.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.core.datasets import ColumnSpec, Dataset, DatasetDefinition
from pipelines.core.definitions import Model, ModelDefinition
from pipelines.core.estimators import build_pipeline
from serving import fast_path
from serving.schema import InputSchema, estimator_frame

pytestmark = pytest.mark.serving

COLUMNS = {
    "length": ColumnSpec(type="float", min=0, max=100, nullable=True),
    "count": ColumnSpec(type="int", min=0, max=50),
    "kind": ColumnSpec(type="category", categories=["a", "b", "c", "d"], nullable=True),
    "note": ColumnSpec(type="string", nullable=True),
    "flag": ColumnSpec(type="bool"),
}
FEATURES = list(COLUMNS)


def synthetic_rows(n: int, seed: int, gaps: bool, unseen_notes: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    notes = ["x", "y", "z"] + (["never-seen"] if unseen_notes else [])
    frame = pd.DataFrame(
        {
            # One decimal, as real measurements are: values sit exactly on split points.
            "length": np.round(rng.uniform(0, 100, n), 1),
            "count": rng.integers(0, 50, n),
            "kind": rng.choice(["a", "b", "c", "d"], n).astype(object),
            "note": rng.choice(notes, n).astype(object),
            "flag": rng.random(n) < 0.4,
        }
    )
    if gaps:
        frame.loc[rng.random(n) < 0.1, "length"] = np.nan
        frame.loc[rng.random(n) < 0.1, "kind"] = None
        frame.loc[rng.random(n) < 0.1, "note"] = None
    return frame


def target(frame: pd.DataFrame, task: str) -> np.ndarray:
    score = frame["length"].fillna(50) / 10 + frame["count"] / 7 + (frame["kind"] == "b") * 3
    score = score + frame["flag"] * 2 + (frame["note"] == "y")
    if task == "regression":
        return score.to_numpy(dtype=float)
    return np.where(score > 12, "high", np.where(score > 8, "mid", "low"))


def model(
    task: str,
    estimator: str,
    params: dict[str, Any],
    features: dict[str, ColumnSpec] = COLUMNS,
    **preprocessing: Any,
) -> Model:
    columns = {**features, "y": ColumnSpec(type="float" if task == "regression" else "string")}
    dataset = DatasetDefinition(
        name="synthetic", source="rows.csv", fingerprint="sha256:" + "0" * 64, columns=columns
    )
    definition = ModelDefinition.model_validate(
        {
            "name": "synthetic",
            "description": "test",
            "owner": "test",
            "dataset": "synthetic",
            "task": task,
            "target": "y",
            "features": list(features),
            "estimator": {"path": estimator, "params": params},
            "preprocessing": preprocessing,
        }
    )
    return Model(definition, Path("models/synthetic/model.yaml"), Dataset(dataset, Path(".")))


def trained(task: str, estimator: str, params: dict[str, Any], **preprocessing: Any) -> Any:
    gaps = bool(preprocessing.get("impute"))
    rows = synthetic_rows(600, seed=1, gaps=gaps)
    pipeline = build_pipeline(model(task, estimator, params, **preprocessing))
    return pipeline.fit(rows[FEATURES], target(rows, task)), gaps


def as_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame[c].to_numpy(dtype=np.float64 if c == "length" else None) for c in FEATURES}


def assert_same_as_estimator(pipeline: Any, gaps: bool) -> None:
    fast = fast_path.verified(pipeline, FEATURES, COLUMNS)
    assert fast is not None, "the fast path should support this pipeline"
    unseen = synthetic_rows(3000, seed=2, gaps=gaps, unseen_notes=True)
    expected = pipeline.predict(unseen[FEATURES])
    got = fast(as_columns(unseen))
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)  # equal, not close


FOREST = {"n_estimators": 30, "max_depth": 8, "random_state": 0, "n_jobs": 1}


@pytest.mark.parametrize("numeric", ["passthrough", "standard", "minmax"])
@pytest.mark.parametrize("categorical", ["one_hot", "ordinal"])
@pytest.mark.parametrize("impute", [False, True])
def test_every_preprocessing_choice_predicts_exactly_as_the_forest(numeric, categorical, impute):
    pipeline, gaps = trained(
        "classification",
        "sklearn.ensemble.RandomForestClassifier",
        FOREST,
        numeric=numeric,
        categorical=categorical,
        impute=impute,
    )
    assert_same_as_estimator(pipeline, gaps)


@pytest.mark.parametrize(
    ("task", "estimator", "params"),
    [
        ("regression", "sklearn.ensemble.RandomForestRegressor", FOREST),
        ("regression", "sklearn.ensemble.ExtraTreesRegressor", FOREST),
        ("regression", "sklearn.tree.DecisionTreeRegressor", {"max_depth": 6}),
        ("classification", "sklearn.ensemble.ExtraTreesClassifier", FOREST),
        ("classification", "sklearn.tree.DecisionTreeClassifier", {"max_depth": 6}),
        # Not reproduced, only fed the fast preprocessing: their own predict runs.
        ("regression", "sklearn.ensemble.GradientBoostingRegressor", {"n_estimators": 20}),
        ("classification", "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20}),
        ("classification", "sklearn.linear_model.LogisticRegression", {"max_iter": 500}),
    ],
)
def test_other_estimators_predict_exactly_as_their_own(task, estimator, params):
    pipeline, gaps = trained(task, estimator, params, numeric="standard", impute=True)
    assert_same_as_estimator(pipeline, gaps)


def test_missing_values_without_imputing_take_the_estimators_own_route():
    # Forests accept NaN themselves; the fast path hands such rows to the estimator.
    pipeline, _ = trained("classification", "sklearn.ensemble.RandomForestClassifier", FOREST)
    fast = fast_path.verified(pipeline, FEATURES, COLUMNS)
    assert fast is not None
    rows = synthetic_rows(200, seed=3, gaps=False)
    rows.loc[::7, "length"] = np.nan
    np.testing.assert_array_equal(fast(as_columns(rows)), pipeline.predict(rows[FEATURES]))


def test_a_pipeline_it_cannot_reproduce_is_served_by_the_estimator(caplog):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    rows = synthetic_rows(300, seed=1, gaps=False)
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer([("numeric", FunctionTransformer(np.log1p), ["length"])]),
            ),
            ("estimator", RandomForestClassifier(n_estimators=5, random_state=0)),
        ]
    ).fit(rows, target(rows, "classification"))
    with caplog.at_level(logging.INFO, logger="serving.fast_path"):
        assert fast_path.verified(pipeline, ["length"], {"length": COLUMNS["length"]}) is None
    assert "function transformer" in caplog.text


def test_a_fast_path_that_disagrees_is_not_used(monkeypatch, caplog):
    pipeline, _ = trained("classification", "sklearn.ensemble.RandomForestClassifier", FOREST)
    real = fast_path.compile_predict

    def off_by_one_row(estimator: Any) -> fast_path.ColumnPredict:
        predict = real(estimator)

        def wrong(data: Any) -> np.ndarray:
            out = predict(data).copy()
            out[-1] = "low" if out[-1] != "low" else "high"
            return out

        return wrong

    monkeypatch.setattr(fast_path, "compile_predict", off_by_one_row)
    with caplog.at_level(logging.WARNING, logger="serving.fast_path"):
        assert fast_path.verified(pipeline, FEATURES, COLUMNS) is None
    assert "differs from the estimator" in caplog.text


def test_probe_rows_cover_categories_gaps_and_ranges():
    probes = fast_path.probe_columns(FEATURES, COLUMNS, {"length": [12.5], "note": ["x"]})
    assert set(probes["kind"]) >= {"a", "b", "c", "d", None}
    assert probes["length"][0] == 12.5 and np.isnan(probes["length"]).any()
    assert np.nanmin(probes["length"]) >= 0 and np.nanmax(probes["length"]) <= 100
    assert {"x", None} <= set(probes["note"]) and len(set(probes["note"])) >= 3
    assert set(probes["flag"]) == {True, False}
    assert (probes["count"] == np.round(probes["count"])).all()


@pytest.mark.parametrize("name", ["penguins", "seattle_weather"])
def test_the_example_models_get_the_fast_path_and_their_own_answers(name):
    from examples_root import EXAMPLE_DATA, EXAMPLE_MODELS

    from pipelines.core.datasets import load_dataset_by_name
    from pipelines.core.definitions import load_model

    example = load_model(EXAMPLE_MODELS, EXAMPLE_DATA, name)
    dataset = load_dataset_by_name(EXAMPLE_DATA, example.definition.dataset)
    rows = pd.read_csv(dataset.path.parent / dataset.definition.source)
    features = example.definition.features
    pipeline = build_pipeline(example).fit(rows[features], rows[example.definition.target])
    schema = {f: example.dataset.definition.columns[f] for f in features}
    fast = fast_path.verified(pipeline, features, schema)
    assert fast is not None
    columns = {c: rows[c].to_numpy() for c in features}
    np.testing.assert_array_equal(fast(columns), pipeline.predict(rows[features]))


def as_trained(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as ``pipelines.stages.validate`` hands them to fit: text and bool as objects, gaps as
    NaN."""
    out = frame.copy()
    for column in ("kind", "note", "flag"):
        out[column] = pd.Series(
            [np.nan if v is None or v != v else v for v in frame[column]], dtype=object
        )
    return out


def test_a_column_of_nothing_but_gaps_is_imputed_as_in_training():
    # A one-row request with a gap has a column of nothing but None. scikit-learn's imputer
    # does not count None as missing there, so the estimator route once encoded it as an
    # unknown category while training (NaN) and the fast path imputed it: two answers.
    train = as_trained(synthetic_rows(600, seed=1, gaps=True))
    train.loc[train.index[:200], "kind"] = "b"  # "b", the most frequent, is what is imputed
    labels = target(train.fillna({"kind": "b"}), "classification")
    tree = "sklearn.tree.DecisionTreeClassifier"
    pipeline = build_pipeline(model("classification", tree, {}, impute=True))
    pipeline.fit(train[FEATURES], labels)
    fast = fast_path.verified(pipeline, FEATURES, COLUMNS)
    assert fast is not None
    rows = synthetic_rows(200, seed=2, gaps=False)
    as_b = rows.to_dict("records")
    gaps = [{**row, "kind": None} for row in as_b]
    body = pd.DataFrame(gaps).to_json(orient="split", index=False).encode()
    data = InputSchema(FEATURES, COLUMNS).parse_columns(
        b'{"dataframe_split": ' + body + b"}", "application/json"
    )
    imputed = pipeline.predict(as_trained(rows.assign(kind="b"))[FEATURES])
    np.testing.assert_array_equal(pipeline.predict(estimator_frame(data)), imputed)
    np.testing.assert_array_equal(fast(data), imputed)


def test_a_number_beyond_float32_is_refused_as_the_estimator_refuses_it():
    # Trees compare in float32: 1e39 becomes inf, which the estimator refuses.
    pipeline, _ = trained("classification", "sklearn.ensemble.RandomForestClassifier", FOREST)
    fast = fast_path.verified(pipeline, FEATURES, COLUMNS)
    assert fast is not None
    rows = synthetic_rows(3, seed=3, gaps=False)
    rows["length"] = [1.0, 1e39, 2.0]
    with pytest.raises(ValueError, match="float32") as own:
        pipeline.predict(rows[FEATURES])
    with pytest.raises(ValueError, match="float32") as fast_error:
        fast(as_columns(rows))
    assert str(fast_error.value) == str(own.value)
