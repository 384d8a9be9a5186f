"""The state-backend settings: what could not work is refused before anything is declared."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_mocks import ACCOUNT
from test_infra_stacks import PRODUCTION, run_main

from infra.components.state_backend import state_backend
from pipelines.core.errors import DefinitionError

pytestmark = pytest.mark.infra

KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_no_settings_means_state_lives_elsewhere() -> None:
    assert state_backend("", "", project="mlops", stack="dev") is None


def test_the_stacks_objects_follow_the_pulumi_layout() -> None:
    backend = state_backend("acme-pulumi-state", KEY, project="mlops", stack="prod")
    assert backend is not None
    assert backend.state_objects[0] == (
        "arn:aws:s3:::acme-pulumi-state/.pulumi/stacks/mlops/prod.json*"
    )
    assert backend.lock_objects == [
        "arn:aws:s3:::acme-pulumi-state/.pulumi/locks/organization/mlops/prod/*"
    ]


@pytest.mark.parametrize(
    ("bucket", "key", "field", "says"),
    [
        ("acme-state", "", "secretsKeyArn", "go together"),
        ("", KEY, "stateBucket", "go together"),
        ("Acme_State", KEY, "stateBucket", "not a valid S3 bucket name"),
        ("ab", KEY, "stateBucket", "not a valid S3 bucket name"),
        ("192.168.1.1", KEY, "stateBucket", "not a valid S3 bucket name"),
        ("acme..state", KEY, "stateBucket", "not a valid S3 bucket name"),
        ("xn--acme", KEY, "stateBucket", "not a valid S3 bucket name"),
        ("mlops-prod-state", KEY, "stateBucket", "inside the stack's own bucket names"),
        ("acme-state", "alias/pulumi-secrets", "secretsKeyArn", "not a KMS key ARN"),
        (
            "acme-state",
            f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/pulumi",
            "secretsKeyArn",
            "never on an alias",
        ),
    ],
)
def test_settings_that_could_not_work_are_refused(
    bucket: str, key: str, field: str, says: str
) -> None:
    with pytest.raises(DefinitionError, match=says) as error:
        state_backend(bucket, key, project="mlops", stack="prod")
    assert error.value.field == field
    assert "Pulumi.prod.yaml" in str(error.value)


def test_the_program_refuses_them_before_declaring_anything(repo_factory: Any) -> None:
    with pytest.raises(DefinitionError, match="secretsKeyArn") as error:
        run_main(PRODUCTION, repo_factory(), stateBucket="acme-state")
    assert error.value.field == "secretsKeyArn"
