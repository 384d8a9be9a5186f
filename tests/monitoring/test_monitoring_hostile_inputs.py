"""`mlops monitor` on hostile inputs: malformed captures, mixed endpoints, bad labels, bad
settings and failing exporters end in an exit code and a message naming the file, never in a
traceback; a failing exporter never hides drift."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from examples_root import EXAMPLE_DATA, EXAMPLE_MODELS
from monitoring_helpers import FEATURES, Champion, Writer, grown
from typer.testing import CliRunner, Result

from monitoring.current import read_current
from pipelines.cli.main import app
from pipelines.core.datasets import ColumnSpec, load_dataset_by_name
from pipelines.core.errors import DataError, DefinitionError
from serving.capture import CaptureWriter, make_record

pytestmark = pytest.mark.monitoring

SCHEMA = {f: load_dataset_by_name(EXAMPLE_DATA, "penguins").definition.columns[f] for f in FEATURES}
HOUR = Path("penguins", "AllTraffic", "2026", "01", "01", "00")


def mlops(champion: Champion, *args: str, **env: str | None) -> Result:
    result = CliRunner().invoke(app, list(args), env={**champion.env, **env})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def good_line(rows: pd.DataFrame, **meta: str) -> bytes:
    record = make_record(
        rows[FEATURES].to_csv(index=False).encode(), "text/csv",
        orjson.dumps({"predictions": rows["species"].tolist()}), "application/json",
    )  # fmt: skip
    record["eventMetadata"].update(meta)
    return orjson.dumps(record)


def hostile_lines(rows: pd.DataFrame) -> list[bytes]:
    """The reviewer's malformed records, one per line, in this order."""
    oops = orjson.loads(good_line(rows))
    oops["eventMetadata"] = "oops"
    bare = orjson.loads(good_line(rows))
    bare["captureData"]["endpointInput"].update(
        observedContentType="application/json", encoding="JSON",
        data=json.dumps([[39.1, 18.7, 181, 3750, "Dream"]]),
    )  # fmt: skip
    return [
        b"[1,2]",
        b'{"captureData": null}',
        b'{"eventMetadata": {"eventId": "x"}}',
        orjson.dumps(oops),
        orjson.dumps(bare),
        b"{not json",
    ]


