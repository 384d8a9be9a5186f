"""The IAM roles the platform creates, where they live, and the ceiling every workload role has.

Two kinds of role on two IAM paths, so that a policy can tell them apart by ARN alone:

- workload roles (endpoint execution, scheduled monitor, MLflow, EventBridge, Kubernetes pods) under
  ``/mlops/<env>/``. The deploy role creates them during ``pulumi up``, and only with the stack's
  permissions boundary attached (its policy says so with ``iam:PermissionsBoundary``
  conditions), so whatever inline policy a deploy writes, a workload role can never do more than
  the boundary allows: no IAM, no other environment's data.
- CI roles (deploy, preview, publish) and the boundary policy itself under ``/mlops-ci/<env>/``.
  An administrator creates and changes them (the bootstrap in docs/infrastructure.md); every CI
  role is denied writing to anything on that path, so none can widen its own or another's access.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from pipelines.core.conventions import slug
from serving.metrics import CLOUDWATCH_NAMESPACE

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"  # iam:PassedToService of roles SageMaker runs with

WORKLOAD_PATH_ROOT = "/mlops/"
CI_PATH_ROOT = "/mlops-ci/"


def workload_path(environment: str) -> str:
    return f"{WORKLOAD_PATH_ROOT}{slug(environment)}/"


def ci_path(environment: str) -> str:
    return f"{CI_PATH_ROOT}{slug(environment)}/"


def boundary_name(environment: str) -> str:
    return f"mlops-{slug(environment)}-workload-boundary"


def boundary_arn(account_id: str, environment: str) -> str:
    """Known before the policy exists, so the deploy policy's conditions can name it."""
    return f"arn:aws:iam::{account_id}:policy{ci_path(environment)}{boundary_name(environment)}"


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


@dataclass
class PlatformRole:
    """A role and its one inline policy; ``arn`` resolves only once the policy is in place."""

    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    arn: pulumi.Output[str]


def role_with_policy(
    role_name: str,
    policy_name: str,
    *,
    path: str,
    trust: pulumi.Input[str],
    policy: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    permissions_boundary: pulumi.Input[str] | None = None,
    **role_args: Any,
) -> PlatformRole:
    """An IAM role on ``path`` with its one inline least-privilege policy.

    Dependants take ``arn`` from here rather than from the role: IAM creates the role and its
    policy in two calls, and a SageMaker model or EventBridge target created in between would
    start with a role that may do nothing (AWS then fails the create, or the first invocation).
    """
    role = aws.iam.Role(
        role_name,
        path=path,
        assume_role_policy=trust,
        permissions_boundary=permissions_boundary,
        tags=tags,
        opts=opts,
        **role_args,
    )
    inline = aws.iam.RolePolicy(policy_name, role=role.id, policy=policy, opts=opts)
    arn = pulumi.Output.all(role.arn, inline.id).apply(lambda values: str(values[0]))
    return PlatformRole(role, inline, arn)


def workload_role(
    role_name: str,
    policy_name: str,
    *,
    environment: str,
    boundary: pulumi.Input[str] | None,
    trust: pulumi.Input[str],
    policy: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> PlatformRole:
    """A role a workload assumes: on the environment's workload path, under its boundary."""
    if boundary is None:
        # The deploy role may create workload roles only with the boundary attached; a role
        # declared without one would fail at `pulumi up` with AccessDenied, so fail here first.
        raise ValueError(f"workload role {role_name} needs the stack's permissions boundary")
    return role_with_policy(
        role_name,
        policy_name,
        path=workload_path(environment),
        trust=trust,
        policy=policy,
        tags=tags,
        opts=opts,
        permissions_boundary=boundary,
    )


def boundary_policy(account_id: str, environment: str, image_account: str = "") -> str:
    """The most any workload role of ``environment`` may do, whatever its own policy says.

    Each workload's inline policy narrows this further (one model's prefix, one endpoint's logs).
    """
    env = slug(environment)
    buckets = f"arn:aws:s3:::mlops-{env}-*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ThisEnvironmentsObjects",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"{buckets}/*",
                },
                {
                    "Sid": "ThisEnvironmentsBuckets",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                    "Resource": buckets,
                },
                {
                    "Sid": "UseKeysOfThisAccount",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                    "Resource": f"arn:aws:kms:*:{account_id}:key/*",
                },
                {
                    # SageMaker granting itself a key for a job's volume, as the scheduled
                    # monitor's caller must let it (see ``scheduled_monitor.scheduler_policy``).
                    "Sid": "LetSageMakerGrantItselfKeysOfThisAccount",
                    "Effect": "Allow",
                    "Action": "kms:CreateGrant",
                    "Resource": f"arn:aws:kms:*:{account_id}:key/*",
                    "Condition": {"StringLike": {"kms:ViaService": "sagemaker.*.amazonaws.com"}},
                },
                {
                    "Sid": "PullImagesOfThisAccount",
                    "Effect": "Allow",
                    "Action": [
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
                    ],
                    # With an account per stack, the one image repository is in another
                    # account (``imageAccount``), which grants these pulls in its policy.
                    "Resource": [
                        f"arn:aws:ecr:*:{a}:repository/*"
                        for a in sorted({account_id, image_account} - {""})
                    ],
                },
                {
                    "Sid": "EcrLoginHasNoResource",
                    "Effect": "Allow",
                    "Action": "ecr:GetAuthorizationToken",
                    "Resource": "*",
                },
                {
                    "Sid": "WriteSageMakerLogs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    # The endpoint role's own policy names its log group in any region/account
                    # form SageMaker uses; the boundary keeps it to SageMaker's log groups.
                    "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/*",
                },
                {
                    "Sid": "PublishThePlatformsMetrics",
                    "Effect": "Allow",
                    "Action": "cloudwatch:PutMetricData",
                    "Resource": "*",  # PutMetricData has no resource; the namespace is the scope
                    "Condition": {"StringEquals": {"cloudwatch:namespace": CLOUDWATCH_NAMESPACE}},
                },
                {
                    # The scheduled monitor: Scheduler starts this environment's jobs only,
                    # passing only this environment's workload roles, to SageMaker only.
                    "Sid": "StartThisEnvironmentsMonitorJobs",
                    "Effect": "Allow",
                    "Action": ["sagemaker:CreateProcessingJob", "sagemaker:AddTags"],
                    "Resource": f"arn:aws:sagemaker:*:{account_id}:processing-job/mlops-{env}-*",
                },
                {
                    "Sid": "PassThisEnvironmentsWorkloadRolesToSageMaker",
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": f"arn:aws:iam::{account_id}:role{workload_path(environment)}*",
                    "Condition": {"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
                },
                {
                    "Sid": "CallThisEnvironmentsDestinations",
                    "Effect": "Allow",
                    "Action": "events:InvokeApiDestination",
                    "Resource": f"arn:aws:events:*:{account_id}:api-destination/mlops-{env}-*",
                },
            ],
        }
    )


class WorkloadBoundary(pulumi.ComponentResource):
    """The managed policy every workload role of a stack carries as its permissions boundary."""

    arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        environment: str,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
        image_account: str = "",
    ) -> None:
        super().__init__("mlops:index:WorkloadBoundary", name, None, opts)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        policy = aws.iam.Policy(
            f"{name}-policy",
            name=boundary_name(environment),
            path=ci_path(environment),
            description=f"Permissions boundary of the platform's workload roles in {environment}",
            policy=identity.account_id.apply(
                lambda account: boundary_policy(account, environment, image_account)
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = policy.arn
        self.register_outputs({"arn": self.arn})
