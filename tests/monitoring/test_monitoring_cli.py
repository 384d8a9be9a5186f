"""`mlops monitor` on realistic captures of a promoted champion: exit codes 0, 3 and 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from monitoring_helpers import Champion, Writer, grown
from typer.testing import CliRunner, Result

from pipelines.cli.main import app

pytestmark = pytest.mark.monitoring


def mlops(champion: Champion, *args: str, **env: str | None) -> Result:
    result = CliRunner().invoke(app, list(args), env={**champion.env, **env})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_normal_traffic_exits_0(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """Rows like the training rows: no drift, exit 0, reports written."""
    location = write_captures(penguins.sample(200, random_state=1))
    out = tmp_path / "reports"
    result = mlops(champion, "monitor", "penguins", "--captures", str(location),
                   "--output-dir", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output
    report = json.loads((out / "drift.json").read_text())
    assert report["drift_detected"] is False
    assert report["reference"]["version"] == champion.version
    assert "training rows of champion version" in report["reference"]["source"]
    html = (out / "drift.html").read_text()
    assert html.count("<svg ") == 6  # five features and the prediction
    assert "<script" not in html and "http" not in html.replace("http://", "")


def test_shifted_traffic_exits_3_and_prints_the_dispatch(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """Grown birds: drift, exit 3, JSON on stdout, dry-run retrain trigger on stderr."""
    location = write_captures(grown(penguins.sample(200, random_state=2)))
    result = mlops(champion, "monitor", "penguins", "--captures", str(location), "--env", "prod",
                   "--json", "--output-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    drifted = set(report["data_drift"]["drifted_features"])
    assert {"bill_length_mm", "flipper_length_mm", "body_mass_g"} <= drifted
    assert "island" not in drifted
    assert "event_type" in result.stderr and "drift-detected" in result.stderr
    assert "dry run, not sent" in result.stderr


def test_captures_from_the_environment_variable(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """MLOPS_MONITOR_CAPTURES is the default location."""
    location = write_captures(penguins.sample(100, random_state=3))
    result = mlops(champion, "monitor", "penguins", "--output-dir", str(tmp_path / "r"),
                   MLOPS_MONITOR_CAPTURES=str(location))  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no captures to read"),
        (("--captures", "/nonexistent/capture"), "no capture folder at /nonexistent/capture"),
        (("--captures", "CAPTURES", "--labels", "/nonexistent/labels.csv"), "labels.csv"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path,
    args: tuple[str, ...], message: str,
) -> None:  # fmt: skip
    """No captures, a missing folder or unreadable labels: exit 2 and a message naming it."""
    location = write_captures(penguins.head(20))
    argv = [str(location) if a == "CAPTURES" else a for a in args]
    result = mlops(champion, "monitor", "penguins", *argv, "--output-dir", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_missing_columns_exit_2(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """Captures of another model's requests: exit 2 naming the missing columns."""
    location = write_captures(penguins.head(20), columns=["bill_length_mm", "bill_depth_mm"])
    result = mlops(champion, "monitor", "penguins", "--captures", str(location),
                   "--output-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 2
    assert "flipper_length_mm, body_mass_g, island" in result.stderr.replace("\n", "")


def test_labels_give_concept_drift(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """Labels that disagree with the captured predictions degrade the metric: exit 3."""
    from serving.capture import read_captures

    rows = penguins.sample(100, random_state=4)
    location = write_captures(rows)
    ids = [r["eventMetadata"]["eventId"] for r in read_captures(location)]
    truth = rows["species"].tolist()
    # Every prediction right, then every prediction wrong (the world changed, inputs did not).
    wrong = {"Adelie": "Gentoo", "Gentoo": "Chinstrap", "Chinstrap": "Adelie"}
    for name, labels in (("right", truth), ("wrong", [wrong[s] for s in truth])):
        frame = pd.DataFrame(
            {"event_id": [ids[i // 5] for i in range(100)], "row": [i % 5 for i in range(100)],
             "species": labels}
        )  # fmt: skip
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    base = ["monitor", "penguins", "--captures", str(location), "--json", "--labels"]
    ok = mlops(champion, *base, str(tmp_path / "right.csv"), "--output-dir", str(tmp_path / "a"))
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["concept_drift"]["current"] == pytest.approx(1.0)
    bad = mlops(champion, *base, str(tmp_path / "wrong.csv"), "--output-dir", str(tmp_path / "b"))
    assert bad.exit_code == 3, bad.output
    concept = json.loads(bad.stdout)["concept_drift"]
    assert concept["degraded"] is True and concept["rows"] == 100
    assert concept["current"] == pytest.approx(0.0)
    hourly = list(concept["over_time"].values())  # one hour, two if written across the hour
    assert 1 <= len(hourly) <= 2 and all(v == pytest.approx(0.0) for v in hourly)


def test_regression_model_with_a_psi_override(seattle: Champion, tmp_path: Path) -> None:
    """seattle_weather: JSON captures, numeric predictions, PSI (threshold 0.2) on precipitation
    as its model.yaml says, auto elsewhere; warmer days drift temp_min only."""
    from examples_root import EXAMPLE_DATA

    from serving.capture import CaptureWriter

    days = pd.read_csv(EXAMPLE_DATA / "seattle_weather" / "seattle_weather.csv")
    days = days.sample(300, random_state=1)
    days["temp_min"] = days["temp_min"] + 4
    features = ["temp_min", "precipitation", "wind", "weather"]
    writer = CaptureWriter(str(tmp_path / "capture"), "seattle_weather", flush_seconds=60)
    for start in range(0, len(days), 10):
        chunk = days.iloc[start : start + 10]
        body = {"dataframe_split": {"columns": features, "data": chunk[features].values.tolist()}}
        out = {"predictions": chunk["temp_max"].tolist()}
        writer.capture(
            json.dumps(body).encode(), "application/json", json.dumps(out).encode(),
            "application/json",
        )  # fmt: skip
    writer.close()
    result = mlops(seattle, "monitor", "seattle_weather", "--captures", str(tmp_path / "capture"),
                   "--json", "--output-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 0, result.output  # one feature of four: below the 0.5 share
    report = json.loads(result.stdout)["data_drift"]
    by_name = {f["feature"]: f for f in report["features"]}
    assert (by_name["precipitation"]["method"], by_name["precipitation"]["threshold"]) == (
        "psi", 0.2,
    )  # fmt: skip
    assert by_name["temp_min"]["method"] == "wasserstein" and by_name["temp_min"]["drifted"]
    assert by_name["weather"]["method"] == "jensen_shannon"
    assert report["drifted_features"] == ["temp_min"]
    assert report["prediction"]["kind"] == "numeric"