def write_lines(folder: Path, name: str, lines: list[bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# -- 5: malformed records are skipped and counted; none valid is exit 2 naming file and line --


def test_malformed_records_are_skipped_and_counted(
    penguins: pd.DataFrame, write_captures: Writer
) -> None:
    """Six malformed lines among good records: the good rows are read, the six counted with
    their file and line."""
    location = write_captures(penguins.head(20))
    bad = write_lines(location / HOUR, "bad.jsonl", hostile_lines(penguins.head(3)))
    current = read_current(location, FEATURES, SCHEMA, endpoint="penguins")
    assert current.rows == 20 and current.records == 4
    assert current.skipped == 6
    assert current.skipped_examples[0].startswith(f"{bad}:1: ")
    assert [e.split(": ", 1)[0] for e in current.skipped_examples] == [
        f"{bad}:{n}" for n in range(1, 6)
    ]


@pytest.mark.parametrize("number", range(6))
def test_only_malformed_records_is_bad_input_naming_file_and_line(
    number: int, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """Each malformed shape alone: a DataError naming the file and the line, not a traceback."""
    line = hostile_lines(penguins.head(3))[number]
    bad = write_lines(tmp_path / "capture" / HOUR, "bad.jsonl", [b"", line])  # blank line 1
    with pytest.raises(DataError, match=rf"no valid capture record.*{bad}:2: "):
        read_current(tmp_path / "capture", FEATURES, SCHEMA, endpoint="penguins")


def test_records_without_rows_are_bad_input(penguins: pd.DataFrame, tmp_path: Path) -> None:
    """Requests holding only a CSV header: nothing to judge is exit 2, never "no drift"."""
    write_lines(tmp_path / "capture" / HOUR, "empty.jsonl", [good_line(penguins.head(0))] * 2)
    with pytest.raises(DataError, match=r"the 2 capture record\(s\) hold no rows"):
        read_current(tmp_path / "capture", FEATURES, SCHEMA, endpoint="penguins")


def test_a_time_without_timezone_is_utc(penguins: pd.DataFrame, tmp_path: Path) -> None:
    """An inferenceTime without a timezone, with --since: read as UTC, not a crash."""
    now = datetime.now(UTC)
    lines = [
        good_line(penguins.head(4), inferenceTime=(now - timedelta(hours=1)).strftime(
            "%Y-%m-%dT%H:%M:%S")),
        good_line(penguins.head(3), inferenceTime=(now - timedelta(hours=9)).strftime(
            "%Y-%m-%dT%H:%M:%S")),
    ]  # fmt: skip
    write_lines(tmp_path / "capture" / HOUR, "naive.jsonl", lines)
    current = read_current(
        tmp_path / "capture", FEATURES, SCHEMA, since=now - timedelta(hours=5), endpoint="penguins"
    )
    assert (current.rows, current.records, current.skipped) == (4, 1, 0)


def test_cli_reports_skipped_records_and_exits_2_when_none_is_valid(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """mlops monitor: skipped records in drift.json and on the console; only bad ones: exit 2."""
    location = write_captures(penguins.sample(100, random_state=1))
    write_lines(location / HOUR, "bad.jsonl", hostile_lines(penguins.head(3)))
    result = mlops(champion, "monitor", "penguins", "--captures", str(location), "--json",
                   "--output-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["current"]["skipped_records"] == 6
    assert "6 malformed capture record(s) skipped" in result.stderr
    only_bad = tmp_path / "only-bad"
    bad = write_lines(only_bad / HOUR, "bad.jsonl", hostile_lines(penguins.head(3)))
    result = mlops(champion, "monitor", "penguins", "--captures", str(only_bad),
                   "--output-dir", str(tmp_path / "r2"))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{bad}:1:" in result.stderr.replace("\n", "")


# -- 6: booleans --------------------------------------------------------------------------------


def test_booleans_from_csv_and_json_are_two_labels_tested_with_z(
    penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """ "true"/"false" (CSV) and true/false (JSON) are the reference's two values: no false
    drift, and the two-valued column gets the z-test on a small reference, as in Evidently."""
    from monitoring import drift

    rows = penguins.head(100).copy()
    truth = [i % 3 == 0 for i in range(len(rows))]
    rows["tagged"] = ["true" if t else "false" for t in truth]
    columns = [*FEATURES, "tagged"]
    location = write_captures(rows.iloc[:50], columns=columns)
    rows["tagged"] = truth
    write_captures(rows.iloc[50:], columns=columns, shape="records")
    schema = {**SCHEMA, "tagged": ColumnSpec(type="bool")}
    current = read_current(location, columns, schema, endpoint="penguins")
    assert current.frame["tagged"].tolist() == truth
    reference = drift.profile("tagged", "categorical", pd.Series(truth * 3, dtype=object))
    verdict = drift.compare(reference, current.frame["tagged"])
    assert (verdict.method, verdict.drifted, verdict.stats["distinct_values"]) == ("z", False, 2)


# -- 7: concept drift with a probability metric; NaN never reads as "not degraded" ------------


def test_a_probability_metric_falls_back_to_a_label_metric(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """primary_metric log_loss: the labels are scored with f1_macro, and the report says so."""
    from monitoring import monitor
    from monitoring.reference import load_reference
    from pipelines.core.definitions import Model
    from pipelines.core.registry import connect
    from serving.capture import read_captures

    rows = penguins.sample(50, random_state=4)
    location = write_captures(rows)
    ids = [r["eventMetadata"]["eventId"] for r in read_captures(location)]
    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {"event_id": [ids[i // 5] for i in range(50)], "row": [i % 5 for i in range(50)],
         "species": rows["species"].tolist()}
    ).to_csv(labels, index=False)  # fmt: skip
    reference = load_reference(champion.settings, "penguins", client=connect(champion.settings))
    base = reference.model
    model = Model(
        base.definition.model_copy(update={"primary_metric": "log_loss"}), base.path, base.dataset
    )
    current = read_current(location, FEATURES, SCHEMA)
    concept = monitor._concept_drift(reference, current.frame, model, labels)
    assert concept.metric == "f1_macro" and concept.current == pytest.approx(1.0)
    assert concept.note is not None and "log_loss" in concept.note
    assert concept.degraded is False
    no_metric = dataclasses.replace(reference, metrics=None)
    with pytest.raises(DataError, match="no test f1_macro"):
        monitor._concept_drift(no_metric, current.frame, model, labels)


def test_a_nan_score_is_never_not_degraded() -> None:
    """A NaN current score cannot be judged: asking for the verdict is an error, not False."""
    from monitoring.monitor import ConceptDrift

    unjudged = ConceptDrift("roc_auc", 0.9, math.nan, 0.0, True, 10)
    with pytest.raises(ValueError, match="cannot be judged"):
        _ = unjudged.degraded


# -- 8: only the model's endpoint folder is read ------------------------------------------------


def test_other_endpoints_under_the_destination_are_not_read(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """A destination with penguins/ and another endpoint's grown birds: only penguins/ is read,
    so no drift; the endpoint folder itself is accepted; a missing endpoint is named."""
    location = write_captures(penguins.sample(100, random_state=6))
    other = CaptureWriter(str(location), "penguins-canary", flush_seconds=60)
    shifted = grown(penguins.sample(300, random_state=7))
    for start in range(0, 300, 10):
        chunk = shifted.iloc[start : start + 10]
        other.capture(chunk[FEATURES].to_csv(index=False).encode(), "text/csv",
                      b'{"predictions": []}', "application/json")  # fmt: skip
    other.close()
    assert read_current(location, FEATURES, SCHEMA, endpoint="penguins").rows == 100
    assert read_current(location / "penguins", FEATURES, SCHEMA, endpoint="penguins").rows == 100
    with pytest.raises(DataError, match=r"no captures of endpoint 'absent'.*penguins, penguins-"):
        read_current(location, FEATURES, SCHEMA, endpoint="absent")
    result = mlops(champion, "monitor", "penguins", "--captures", str(location), "--json",
                   "--output-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["current"]["rows"] == 100


# -- 13: drift settings checked against the dataset ---------------------------------------------


def _penguins_with(drift_settings: dict[str, object]) -> tuple[Any, Any]:
    from pipelines.core.definitions import Drift, load_model

    model = load_model(EXAMPLE_MODELS, EXAMPLE_DATA, "penguins")
    monitoring = model.definition.monitoring.model_copy(
        update={"drift": Drift.model_validate(drift_settings)}
    )
    return model.definition.model_copy(update={"monitoring": monitoring}), model.dataset


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"features": {"bill_length_mm": {"method": "chi2"}}},
         "monitoring.drift.features.bill_length_mm.method"),
        ({"features": {"bill_length_mm": {"method": "ks", "threshold": 5}}},
         "monitoring.drift.features.bill_length_mm.threshold"),
        ({"features": {"island": {"threshold": 1}}}, "monitoring.drift.features.island.threshold"),
        ({"method": "ks", "threshold": 2, "features": {"island": {"method": "psi"}}},
         "monitoring.drift.threshold"),
        ({"method": "psi"}, None),
        ({"features": {"bill_length_mm": {"method": "psi", "threshold": 5}}}, None),
        ({"features": {"island": {"method": "chi2", "threshold": 0.01}}}, None),
    ],
)  # fmt: skip
def test_check_definition_names_the_field(settings: dict[str, object], field: str | None) -> None:
    """chi2 on a numeric feature and p-value thresholds outside (0, 1) are refused, naming
    models/penguins/model.yaml and the field; distances may exceed 1."""
    from pipelines.core.drift_rules import check_definition

    definition, dataset = _penguins_with(settings)
    if field is None:
        check_definition(definition, dataset)
        return
    with pytest.raises(DefinitionError, match=rf"^models/penguins/model\.yaml: {field}: "):
        check_definition(definition, dataset)


def test_the_repositorys_models_pass_check_definition() -> None:
    from pipelines.core.definitions import load_model
    from pipelines.core.drift_rules import check_definition

    for name in ("penguins", "seattle_weather"):
        model = load_model(EXAMPLE_MODELS, EXAMPLE_DATA, name)
        check_definition(model.definition, model.dataset)


def test_monitor_refuses_a_p_value_threshold_above_1(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """threshold 5 on a KS feature would flag drift on clean traffic: exit 2 before any work."""
    import shutil

    root = tmp_path / "repo"
    for folder in ("models", "data", "environments"):
        shutil.copytree(champion.settings.root / folder, root / folder)
    path = root / "models" / "penguins" / "model.yaml"
    text = path.read_text()
    old = "drift: {method: auto, threshold: 0.1}"
    assert old in text
    path.write_text(text.replace(
        old, "drift: {method: auto, threshold: 0.1, "
        "features: {bill_length_mm: {method: ks, threshold: 5}}}"))  # fmt: skip
    location = write_captures(penguins.sample(100, random_state=8))
    result = mlops(champion, "monitor", "penguins", "--captures", str(location),
                   "--output-dir", str(tmp_path / "r"), MLOPS_ROOT=str(root))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "monitoring.drift.features.bill_length_mm.threshold" in result.stderr.replace("\n", "")


# -- 14: bad labels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"), [("x", "line 3: 'x' is not a row number"), ("", "empty value on line 3")]
)
def test_a_bad_row_in_the_labels_is_exit_2(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path,
    row: str, message: str,
) -> None:  # fmt: skip
    """row 'x' or empty: exit 2 naming the labels file, the column and the line."""
    location = write_captures(penguins.head(10))
    labels = tmp_path / "labels.csv"
    labels.write_text(f"event_id,row,species\ne1,0,Adelie\ne2,{row},Gentoo\n")
    result = mlops(champion, "monitor", "penguins", "--captures", str(location),
                   "--labels", str(labels), "--output-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{labels}: row: {message}" in result.stderr.replace("\n", "")


def test_a_word_in_a_numeric_target_is_bad_input(tmp_path: Path) -> None:
    """A regression's labels with 'warm' as temp_max: DataError naming file, column and line."""
    from monitoring.monitor import read_labels

    labels = tmp_path / "labels.csv"
    labels.write_text("event_id,temp_max\ne1,12.5\ne2,warm\n")
    with pytest.raises(DataError, match=r"labels\.csv: temp_max: line 3: 'warm' is not a number"):
        read_labels(labels, "temp_max", numeric=True)
    assert read_labels(labels, "temp_max").shape == (2, 3)  # a classification's labels are text


# -- 4: a failing exporter never hides drift ----------------------------------------------------


UNREACHABLE = "http://127.0.0.1:1"


def test_an_unreachable_pushgateway_still_exits_3_on_drift(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """--push to a closed port: the reports are written, the Pushgateway named, exit 3."""
    location = write_captures(grown(penguins.sample(150, random_state=9)))
    out = tmp_path / "r"
    result = mlops(champion, "monitor", "penguins", "--captures", str(location), "--push",
                   "--output-dir", str(out), MLOPS_MONITOR_PUSHGATEWAY=UNREACHABLE)  # fmt: skip
    assert result.exit_code == 3, result.output
    assert f"Pushgateway ({UNREACHABLE}) export failed" in result.output.replace("\n", "")
    assert json.loads((out / "drift.json").read_text())["drift_detected"] is True


def test_an_exporter_failing_without_drift_is_exit_2(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """No drift but the metrics went nowhere: exit 2 (not 0, not 1), reports written."""
    location = write_captures(penguins.sample(100, random_state=10))
    out = tmp_path / "r"
    result = mlops(champion, "monitor", "penguins", "--captures", str(location), "--push",
                   "--output-dir", str(out), MLOPS_MONITOR_PUSHGATEWAY=UNREACHABLE)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "no drift" in result.output and (out / "drift.json").exists()


@pytest.mark.parametrize(
    ("aws", "error"),
    [
        ({"AWS_DEFAULT_REGION": None, "AWS_REGION": None}, "NoRegionError"),
        ({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": UNREACHABLE},
         "EndpointConnectionError"),
    ],
)  # fmt: skip
def test_cloudwatch_failures_still_exit_3_on_drift(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path,
    aws: dict[str, str | None], error: str,
) -> None:  # fmt: skip
    """--cloudwatch without a region or with an unreachable endpoint: CloudWatch named, exit 3."""
    location = write_captures(grown(penguins.sample(150, random_state=11)))
    env: dict[str, str | None] = {
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE":
        str(tmp_path / "none"), "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY":
        "testing", "AWS_MAX_ATTEMPTS": "1", "AWS_ENDPOINT_URL": None, **aws,
    }  # fmt: skip
    result = mlops(champion, "monitor", "penguins", "--captures", str(location), "--cloudwatch",
                   "--output-dir", str(tmp_path / "r"), **env)  # fmt: skip
    assert result.exit_code == 3, result.output
    assert f"CloudWatch export failed: {error}" in result.output.replace("\n", "")


# -- 17: --since-hours 0 and an output folder that cannot be made --------------------------------


@pytest.mark.parametrize("hours", ["0", "-1", "nan"])
def test_since_hours_must_be_above_0(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path, hours: str
) -> None:
    location = write_captures(penguins.head(10))
    result = mlops(champion, "monitor", "penguins", "--captures", str(location),
                   "--since-hours", hours, "--output-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--since-hours" in result.stderr


@pytest.mark.parametrize("where", ["/proc/mlops-monitor-test", "FILE/sub"])
def test_an_output_dir_that_cannot_be_made_is_exit_2(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path, where: str
) -> None:
    """/proc/x or a folder below a file: exit 2 naming the folder, before any work."""
    (tmp_path / "file").write_text("")
    out = where.replace("FILE", str(tmp_path / "file"))
    location = write_captures(penguins.head(10))
    result = mlops(champion, "monitor", "penguins", "--captures", str(location),
                   "--output-dir", out)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{out}: --output-dir: cannot create the report folder" in result.stderr.replace(
        "\n", ""
    )
