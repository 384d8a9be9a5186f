"""Data validation: each rule is reported with its column, count and examples, all at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from examples_root import EXAMPLE_MODELS

from pipelines.core.datasets import fingerprint_bytes, load_dataset, update_fingerprint
from pipelines.core.definitions import Model, discover_models, load_model
from pipelines.core.errors import DataError, ExitCode, Rejected
from pipelines.stages.validate import (
    ValidationReport,
    Violation,
    validate_dataset,
    validate_for_model,
)

pytestmark = pytest.mark.data


def _model(repo: Path, name: str = "penguins", **overrides) -> Model:
    return load_model(repo / "models", repo / "data", name, overrides or None)


def _csv(repo: Path, name: str = "penguins") -> Path:
    return repo / "data" / name / f"{name}.csv"


def _dataset_yaml(repo: Path, name: str = "penguins") -> Path:
    return repo / "data" / name / "dataset.yaml"


def _refingerprint(repo: Path, name: str = "penguins") -> None:
    update_fingerprint(load_dataset(_dataset_yaml(repo, name)))


def _edit(
    repo: Path,
    change: Callable[[pd.DataFrame], pd.DataFrame | None],
    *,
    name: str = "penguins",
    refingerprint: bool = True,
) -> None:
    """Apply ``change`` to the CSV read as text; record the new fingerprint unless told not to."""
    path = _csv(repo, name)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    result = change(frame)
    if result is not None:
        frame = result
    frame.to_csv(path, index=False)
    if refingerprint:
        _refingerprint(repo, name)


def _set_cell(row: int, column: str, value: str) -> Callable[[pd.DataFrame], None]:
    """Set one cell; ``row`` is 0-based, reported as ``row + 1``."""

    def change(frame: pd.DataFrame) -> None:
        frame.loc[row, column] = value

    return change


def _edit_schema(repo: Path, old: str, new: str, name: str = "penguins") -> None:
    path = _dataset_yaml(repo, name)
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _rules(report: ValidationReport) -> list[tuple[str | None, str, int]]:
    return [(v.column, v.rule, v.count) for v in report.violations]


def _only(report: ValidationReport) -> Violation:
    assert len(report.violations) == 1, _rules(report)
    return report.violations[0]


# --- clean data ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", discover_models(EXAMPLE_MODELS))
def test_example_data_passes_for_its_model(repo, name):
    model = _model(repo, name)

    frame, report = validate_for_model(model)

    assert report.ok, [v.render() for v in report.violations]
    assert report.rows == len(frame) > 0
    assert report.fingerprint == model.dataset.definition.fingerprint
    assert list(frame.columns) == list(model.dataset.definition.columns)


def test_rewriting_the_csv_and_its_fingerprint_keeps_it_valid(repo):
    _edit(repo, lambda frame: None)

    _, report = validate_for_model(_model(repo))

    assert report.ok, [v.render() for v in report.violations]


def test_clean_data_is_returned_typed(repo):
    frame, _ = validate_dataset(_model(repo, "seattle_weather").dataset)

    assert pd.api.types.is_datetime64_any_dtype(frame["date"])
    assert pd.api.types.is_float_dtype(frame["temp_max"])


# --- one rule at a time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("bill_length_mm", "long", "type"),
        ("bill_length_mm", "inf", "type"),
        ("year", "2007.5", "type"),
        ("year", "twenty", "type"),
        ("bill_length_mm", "10.5", "min"),
        ("body_mass_g", "9000", "max"),
        ("island", "Atlantis", "category"),
        ("sex", "", "null"),
        ("bill_length_mm", "", "null"),
    ],
)
def test_bad_value_is_reported_with_column_rule_count_and_example(repo, column, value, rule):
    _edit(repo, _set_cell(3, column, value))

    _, report = validate_for_model(_model(repo))

    violation = _only(report)
    assert (violation.column, violation.rule, violation.count) == (column, rule, 1)
    expected = "missing" if value == "" else repr(value)
    assert violation.examples == [f"row 4: {expected}"]


def test_violation_counts_every_bad_row_and_shows_a_few(repo):
    def change(frame: pd.DataFrame) -> None:
        frame.loc[0:9, "island"] = "Atlantis"

    _edit(repo, change)

    violation = _only(validate_dataset(_model(repo).dataset)[1])

    assert (violation.column, violation.rule, violation.count) == ("island", "category", 10)
    assert violation.examples == [f"row {i}: 'Atlantis'" for i in range(1, 6)]


def test_bool_column_rejects_text_that_is_not_true_or_false(repo):
    _edit_schema(repo, "  year: {type: int, min: 2007, max: 2030}\n", "  year: {type: bool}\n")

    def change(frame: pd.DataFrame) -> None:
        frame["year"] = ["yes"] * (len(frame) - 1) + ["maybe"]

    _edit(repo, change)

    violation = _only(validate_dataset(_model(repo).dataset)[1])

    assert (violation.column, violation.rule, violation.count) == ("year", "type", 1)


def test_datetime_column_rejects_text_that_is_not_a_date(repo):
    _edit(repo, _set_cell(10, "date", "not a day"), name="seattle_weather")

    report = validate_dataset(_model(repo, "seattle_weather").dataset)[1]

    violation = _only(report)
    assert (violation.column, violation.rule, violation.count) == ("date", "type", 1)
    assert violation.examples == ["row 11: 'not a day'"]


def test_missing_column_is_reported(repo):
    _edit(repo, lambda frame: frame.drop(columns=["year"]))

    report = validate_dataset(_model(repo).dataset)[1]

    assert _rules(report) == [("year", "missing_column", report.rows)]


def test_unexpected_column_is_reported(repo):
    _edit(repo, lambda frame: frame.assign(colour="black"))

    report = validate_dataset(_model(repo).dataset)[1]

    assert _rules(report) == [("colour", "unexpected_column", report.rows)]
    assert "allow_extra_columns" in report.violations[0].message


def test_unexpected_column_is_allowed_when_extra_columns_are_allowed(repo):
    _edit(repo, lambda frame: frame.assign(colour="black"))
    _edit_schema(repo, "rows: {min: 200", "allow_extra_columns: true\nrows: {min: 200")

    frame, report = validate_for_model(_model(repo))

    assert report.ok, [v.render() for v in report.violations]
    assert "colour" not in frame.columns


@pytest.mark.parametrize("rows", [150, 199])
def test_too_few_rows_is_reported(repo, rows):
    _edit(repo, lambda frame: frame.head(rows))

    report = validate_dataset(_model(repo).dataset)[1]

    assert _rules(report) == [(None, "row_count", rows)]
    assert "200" in report.violations[0].message


def test_too_many_rows_is_reported(repo):
    _edit(repo, lambda frame: frame.head(250))
    _edit_schema(repo, "rows: {min: 200, max: 100000}", "rows: {min: 200, max: 240}")

    report = validate_dataset(_model(repo).dataset)[1]

    assert _rules(report) == [(None, "row_count", 250)]


def test_changed_data_without_a_new_fingerprint_is_reported(repo):
    _edit(repo, _set_cell(0, "bill_length_mm", "39.2"), refingerprint=False)
    model = _model(repo)

    report = validate_dataset(model.dataset)[1]

    violation = _only(report)
    assert (violation.column, violation.rule) == (None, "fingerprint")
    assert report.fingerprint == fingerprint_bytes(_csv(repo).read_bytes())
    assert report.fingerprint != model.dataset.definition.fingerprint
    assert "mlops dataset-fingerprint penguins --write" in violation.message


def test_update_fingerprint_records_the_data_and_keeps_comments(repo):
    _edit(repo, _set_cell(0, "bill_length_mm", "39.2"), refingerprint=False)
    before = _dataset_yaml(repo).read_text(encoding="utf-8")
    dataset = load_dataset(_dataset_yaml(repo))

    old, new = update_fingerprint(dataset)

    after = _dataset_yaml(repo).read_text(encoding="utf-8")
    assert old != new == fingerprint_bytes(_csv(repo).read_bytes())
    assert after == before.replace(old, new)


# --- rules that depend on the model -------------------------------------------------------


def _nullable_bill_length(repo: Path) -> None:
    _edit_schema(
        repo, "bill_length_mm: {type: float,", "bill_length_mm: {type: float, nullable: true,"
    )
    _edit(repo, _set_cell(5, "bill_length_mm", ""))


def test_null_in_a_nullable_feature_is_rejected_without_imputation(repo):
    _nullable_bill_length(repo)

    _, report = validate_for_model(_model(repo))

    violation = _only(report)
    assert (violation.column, violation.rule) == ("bill_length_mm", "null_feature")
    assert violation.count == 1
    assert violation.examples == ["row 6: missing"]
    assert "preprocessing.impute" in violation.message


def test_null_in_a_nullable_feature_is_allowed_with_imputation(repo):
    _nullable_bill_length(repo)

    frame, report = validate_for_model(_model(repo, **{"preprocessing.impute": True}))

    assert report.ok, [v.render() for v in report.violations]
    assert frame["bill_length_mm"].isna().sum() == 1


def test_null_in_a_nullable_feature_passes_dataset_checks(repo):
    _nullable_bill_length(repo)

    assert validate_dataset(_model(repo).dataset)[1].ok


def test_null_in_a_nullable_target_is_rejected(repo):
    _edit_schema(repo, "species: {type: category,", "species: {type: category, nullable: true,")
    _edit(repo, _set_cell(2, "species", ""))

    _, report = validate_for_model(_model(repo))

    assert _rules(report) == [("species", "null_target", 1)]


@pytest.mark.parametrize(
    ("name", "column", "value", "rule"),
    [
        ("penguins", "species", "", "null"),
        ("seattle_weather", "temp_max", "hot", "type"),
        ("seattle_weather", "date", "", "null"),
        ("seattle_weather", "date", "not a day", "type"),
    ],
    ids=["target-null", "target-type", "time-null", "time-type"],
)
def test_bad_cell_in_target_or_time_column_is_reported_once(repo, name, column, value, rule):
    """The schema rule already explains the cell; a second null_target/null_time is noise."""
    _edit(repo, _set_cell(3, column, value), name=name)

    _, report = validate_for_model(_model(repo, name))

    assert _rules(report) == [(column, rule, 1)]
    assert report.violations[0].examples == [f"row 4: {repr(value) if value else 'missing'}"]


def test_bad_value_in_a_nullable_feature_is_a_type_error_not_a_null(repo):
    _edit_schema(
        repo, "bill_length_mm: {type: float,", "bill_length_mm: {type: float, nullable: true,"
    )
    _edit(repo, _set_cell(5, "bill_length_mm", "long"))

    _, report = validate_for_model(_model(repo))

    assert _rules(report) == [("bill_length_mm", "type", 1)]


def test_single_class_target_is_rejected_for_classification(repo):
    _edit(repo, lambda frame: frame.assign(species="Adelie"))

    _, report = validate_for_model(_model(repo))

    assert _rules(report) == [("species", "single_class", report.rows)]


def test_constant_target_is_rejected_for_regression(repo):
    _edit(repo, lambda frame: frame.assign(temp_max="10.0"), name="seattle_weather")

    _, report = validate_for_model(_model(repo, "seattle_weather"))

    assert _rules(report) == [("temp_max", "constant_target", report.rows)]


# --- the report ---------------------------------------------------------------------------


def _break_several_rules(repo: Path) -> None:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[0, "bill_length_mm"] = "long"
        frame.loc[1, "body_mass_g"] = "9000"
        frame.loc[2, "island"] = "Atlantis"
        frame.loc[3, "sex"] = ""
        return frame.assign(colour="black")

    _edit(repo, change, refingerprint=False)


def test_every_violation_is_collected_in_one_report(repo):
    _break_several_rules(repo)

    _, report = validate_for_model(_model(repo))

    assert sorted(_rules(report), key=str) == sorted(
        [
            (None, "fingerprint", report.rows),
            ("colour", "unexpected_column", report.rows),
            ("bill_length_mm", "type", 1),
            ("body_mass_g", "max", 1),
            ("island", "category", 1),
            ("sex", "null", 1),
        ],
        key=str,
    )
    assert not report.as_dict()["passed"]


def test_raise_if_failed_is_a_rejection_listing_every_violation(repo):
    _break_several_rules(repo)
    model = _model(repo)
    _, report = validate_for_model(model)

    with pytest.raises(Rejected) as info:
        report.raise_if_failed(str(model.dataset.path))

    error = info.value
    assert error.exit_code is ExitCode.REJECTED == 1
    assert error.file == str(model.dataset.path)
    assert str(model.dataset.path) in str(error)
    assert f"{len(report.violations)} violation(s)" in error.message
    for violation in report.violations:
        assert violation.render() in error.message


def test_raise_if_failed_is_silent_for_clean_data(repo):
    model = _model(repo)
    _, report = validate_for_model(model)

    report.raise_if_failed(str(model.dataset.path))


# --- unreadable data ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", b"a,b\n1,2\n1,2,3,4\n", b"\xff\xfe\xfa not utf-8\n"],
    ids=["empty", "blank-lines", "ragged-rows", "not-utf8"],
)
def test_unparseable_csv_is_a_data_error_naming_the_source(repo, content):
    _csv(repo).write_bytes(content)
    model = _model(repo)

    with pytest.raises(DataError) as info:
        validate_for_model(model)

    error = info.value
    assert error.exit_code is ExitCode.BAD_INPUT == 2
    assert (error.file, error.field) == (str(_dataset_yaml(repo)), "source")


def test_missing_source_file_is_a_data_error_naming_the_source(repo):
    _csv(repo).unlink()

    with pytest.raises(DataError) as info:
        validate_for_model(_model(repo))

    error = info.value
    assert error.exit_code == 2
    assert (error.file, error.field) == (str(_dataset_yaml(repo)), "source")
    assert "does not exist" in error.message


# --- S3 sources (moto, in-process) --------------------------------------------------------


@pytest.fixture
def s3(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="training-data")
        yield client


def _point_at_s3(repo: Path, uri: str) -> None:
    _edit_schema(repo, "source: penguins.csv", f"source: {uri}")


def test_s3_source_is_read_and_fingerprinted_by_its_bytes(repo, s3):
    body = _csv(repo).read_bytes()
    s3.put_object(Bucket="training-data", Key="penguins/v1.csv", Body=body)
    _point_at_s3(repo, "s3://training-data/penguins/v1.csv")
    _csv(repo).unlink()  # nothing may be read from the local copy
    dataset = load_dataset(_dataset_yaml(repo))

    assert dataset.source == "s3://training-data/penguins/v1.csv"
    assert dataset.content_fingerprint() == fingerprint_bytes(body)
    frame, report = validate_for_model(_model(repo))
    assert report.ok, [v.render() for v in report.violations]
    assert len(frame) == report.rows == body.count(b"\n") - 1


def test_s3_object_that_changed_fails_the_fingerprint_rule(repo, s3):
    body = _csv(repo).read_bytes().replace(b"39.1,", b"39.2,", 1)
    s3.put_object(Bucket="training-data", Key="penguins.csv", Body=body)
    _point_at_s3(repo, "s3://training-data/penguins.csv")

    report = validate_dataset(_model(repo).dataset)[1]

    assert _rules(report) == [(None, "fingerprint", report.rows)]


@pytest.mark.parametrize(
    "uri",
    ["s3://training-data/missing.csv", "s3://no-such-bucket/penguins.csv", "s3://training-data"],
)
def test_unreadable_s3_source_is_a_data_error_naming_the_source(repo, s3, uri):
    _point_at_s3(repo, uri)
    model = _model(repo)

    with pytest.raises(DataError) as info:
        validate_for_model(model)

    error = info.value
    assert error.exit_code == 2
    assert (error.file, error.field) == (str(_dataset_yaml(repo)), "source")
    assert uri in error.message


def test_gaps_in_a_nullable_bool_column_are_nan_so_an_imputing_model_trains(repo):
    # pandas' NA made scikit-learn's imputer fail ("boolean value of NA is ambiguous").
    from pipelines.core.estimators import build_pipeline

    year = "  year: {type: int, min: 2007, max: 2030}\n"
    _edit_schema(repo, year, "  year: {type: bool, nullable: true}\n")

    def change(frame: pd.DataFrame) -> None:
        frame["year"] = (["true", "false", ""] * len(frame))[: len(frame)]

    _edit(repo, change)
    model = load_model(repo / "models", repo / "data", "penguins", {
        "features": ["bill_length_mm", "island", "year"], "preprocessing.impute": True,
    })  # fmt: skip
    typed, report = validate_for_model(model)
    assert report.ok, report.render()
    gaps = typed["year"][typed["year"].isna()]
    assert len(gaps) and all(v is not pd.NA for v in gaps)
    build_pipeline(model).fit(typed[model.definition.features], typed["species"])
