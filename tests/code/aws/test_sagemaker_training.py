"""The training job ``pipelines.aws.sagemaker_training`` asks SageMaker for: the project's own
image and the execution role, in a request botocore's model of CreateTrainingJob accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from pipelines.aws.sagemaker_flow import AwsSettings
from pipelines.aws.sagemaker_training import training_image, training_request
from pipelines.core.definitions import load_model
from pipelines.core.errors import MlopsError

pytestmark = pytest.mark.code

ROOT = Path(__file__).resolve().parents[3]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ROLE = "arn:aws:iam::111122223333:role/mlops/staging/mlops-staging-sagemaker"


class FakeSts:
    """STS as far as the image needs it: which account the caller is in."""

    class meta:  # the attribute botocore clients have
        endpoint_url = "https://sts.amazonaws.com"

    def get_caller_identity(self) -> dict[str, str]:
        return {"Account": "111122223333"}


def _aws(monkeypatch: pytest.MonkeyPatch, **env: str) -> AwsSettings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return AwsSettings(region="eu-west-3", role_arn=ROLE)


def test_the_default_image_is_the_serving_image_of_the_commit_in_the_accounts_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = training_image(_aws(monkeypatch), FakeSts(), COMMIT, run_locally=False)

    # As .github/workflows/image.yml pushes it: $REGISTRY/$REPOSITORY:$GITHUB_SHA.
    assert image == f"111122223333.dkr.ecr.eu-west-3.amazonaws.com/mlops-serving:{COMMIT}"


def test_the_image_and_its_repository_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    aws = _aws(monkeypatch, MLOPS_AWS_IMAGE_REPOSITORY="team-serving")
    assert training_image(aws, FakeSts(), COMMIT, run_locally=False).endswith(
        f"/team-serving:{COMMIT}"
    )
    other = "444455556666.dkr.ecr.eu-west-3.amazonaws.com/mlops-serving:abc"
    aws = _aws(monkeypatch, MLOPS_AWS_TRAINING_IMAGE=other)
    assert training_image(aws, FakeSts(), COMMIT, run_locally=False) == other


@pytest.mark.parametrize("commit", [f"{COMMIT}-dirty", "unknown"])
def test_a_tree_no_image_is_tagged_by_is_refused_naming_the_override(
    monkeypatch: pytest.MonkeyPatch, commit: str
) -> None:
    with pytest.raises(MlopsError, match="images are tagged by commit") as caught:
        training_image(_aws(monkeypatch), FakeSts(), commit, run_locally=False)
    assert caught.value.field == "MLOPS_AWS_TRAINING_IMAGE"


def _request(repo: Path, aws: AwsSettings, image: str) -> dict[str, Any]:
    model = load_model(repo / "models", repo / "data", "penguins")
    overrides = {"estimator.params.n_estimators": 5}
    env = {"MLFLOW_TRACKING_URI": "https://mlflow.example", "GITHUB_SHA": COMMIT}
    return training_request(aws, "penguins-20260101000000", image, model, "t/p", overrides, env)


def test_the_training_job_request_carries_the_projects_image_and_the_role(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    aws = _aws(monkeypatch, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    image = training_image(aws, FakeSts(), COMMIT, run_locally=False)
    request = _request(repo, aws, image)
    sagemaker = boto3.client("sagemaker", region_name="eu-west-3")
    with Stubber(sagemaker) as stub:
        # The Stubber checks the request against botocore's CreateTrainingJob shape (types,
        # required members, the string-only HyperParameters map) before comparing it.
        stub.add_response(
            "create_training_job",
            {"TrainingJobArn": "arn:aws:sagemaker:eu-west-3:111122223333:training-job/x"},
            {**request, "AlgorithmSpecification": {"TrainingImage": image,
                                                   "TrainingInputMode": "File"},
             "RoleArn": ROLE},
        )  # fmt: skip
        sagemaker.create_training_job(**request)
        stub.assert_no_pending_responses()
    # The image's own `train` runs: no script-mode program or source archive to download.
    assert set(request["HyperParameters"]) == {"model", "overrides"}
    assert json.loads(request["HyperParameters"]["overrides"]) == {
        "estimator.params.n_estimators": 5
    }
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["definition", "train"]


def test_hyperparameters_that_are_not_strings_would_be_refused_by_botocore(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check above can say no: botocore refuses a non-string hyperparameter value.
    import boto3
    from botocore.exceptions import ParamValidationError

    aws = _aws(monkeypatch, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    request = _request(repo, aws, "img")
    request["HyperParameters"]["overrides"] = {"estimator.params.n_estimators": 5}
    sagemaker = boto3.client("sagemaker", region_name="eu-west-3")
    with Stubber(sagemaker) as stub, pytest.raises(ParamValidationError, match="HyperParameters"):
        stub.add_response("create_training_job", {"TrainingJobArn": "arn"})
        sagemaker.create_training_job(**request)


# A registry host with a real account in it: how prebuilt images (scikit-learn's was one per
# region) get hard-coded. 123456789012 is moto's account, the local stack's placeholder.
REGISTRY_WITH_ACCOUNT = re.compile(r"\b(?!123456789012)\d{12}\.dkr\.ecr\.")


def test_no_regional_image_account_is_hard_coded() -> None:
    sources = [*ROOT.joinpath("pipelines").rglob("*.py"), *ROOT.joinpath("serving").rglob("*")]
    found = [
        str(path.relative_to(ROOT))
        for path in sources
        if path.is_file()
        and path.suffix in {".py", ""}
        and (
            REGISTRY_WITH_ACCOUNT.search(text := path.read_text(encoding="utf-8"))
            or "sagemaker-scikit-learn" in text
        )
    ]
    assert found == []


def test_the_grep_finds_a_hard_coded_account() -> None:
    assert REGISTRY_WITH_ACCOUNT.search("683313688378.dkr.ecr.us-east-1.amazonaws.com/x")
    assert not REGISTRY_WITH_ACCOUNT.search("123456789012.dkr.ecr.us-east-1.amazonaws.com/x")


def test_a_failed_local_job_reports_the_failure_file_and_uploads_nothing(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    from pipelines.aws.sagemaker_flow import AwsError
    from pipelines.aws.sagemaker_training import run_job_locally

    aws = _aws(monkeypatch, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    request = _request(repo, aws, "img")
    request["HyperParameters"]["overrides"] = "[1]"  # what the train program must refuse
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-3")
        s3.create_bucket(
            Bucket=aws.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
        )
        for name, path in [("definition", repo / "models" / "penguins" / "model.yaml"),
                           ("train", repo / "data" / "penguins" / "penguins.csv")]:  # fmt: skip
            s3.upload_file(str(path), aws.bucket, f"t/p/input/{name}/{path.name}")
        with pytest.raises(AwsError, match=r"failed \(exit 2\).*`overrides`"):
            run_job_locally(s3, aws, request, tmp_path / "job", lambda _: None)
        listed = s3.list_objects_v2(Bucket=aws.bucket, Prefix="t/p/output/")
    assert listed["KeyCount"] == 0
