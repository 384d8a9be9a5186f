"""The image's ``train`` program (``pipelines.aws.sagemaker_entry``) in SageMaker's /opt/ml layout.

The layout and the failure file follow SageMaker's container contract for your own training
image (docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container
.html and ...-training-signal-success-failure.html): channels under input/data/<channel>,
string hyperparameters in input/config/hyperparameters.json, the model left in model/, and why a
job failed in output/failure.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.aws import sagemaker_entry
from pipelines.aws.sagemaker_entry import ML_ROOT_ENV, RUN_FILE, main

pytestmark = pytest.mark.code


def _layout(repo: Path, root: Path, hyperparameters: object) -> Path:
    definition = root / "input" / "data" / "definition"
    train = root / "input" / "data" / "train"
    definition.mkdir(parents=True)
    train.mkdir(parents=True)
    shutil.copy(repo / "models" / "penguins" / "model.yaml", definition)
    shutil.copy(repo / "data" / "penguins" / "dataset.yaml", definition)
    shutil.copy(repo / "data" / "penguins" / "penguins.csv", train)
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters), encoding="utf-8")
    return root


@pytest.fixture
def job_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "opt" / "ml"
    monkeypatch.setenv(ML_ROOT_ENV, str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # the SQLite store's default artifact root is relative
    return root


def test_train_leaves_the_mlflow_model_and_its_run_in_opt_ml_model(
    repo: Path, job_env: Path
) -> None:
    import mlflow

    _layout(repo, job_env, {"model": "penguins", "overrides": "{}"})

    assert main() == 0

    model_dir = job_env / "model"
    assert (model_dir / "MLmodel").is_file()  # the file the serving image looks for
    record = json.loads((model_dir / RUN_FILE).read_text(encoding="utf-8"))
    run = mlflow.MlflowClient().get_run(record["run_id"])
    assert run.data.tags["mlops.model"] == "penguins"
    assert not (job_env / "output" / "failure").exists()


@pytest.mark.parametrize(
    ("hyperparameters", "field"),
    [
        ({"overrides": "{}"}, "`model`"),
        ({"model": "penguins", "overrides": "[1, 2]"}, "`overrides`"),
        ({"model": "penguins", "overrides": "{not json"}, "`overrides`"),
        (["penguins"], "`model`"),
    ],
)
def test_bad_hyperparameters_fail_the_job_with_a_reason_naming_file_and_field(
    repo: Path, job_env: Path, hyperparameters: object, field: str
) -> None:
    _layout(repo, job_env, hyperparameters)

    assert main() == 2

    reason = (job_env / "output" / "failure").read_text(encoding="utf-8")
    assert "hyperparameters.json" in reason and field in reason
    assert not any((job_env / "model").glob("*"))  # nothing half-written for SageMaker to ship


def test_a_missing_channel_is_named_in_the_failure_reason(repo: Path, job_env: Path) -> None:
    _layout(repo, job_env, {"model": "penguins", "overrides": "{}"})
    shutil.rmtree(job_env / "input" / "data" / "train")

    assert main() == 2

    reason = (job_env / "output" / "failure").read_text(encoding="utf-8")
    assert "input/data/train" in reason and "'train'" in reason


def test_a_definition_error_fails_the_job_with_the_pipelines_message(
    repo: Path, job_env: Path
) -> None:
    overrides = json.dumps({"estimator.path": "sklearn.nowhere.Nothing"})
    _layout(repo, job_env, {"model": "penguins", "overrides": overrides})

    assert main() == 2

    reason = (job_env / "output" / "failure").read_text(encoding="utf-8")
    assert "estimator.path" in reason and "sklearn.nowhere" in reason


def test_the_failure_reason_is_cut_to_what_sagemaker_keeps(tmp_path: Path) -> None:
    sagemaker_entry.write_failure(tmp_path, "x" * 5000)

    assert len((tmp_path / "output" / "failure").read_text()) == 1024
