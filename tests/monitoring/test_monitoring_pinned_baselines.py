"""`mlops monitor-baselines`: each deploy freezes, then publishes, the baselines its monitors read.

Two steps with two roles on GitHub (the registry role reads, the stack's deploy role puts), so
the folder between them holds exactly the bucket's layout. Against the monitoring suite's real
registry (penguins pinned in staging and prod) and S3 on moto.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from monitoring_helpers import Champion
from typer.testing import CliRunner, Result

from pipelines.cli.main import app

pytestmark = pytest.mark.monitoring

BUCKET = "mlops-prod-artifacts"


def mlops(env: dict[str, str | None], *args: str) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def deployed(champion: Champion, tmp_path: Path) -> dict[str, str | None]:
    """The champion's repository, copied, with penguins deployed to SageMaker (so monitored);
    the registry is the suite's, read only."""
    root = tmp_path / "repo"
    shutil.copytree(champion.settings.root, root)
    definition_file = root / "models" / "penguins" / "model.yaml"
    definition = yaml.safe_load(definition_file.read_text(encoding="utf-8"))
    definition["deployment"]["target"] = "sagemaker"
    definition_file.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return {**champion.env, "MLOPS_ROOT": str(root)}


def test_a_deploy_freezes_then_publishes_every_monitored_pin_manifest_last(
    deployed: dict[str, str | None],
    champion: Champion,
    moto_aws: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "baselines"
    frozen = mlops(deployed, "monitor-baselines", "--env", "prod", "--folder", str(folder),
                   "--freeze")  # fmt: skip
    assert frozen.exit_code == 0, frozen.output
    local = folder / "baselines" / "penguins" / champion.version
    assert json.loads((local / "baseline.json").read_text())["version"] == champion.version

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    order: list[list[str]] = []
    import monitoring.baseline as baseline

    real_copy_out = baseline.copy_out

    def recording(root: Path, files: list[str], destination: str, **kw: Any) -> None:
        order.append(files)
        real_copy_out(root, files, destination, **kw)

    monkeypatch.setattr(baseline, "copy_out", recording)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"bucket": BUCKET}), encoding="utf-8")
    published = mlops(deployed, "monitor-baselines", "--env", "prod", "--folder", str(folder),
                      "--publish", "--outputs", str(outputs))  # fmt: skip
    assert published.exit_code == 0, published.output
    assert f"published to s3://{BUCKET}" in published.output
    (files,) = order
    assert files[-1] == "baseline.json", "the manifest marks a baseline whole: it goes last"
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    prefix = f"baselines/penguins/{champion.version}"
    assert {f"{prefix}/baseline.json", f"{prefix}/reference.parquet",
            f"{prefix}/models/penguins/model.yaml"} <= keys  # fmt: skip

    again = mlops(deployed, "monitor-baselines", "--env", "prod", "--folder", str(folder),
                  "--publish", "--bucket", BUCKET)  # fmt: skip
    assert again.exit_code == 0 and "already in s3://" in again.output
    assert len(order) == 1, "a published baseline is immutable: nothing is put again"


def test_publishing_a_pin_that_was_not_frozen_puts_nothing(
    deployed: dict[str, str | None], champion: Champion, moto_aws: None, tmp_path: Path
) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    result = mlops(deployed, "monitor-baselines", "--env", "prod", "--folder",
                   str(tmp_path / "empty"), "--publish", "--bucket", BUCKET)  # fmt: skip
    assert result.exit_code == 2
    assert f"penguins version {champion.version}" in result.output
    assert "--freeze" in result.output
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)


def test_a_stack_whose_pins_run_no_monitor_freezes_nothing(
    champion: Champion, tmp_path: Path
) -> None:
    """target: local (the examples' default) gets no scheduled monitor, so no baseline."""
    result = mlops(champion.env, "monitor-baselines", "--env", "prod", "--folder",
                   str(tmp_path / "b"), "--freeze")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "nothing to freeze" in result.output
    assert not (tmp_path / "b").exists()


def test_neither_step_asked_is_an_error_naming_the_flags(
    champion: Champion, tmp_path: Path
) -> None:
    result = mlops(champion.env, "monitor-baselines", "--env", "prod", "--folder", str(tmp_path))
    assert result.exit_code == 2 and "--freeze" in result.output and "--publish" in result.output
