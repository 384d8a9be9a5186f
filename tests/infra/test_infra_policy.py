"""The policy pack's validators, called directly on good and deliberately bad resources, and
the pack itself wired to the same rules."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from infra.policy import rules
from infra.policy.rules import Resource

pytestmark = pytest.mark.infra

REPO = "example-org/mlops-template"
GOOD_CAPTURE = {
    "enableCapture": True,
    "initialSamplingPercentage": 100,
    "destinationS3Uri": "s3://b/captures/dev",
    "kmsKeyId": "arn:key",
    "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}],
}
TAGS = {"model": "m", "environment": "dev", "owner": "o@example.com"}


def trust(subjects: list[str], *, like: bool = False, audience: str = "sts.amazonaws.com") -> str:
    condition: dict[str, Any] = {
        "StringEquals": {"token.actions.githubusercontent.com:aud": audience}
    }
    key = "StringLike" if like else "StringEquals"
    condition.setdefault(key, {})["token.actions.githubusercontent.com:sub"] = subjects
    return json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Federated": f"arn:aws:iam::1:oidc-provider/{rules.GITHUB_OIDC_HOST}"
                    },
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": condition,
                }
            ]
        }
    )


def test_endpoint_config_without_capture_is_rejected() -> None:
    check = rules.endpoint_captures_data
    assert check(rules.ENDPOINT_CONFIG, {"dataCaptureConfig": GOOD_CAPTURE}) == []
    assert check(rules.ENDPOINT_CONFIG, {}) != []
    assert check(
        rules.ENDPOINT_CONFIG, {"dataCaptureConfig": {**GOOD_CAPTURE, "enableCapture": False}}
    )
    assert check(
        rules.ENDPOINT_CONFIG,
        {"dataCaptureConfig": {**GOOD_CAPTURE, "initialSamplingPercentage": 0}},
    )
    unencrypted = {k: v for k, v in GOOD_CAPTURE.items() if k != "kmsKeyId"}
    assert check(rules.ENDPOINT_CONFIG, {"dataCaptureConfig": unencrypted})
    inputs_only = {**GOOD_CAPTURE, "captureOptions": [{"captureMode": "Input"}]}
    assert check(rules.ENDPOINT_CONFIG, {"dataCaptureConfig": inputs_only})


def test_a_volume_key_on_instance_storage_is_rejected() -> None:
    check = rules.no_volume_key_on_instance_storage
    variants = [{"instanceType": "ml.g4dn.xlarge"}]
    assert check(rules.ENDPOINT_CONFIG, {"kmsKeyArn": "k", "productionVariants": variants}) == [
        "ml.g4dn.xlarge has local instance storage, which takes no volume KMS key"
    ]
    assert check(rules.ENDPOINT_CONFIG, {"productionVariants": variants}) == []
    assert (
        check(
            rules.ENDPOINT_CONFIG,
            {"kmsKeyArn": "k", "productionVariants": [{"instanceType": "ml.m5.large"}]},
        )
        == []
    )
    cluster = {"InstanceType": "ml.m5d.large", "VolumeKmsKeyId": "k"}
    request = json.dumps({"ProcessingResources": {"ClusterConfig": cluster}})
    target = {"arn": "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob", "input": request}
    assert check(rules.SCHEDULE, {"target": target})


def test_canary_on_a_one_instance_configuration_is_rejected() -> None:
    def stack(routing: str, count: int) -> list[Resource]:
        config = Resource(
            rules.ENDPOINT_CONFIG,
            "config-v2",
            {"productionVariants": [{"initialInstanceCount": count}]},
        )
        policy = {"blueGreenUpdatePolicy": {"trafficRoutingConfiguration": {"type": routing}}}
        endpoint = Resource(
            rules.ENDPOINT,
            "endpoint",
            {"deploymentConfig": policy},
            refs={"endpointConfigName": ["config-v2"]},
        )
        return [config, endpoint]

    check = rules.traffic_shifting_has_instances
    assert check(stack("CANARY", 1)) == [
        "endpoint endpoint: CANARY traffic shifting on 1 instance(s) of config-v2; "
        "it needs 2 or more"
    ]
    assert check(stack("LINEAR", 1))
    assert check(stack("LINEAR", 2)) == []
    assert check(stack("ALL_AT_ONCE", 1)) == []


def test_an_update_longer_than_a_deploy_waits_is_rejected() -> None:
    def endpoint(routing: dict[str, Any]) -> dict[str, Any]:
        policy = {"trafficRoutingConfiguration": routing, "terminationWaitInSeconds": 300}
        return {"deploymentConfig": {"blueGreenUpdatePolicy": policy}}

    check = rules.rollout_fits_the_deploy
    linear = {"type": "LINEAR", "linearStepSize": {"type": "CAPACITY_PERCENT", "value": 25}}
    assert check(rules.ENDPOINT, endpoint({**linear, "waitIntervalInSeconds": 600})) == [
        "the update waits 45 minutes (4 bakes of 600 s and the termination wait); "
        "a deploy waits at most 40"
    ]
    assert check(rules.ENDPOINT, endpoint({**linear, "waitIntervalInSeconds": 300})) == []
    assert check(rules.ENDPOINT, endpoint({"type": "CANARY", "waitIntervalInSeconds": 1200}))
    assert check(rules.ENDPOINT, endpoint({"type": "ALL_AT_ONCE", "waitIntervalInSeconds": 2160}))
    assert not check(
        rules.ENDPOINT, endpoint({"type": "ALL_AT_ONCE", "waitIntervalInSeconds": 2000})
    )


def test_endpoint_without_rollback_alarms_is_rejected() -> None:
    good = {
        "deploymentConfig": {
            "blueGreenUpdatePolicy": {"trafficRoutingConfiguration": {"type": "CANARY"}},
            "autoRollbackConfiguration": {"alarms": [{"alarmName": "a"}]},
        }
    }
    assert rules.endpoint_rolls_back(rules.ENDPOINT, good) == []
    assert rules.endpoint_rolls_back(rules.ENDPOINT, {}) != []
    no_alarms = {
        "deploymentConfig": {
            **good["deploymentConfig"],
            "autoRollbackConfiguration": {"alarms": []},
        }
    }
    assert any("rollback alarms" in m for m in rules.endpoint_rolls_back(rules.ENDPOINT, no_alarms))


@pytest.mark.parametrize(
    ("statement", "bad"),
    [
        ({"Effect": "Allow", "Action": "*", "Resource": "*"}, True),
        ({"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": ["*"]}, True),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, True),
        ({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}, False),
        ({"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}, False),
        ({"Effect": "Deny", "Action": "*", "Resource": "*"}, False),
    ],
)
def test_admin_statements_are_rejected(statement: dict[str, Any], bad: bool) -> None:
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    problems = rules.no_admin_statements("aws:iam/rolePolicy:RolePolicy", {"policy": document})
    assert bool(problems) is bad
    inline = {"inlinePolicies": [{"name": "x", "policy": document}]}
    assert bool(rules.no_admin_statements(rules.ROLE, inline)) is bad


@pytest.mark.parametrize(
    ("action", "bad"), [("s3:*", True), ("sagemaker:*", True), ("s3:GetObject", False)]
)
def test_whole_service_grants_are_rejected(action: str, bad: bool) -> None:
    statement = {"Effect": "Allow", "Action": [action], "Resource": "arn:aws:s3:::mlops-dev-x"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    problems = rules.no_service_wildcards("aws:iam/rolePolicy:RolePolicy", {"policy": document})
    assert bool(problems) is bad


@pytest.mark.parametrize(
    ("path", "boundary", "bad"),
    [
        ("/mlops/dev/", "arn:aws:iam::1:policy/mlops-ci/dev/b", False),
        ("/mlops/dev/", None, True),
        ("/", None, True),
        ("/mlops-ci/dev/", None, False),  # CI roles are the administrator's
    ],
)
def test_workload_roles_without_the_boundary_are_rejected(
    path: str, boundary: str | None, bad: bool
) -> None:
    props = {"path": path, "permissionsBoundary": boundary, "assumeRolePolicy": "{}"}
    assert bool(rules.workload_roles_carry_a_boundary(rules.ROLE, props)) is bad


@pytest.mark.parametrize(
    ("subjects", "like", "audience", "bad"),
    [
        ([f"repo:{REPO}:environment:prod"], False, "sts.amazonaws.com", False),
        (
            [f"repo:{REPO}:ref:refs/heads/main", f"repo:{REPO}:pull_request"],
            False,
            "sts.amazonaws.com",
            False,
        ),
        (["repo:example-org/*:ref:refs/heads/main"], True, "sts.amazonaws.com", True),
        ([f"repo:{REPO}:*"], True, "sts.amazonaws.com", True),
        (["repo:someone-else/fork:ref:refs/heads/main"], False, "sts.amazonaws.com", True),
        ([], False, "sts.amazonaws.com", True),
        ([f"repo:{REPO}:environment:prod"], False, "other", True),
    ],
)
def test_github_trust_must_name_this_repository_exactly(
    subjects: list[str], like: bool, audience: str, bad: bool
) -> None:
    check = rules.oidc_trust_is_scoped(REPO)
    problems = check(
        rules.ROLE, {"assumeRolePolicy": trust(subjects, like=like, audience=audience)}
    )
    assert bool(problems) is bad, problems


def test_roles_trusting_services_are_not_github_roles() -> None:
    service = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sagemaker.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ]
        }
    )
    assert rules.oidc_trust_is_scoped(REPO)(rules.ROLE, {"assumeRolePolicy": service}) == []


def test_untagged_resources_are_rejected() -> None:
    assert rules.tagged("aws:sns/topic:Topic", {"tags": TAGS}) == []
    assert rules.tagged("aws:sns/topic:Topic", {"tags": {"model": "m"}}) == [
        "missing tags environment, owner"
    ]
    assert rules.tagged("aws:sns/topic:Topic", {}) != []
    assert rules.tagged("aws:s3/bucketPolicy:BucketPolicy", {}) == [], "not taggable"
    labelled = {
        "metadata": {
            "labels": {"mlops/model": "m", "mlops/environment": "dev"},
            "annotations": {"mlops/owner": "o"},
        }
    }
    assert rules.tagged("kubernetes:core/v1:Service", labelled) == []
    assert rules.tagged("kubernetes:core/v1:Service", {"metadata": {}}) != []


def test_taggable_types_are_found_from_the_provider_sdk() -> None:
    assert rules.taggable("aws:s3/bucket:Bucket")
    assert rules.taggable("aws:sagemaker/endpoint:Endpoint")
    assert not rules.taggable("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert not rules.taggable("aws:cloudwatch/eventTarget:EventTarget")
    assert not rules.taggable("kubernetes:core/v1:Namespace")


def test_unencrypted_or_mutable_resources_are_rejected() -> None:
    check = rules.encrypted_at_rest
    assert check("aws:kms/key:Key", {"enableKeyRotation": False})
    assert check("aws:sns/topic:Topic", {})
    assert check("aws:secretsmanager/secret:Secret", {})
    assert check("aws:ecr/repository:Repository", {"imageTagMutability": "MUTABLE"})
    assert check(rules.BUCKET, {"acl": "public-read"})
    good_repo = {
        "imageTagMutability": "IMMUTABLE",
        "imageScanningConfiguration": {"scanOnPush": True},
    }
    assert check("aws:ecr/repository:Repository", good_repo) == []


def test_privileged_pods_are_rejected() -> None:
    container = {
        "name": "serve",
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "readinessProbe": {},
        "livenessProbe": {},
    }
    good = {
        "spec": {
            "template": {
                "spec": {"securityContext": {"runAsNonRoot": True}, "containers": [container]}
            }
        }
    }
    deployment = "kubernetes:apps/v1:Deployment"
    assert rules.pods_are_locked_down(deployment, good) == []
    root = {"spec": {"template": {"spec": {"containers": [container]}}}}
    assert rules.pods_are_locked_down(deployment, root)
    writable = {
        **container,
        "securityContext": {**container["securityContext"], "readOnlyRootFilesystem": False},
    }
    bad = {
        "spec": {
            "template": {
                "spec": {"securityContext": {"runAsNonRoot": True}, "containers": [writable]}
            }
        }
    }
    assert rules.pods_are_locked_down(deployment, bad)


def test_a_public_bucket_is_rejected() -> None:
    bucket = Resource(rules.BUCKET, "b", {})
    open_policy = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::b/*",
                }
            ]
        }
    )
    resources = [
        bucket,
        Resource(
            rules.PUBLIC_ACCESS_BLOCK,
            "pab",
            {
                "blockPublicAcls": True,
                "blockPublicPolicy": False,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
            {"bucket": ["b"]},
        ),
        Resource(rules.BUCKET_POLICY, "pol", {"policy": open_policy}, {"bucket": ["b"]}),
    ]
    problems = rules.buckets_are_private_and_encrypted(resources)
    for expected in ("public access", "no default encryption", "ACLs", "non-TLS", "anonymous"):
        assert any(expected in p for p in problems), (expected, problems)


def test_the_policy_pack_runs_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pack's validators report what the rules find, and the OIDC rule reads its config."""
    import pulumi_policy

    captured: dict[str, Any] = {}
    monkeypatch.setattr(
        pulumi_policy.PolicyPack, "__init__", lambda self, **kw: captured.update(kw)
    )
    from infra.policy.__main__ import policy_pack

    policy_pack()
    policies = {p.name: p for p in captured["policies"]}
    assert set(policies) == set(rules.RESOURCE_RULES) | set(rules.STACK_RULES)
    assert captured["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY

    class Args:
        resource_type = rules.ROLE
        props: ClassVar = {"assumeRolePolicy": trust(["repo:someone-else/fork:pull_request"])}

        def get_config(self) -> dict[str, str]:
            return {"repository": REPO}

    reported: list[str] = []
    policies["github-oidc-trust-scoped"].validate(
        Args(), lambda message, urn: reported.append(message)
    )
    assert reported == [
        f"GitHub trust subject 'repo:someone-else/fork:pull_request' is not for {REPO}"
    ]
