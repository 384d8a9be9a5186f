"""An AWS account per stack: one image repository, pulled across accounts by workload roles only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from iam_evaluator import allows
from pulumi_mocks import ACCOUNT, Run, policy_document, stack_config
from test_infra_stacks import NON_PRODUCTION, PRODUCTION, run_main

from pipelines.core.errors import DefinitionError

pytestmark = pytest.mark.infra

DEV_ACCOUNT, STAGING_ACCOUNT = "111111111111", "222222222222"
# Whatever the team named its first environment (the one in an account of its own here), and
# the region its stacks deploy to.
DEV = NON_PRODUCTION[0]
REGION = stack_config(DEV)["aws:region"]
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-serving:abc123"
REPOSITORY = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/mlops-serving"


@pytest.fixture(scope="module")
def accounts(repo_factory: Any) -> dict[str, Run]:
    """prod owns the repository (the mocks' account); dev runs in an account of its own."""
    pins = {DEV: {"seattle_weather": ["3"]}, PRODUCTION: {"seattle_weather": ["3"]}}
    repo = repo_factory(pins=pins)
    return {
        "prod": run_main(
            PRODUCTION, repo, image=IMAGE, imagePullAccounts=[DEV_ACCOUNT, STAGING_ACCOUNT]
        ),
        "dev": run_main(DEV, repo, image=IMAGE, ownsAccountResources=True, imageAccount=ACCOUNT),
    }


def test_the_owning_stack_lets_only_the_other_accounts_workload_roles_pull(
    accounts: dict[str, Run],
) -> None:
    policy = json.loads(
        accounts["prod"].one("aws:ecr/repositoryPolicy:RepositoryPolicy").inputs["policy"]
    )
    (statement,) = policy["Statement"]
    assert statement["Principal"]["AWS"] == [
        f"arn:aws:iam::{DEV_ACCOUNT}:root",
        f"arn:aws:iam::{STAGING_ACCOUNT}:root",
    ]
    assert set(statement["Action"]) == {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
    }, "pull only: no push, no delete"
    assert statement["Condition"]["ArnLike"]["aws:PrincipalArn"] == [
        f"arn:aws:iam::{DEV_ACCOUNT}:role/mlops/*",
        f"arn:aws:iam::{STAGING_ACCOUNT}:role/mlops/*",
    ]


def test_a_pulling_stack_owns_its_oidc_provider_but_not_the_repository(
    accounts: dict[str, Run],
) -> None:
    dev = accounts["dev"]
    assert dev.of("aws:ecr/repository:Repository") == []
    assert len(dev.of("aws:iam/openIdConnectProvider:OpenIdConnectProvider")) == 1
    assert len(accounts["prod"].of("aws:ecr/repository:Repository")) == 1


def test_the_endpoint_role_and_its_boundary_allow_pulling_the_other_accounts_image(
    accounts: dict[str, Run],
) -> None:
    dev = accounts["dev"]
    (boundary,) = [
        policy_document(p.inputs["policy"])
        for p in dev.of("aws:iam/policy:Policy")
        if "boundary" in p.name
    ]
    execution = [
        policy_document(p.inputs["policy"])
        for p in dev.of("aws:iam/rolePolicy:RolePolicy")
        if "seattle" in p.name and "ecr:BatchGetImage" in json.dumps(p.inputs["policy"])
    ]
    assert execution, "the endpoint's execution role pulls the image"
    for policy in execution:
        assert allows([policy], "ecr:BatchGetImage", REPOSITORY)
    assert allows([boundary], "ecr:BatchGetImage", REPOSITORY)
    model = dev.one("aws:sagemaker/model:Model").inputs
    assert model["primaryContainer"]["image"] == IMAGE


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        ({"imageAccount": "12345"}, "imageAccount", "12-digit"),
        ({"imagePullAccounts": ["111111111111", "dev"]}, "imagePullAccounts", "12-digit"),
        (
            {"imageAccount": ACCOUNT, "imagePullAccounts": [DEV_ACCOUNT]},
            "imagePullAccounts",
            "pulls from account",
        ),
    ],
)
def test_account_settings_that_could_not_work_are_refused(
    repo_factory: Any, settings: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(DefinitionError, match=says) as error:
        run_main(DEV, repo_factory(), **settings)
    assert error.value.field == field
    assert f"Pulumi.{DEV}.yaml" in str(error.value)
