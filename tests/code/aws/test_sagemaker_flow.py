"""Which image a registered version is served by (``pipelines.aws.sagemaker_flow``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipelines.aws.sagemaker_flow import AwsSettings, serving_image
from pipelines.core.tags import SAGEMAKER_TRAINING_IMAGE_TAG

pytestmark = pytest.mark.code

TRAINED_IN = "111122223333.dkr.ecr.eu-west-3.amazonaws.com/mlops-serving:0123abcd"


def _run(**tags: str) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(tags=tags))


def test_a_version_trained_by_a_job_is_served_by_the_image_it_trained_in() -> None:
    aws = AwsSettings(serving_image="elsewhere/mlops-serving:other")
    run = _run(**{SAGEMAKER_TRAINING_IMAGE_TAG: TRAINED_IN})

    assert serving_image(aws, run) == TRAINED_IN


def test_a_version_trained_elsewhere_is_served_by_the_configured_image() -> None:
    aws = AwsSettings(serving_image="elsewhere/mlops-serving:other")

    assert serving_image(aws, _run()) == "elsewhere/mlops-serving:other"
