"""CI access without long-lived keys: GitHub's OIDC provider and roles only this repo can assume.

Three roles, each trusted only for ``repo:<owner>/<name>`` and a narrow set of subjects:

- ``deploy`` runs ``pulumi up``; assumable from the stack's GitHub environments (prod has
  required reviewers) and, where the stack allows it, from listed branches.
- ``preview`` runs ``pulumi preview`` on pull requests; read-only.
- ``publish`` pushes the serving image and model archives from listed branches.

Every role the program creates lives under the ``/mlops/`` IAM path, so the deploy role may
manage and pass those roles and no others. No statement grants ``*`` on ``*``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.registries import ROLE_PATH, role_with_policy
from pipelines.core.conventions import MODELS_PREFIX

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"


@dataclass
class CiAccessArgs:
    repository: str  # owner/name
    environment: str
    tags: dict[str, str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    repository_arn: pulumi.Input[str]  # ECR
    deploy_environments: list[str] = field(default_factory=list)
    deploy_branches: list[str] = field(default_factory=list)
    publish_branches: list[str] = field(default_factory=lambda: ["main"])
    create_provider: bool = True  # one GitHub OIDC provider per account; others look it up
    tracking_server_arn: pulumi.Input[str] | None = None


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


# Services whose resources the program names with the ``mlops-`` prefix are scoped to it; the
# others (SageMaker names follow the models, CloudWatch, Budgets, KMS keys) are managed by
# service, since their resources are created with generated names and ARNs unknown up front.
_SCOPED_BY_PREFIX = ("s3", "ecr")
_BY_SERVICE = (
    "kms",
    "sagemaker",
    "cloudwatch",
    "sns",
    "events",
    "secretsmanager",
    "application-autoscaling",
    "budgets",
)
_DEPLOY_SERVICES = (*_SCOPED_BY_PREFIX, *_BY_SERVICE)


def deploy_policy(account_id: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ManageThePlatformBuckets",
                    "Effect": "Allow",
                    "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::mlops-*", "arn:aws:s3:::mlops-*/*"],
                },
                {
                    "Sid": "ManageTheImageRepository",
                    "Effect": "Allow",
                    "Action": "ecr:*",
                    "Resource": f"arn:aws:ecr:*:{account_id}:repository/mlops-*",
                },
                {
                    "Sid": "ManageThePlatformServices",
                    "Effect": "Allow",
                    "Action": [f"{service}:*" for service in _BY_SERVICE],
                    "Resource": "*",
                },
                {
                    "Sid": "ManageOnlyThePlatformRoles",
                    "Effect": "Allow",
                    "Action": [
                        "iam:CreateRole",
                        "iam:DeleteRole",
                        "iam:GetRole",
                        "iam:UpdateRole",
                        "iam:UpdateRoleDescription",
                        "iam:TagRole",
                        "iam:UntagRole",
                        "iam:UpdateAssumeRolePolicy",
                        "iam:PutRolePolicy",
                        "iam:GetRolePolicy",
                        "iam:DeleteRolePolicy",
                        "iam:ListRolePolicies",
                        "iam:ListAttachedRolePolicies",
                        "iam:ListInstanceProfilesForRole",
                        "iam:PassRole",
                    ],
                    "Resource": f"arn:aws:iam::{account_id}:role{ROLE_PATH}*",
                },
                {
                    "Sid": "ManageTheGitHubProvider",
                    "Effect": "Allow",
                    "Action": [
                        "iam:GetOpenIDConnectProvider",
                        "iam:CreateOpenIDConnectProvider",
                        "iam:DeleteOpenIDConnectProvider",
                        "iam:TagOpenIDConnectProvider",
                        "iam:UpdateOpenIDConnectProviderThumbprint",
                        "iam:AddClientIDToOpenIDConnectProvider",
                    ],
                    "Resource": f"arn:aws:iam::{account_id}:oidc-provider/{GITHUB_OIDC_HOST}",
                },
                {
                    "Sid": "ServiceLinkedRoles",
                    "Effect": "Allow",
                    "Action": "iam:CreateServiceLinkedRole",
                    "Resource": f"arn:aws:iam::{account_id}:role/aws-service-role/*",
                },
                {
                    "Sid": "NoLongLivedCredentials",
                    "Effect": "Deny",
                    "Action": ["iam:CreateUser", "iam:CreateAccessKey", "iam:AttachRolePolicy"],
                    "Resource": "*",
                },
            ],
        }
    )


def preview_policy() -> str:
    """Read-only: what ``pulumi preview`` reads while diffing (Describe, Get, List)."""
    read = ["Describe*", "Get*", "List*"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadThePlatformServices",
                    "Effect": "Allow",
                    "Action": [f"{s}:{verb}" for s in (*_DEPLOY_SERVICES, "iam") for verb in read],
                    "Resource": "*",
                },
                {
                    "Sid": "NeverReadSecretValues",
                    "Effect": "Deny",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                },
            ],
        }
    )


def publish_policy(bucket_arn: str, key_arn: str, repository_arn: str, tracking: str | None) -> str:
    """Push the one image and upload model archives; register in MLflow when it is managed."""
    statements: list[dict[str, object]] = [
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
                "Action": "sagemaker-mlflow:*",
                "Resource": tracking,
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class CiAccess(pulumi.ComponentResource):
    """The GitHub OIDC provider (or an existing one) and the deploy, preview and publish roles."""

    roles: dict[str, aws.iam.Role]

    def __init__(
        self, name: str, args: CiAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:CiAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))

        provider_arn: pulumi.Input[str]
        if not args.create_provider:
            provider_arn = aws.iam.get_open_id_connect_provider_output(
                url=GITHUB_OIDC_URL, opts=pulumi.InvokeOutputOptions(parent=self)
            ).arn
        else:
            provider_arn = aws.iam.OpenIdConnectProvider(
                f"{name}-github",
                url=GITHUB_OIDC_URL,
                client_id_lists=[AUDIENCE],
                tags=args.tags,
                opts=child,
            ).arn

        repo = args.repository
        trusted = {
            "deploy": subjects(
                repo, branches=args.deploy_branches, environments=args.deploy_environments
            ),
            "preview": subjects(repo, pull_requests=True),
            "publish": subjects(repo, branches=args.publish_branches),
        }
        policies: dict[str, pulumi.Input[str]] = {
            "deploy": identity.account_id.apply(deploy_policy),
            "preview": preview_policy(),
            "publish": pulumi.Output.all(
                args.bucket_arn, args.key_arn, args.repository_arn, args.tracking_server_arn
            ).apply(lambda a: publish_policy(a[0], a[1], a[2], a[3])),
        }
        self.roles = {}
        for purpose, subs in trusted.items():
            role = role_with_policy(
                f"{name}-{purpose}",
                f"{name}-{purpose}-policy",
                trust=pulumi.Output.from_input(provider_arn).apply(
                    lambda arn, subs=subs: trust_policy(arn, subs)  # type: ignore[misc]
                ),
                policy=policies[purpose],
                tags=args.tags,
                opts=child,
                description=f"GitHub Actions ({purpose}) for {repo} in {args.environment}",
                max_session_duration=3600,
            )
            self.roles[purpose] = role

        self.role_arns = {purpose: role.arn for purpose, role in self.roles.items()}
        self.register_outputs({"role_arns": self.role_arns})
