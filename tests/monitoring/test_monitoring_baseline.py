"""`mlops monitor-baseline` freezes a version's reference; `mlops monitor --baseline` reads it.

The scheduled cloud job runs the second without registry or ``models/``: its verdict must be
the one the registry-backed monitor gives on the same captures, field for field.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from monitoring_helpers import Champion, Writer, grown
from typer.testing import CliRunner, Result

from pipelines.cli.main import app

pytestmark = pytest.mark.monitoring


def mlops(env: dict[str, str | None], *args: str) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def frozen(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "penguins"
    result = mlops(champion.env, "monitor-baseline", "penguins", "--env", "prod", "--to", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_the_baseline_holds_definitions_rows_predictions_and_manifest(
    frozen: Path, champion: Champion
) -> None:
    manifest = json.loads((frozen / "baseline.json").read_text())
    assert manifest["version"] == champion.version and manifest["model"] == "penguins"
    assert (frozen / "models/penguins/model.yaml").is_file()
    assert (frozen / "data/penguins/dataset.yaml").is_file()
    rows = pd.read_parquet(frozen / "reference.parquet")
    assert "__mlops_prediction__" in rows and len(rows) > 100


@pytest.mark.parametrize("shifted", [False, True])
def test_the_baseline_verdict_equals_the_registrys(
    frozen: Path, champion: Champion, penguins: pd.DataFrame, write_captures: Writer,
    tmp_path: Path, shifted: bool,
) -> None:  # fmt: skip
    sample = penguins.sample(200, random_state=5)
    location = write_captures(grown(sample) if shifted else sample)
    with_registry = mlops(
        champion.env,
        "monitor",
        "penguins",
        "--captures",
        str(location),
        "--env",
        "prod",
        "--json",
        "--output-dir",
        str(tmp_path / "a"),
    )
    # The job's view: an empty checkout (no models/, no registry), only the baseline.
    job_root = tmp_path / "job"
    job_root.mkdir()
    job_env = {**champion.env, "MLOPS_ROOT": str(job_root), "MLOPS_HOME": str(tmp_path / "j")}
    from_baseline = mlops(job_env, "monitor", "penguins", "--captures", str(location), "--env",
                          "prod", "--baseline", str(frozen), "--json",
                          "--output-dir", str(tmp_path / "b"))  # fmt: skip
    assert with_registry.exit_code == from_baseline.exit_code == (3 if shifted else 0)
    a, b = json.loads(with_registry.stdout), json.loads(from_baseline.stdout)
    for report in (a, b):
        report.pop("seconds", None)
        report["reference"].pop("source")
    assert a["data_drift"] == b["data_drift"]
    assert a.get("prediction_drift") == b.get("prediction_drift")
    assert a["reference"] == b["reference"]


def test_a_baseline_of_another_model_or_an_empty_folder_exits_2(
    frozen: Path, champion: Champion, tmp_path: Path, penguins: pd.DataFrame,
    write_captures: Writer,
) -> None:  # fmt: skip
    location = write_captures(penguins.sample(20, random_state=6))
    empty = tmp_path / "empty"
    empty.mkdir()
    result = mlops(champion.env, "monitor", "penguins", "--captures", str(location),
                   "--baseline", str(empty))  # fmt: skip
    assert result.exit_code == 2 and "baseline.json is missing" in result.output
    other = tmp_path / "other"
    shutil.copytree(frozen, other)
    manifest = json.loads((other / "baseline.json").read_text())
    (other / "baseline.json").write_text(json.dumps({**manifest, "model": "seattle_weather"}))
    result = mlops(champion.env, "monitor", "penguins", "--captures", str(location),
                   "--baseline", str(other))  # fmt: skip
    assert result.exit_code == 2 and "not 'penguins'" in result.output


def test_a_baseline_goes_to_and_comes_from_s3(
    frozen: Path, champion: Champion, moto_aws: None, tmp_path: Path
) -> None:
    import boto3

    from monitoring.baseline import load_baseline, write_baseline

    boto3.client("s3").create_bucket(Bucket="artifacts")
    reference = load_baseline(frozen, "penguins")
    write_baseline(reference, "s3://artifacts/baselines/penguins/1")
    back = load_baseline("s3://artifacts/baselines/penguins/1", "penguins")
    pd.testing.assert_frame_equal(back.frame, reference.frame)
    assert back.predictions is not None and reference.predictions is not None
    assert list(back.predictions) == list(reference.predictions)
    assert back.version == reference.version
