"""Where images and models are registered: ECR, SageMaker model package groups, MLflow.

The default MLflow tracking server is SageMaker's managed MLflow: no database, web server or
upgrade to run, IAM authentication instead of a password, and its artifact store is the same
encrypted bucket. (The other choice, MLflow on Kubernetes with a managed PostgreSQL, suits a
platform with no SageMaker; the pipelines only need ``MLFLOW_TRACKING_URI`` either way.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.roles import WORKLOAD_PATH_ROOT, assume_role_policy, workload_role
from pipelines.core.conventions import package_group_name, slug

# The image workflow (.github/workflows/image.yml) pushes here, once for every stack.
IMAGE_REPOSITORY = "mlops-serving"


@dataclass
class RegistriesArgs:
    environment: str
    tags: dict[str, str]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    models: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> its tags
    mlflow: bool = True
    mlflow_size: str = "Small"
    mlflow_version: str | None = None
    keep_images: int = 30
    # The tags stacks run (this stack's image and `protectedImageTags`): never expired.
    protected_tags: list[str] = field(default_factory=list)
    protect: bool = False
    # The repository is per account: one stack owns it, the others look it up by name.
    repository_name: str = IMAGE_REPOSITORY
    create_repository: bool = True
    # An account per stack: the repository's account, when it is not this one (no lookup,
    # which would need a cross-account Describe), and the accounts its policy lets pull.
    image_account: str = ""
    region: str = ""
    pull_accounts: list[str] = field(default_factory=list)
    boundary_arn: pulumi.Input[str] | None = None  # the stack's WorkloadBoundary


def cross_account_pull_policy(accounts: list[str]) -> str:
    """Other stacks' accounts may pull, and only their workload roles (the SageMaker execution
    and pod roles under ``/mlops/``): SageMaker checks the repository policy for the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PullFromTheOtherStacksAccounts",
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
                    "Action": [
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
                    ],
                    "Condition": {
                        "ArnLike": {
                            "aws:PrincipalArn": [
                                f"arn:aws:iam::{a}:role{WORKLOAD_PATH_ROOT}*" for a in accounts
                            ]
                        }
                    },
                }
            ],
        }
    )


def image_tag(image: str) -> str | None:
    """The tag of ``registry/repository:tag``; None for an image pinned by digest or untagged."""
    name = image.rsplit("/", 1)[-1]
    if "@" in name or ":" not in name:
        return None
    return name.rsplit(":", 1)[1]


def ecr_lifecycle_policy(keep: int, protected_tags: list[str] | None = None) -> str:
    """Untagged images go after a day; the newest ``keep`` and every protected tag stay.

    ECR has no "keep" action, but "an image that matches the tagging requirements of a rule
    cannot be expired by a rule with a lower priority" (Amazon ECR user guide, lifecycle
    policies, "How lifecycle policies are evaluated"). So each tag a stack runs gets a rule of
    its own ahead of the count rule: it selects exactly that image (tags are immutable, so one
    image at most carries it) and expires only beyond a count of one, i.e. never. The rule with
    ``tagStatus: any`` must have the highest priority (lifecycle policy properties).
    """
    keep_rules = [
        {
            "rulePriority": priority,
            "description": f"Keep {tag}: a stack runs it",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": [tag],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        }
        for priority, tag in enumerate(sorted(set(protected_tags or [])), start=1)
    ]
    after = len(keep_rules)
    return json.dumps(
        {
            "rules": [
                *keep_rules,
                {
                    "rulePriority": after + 1,
                    "description": "Remove untagged images after one day",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 1,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": after + 2,
                    "description": f"Keep the newest {keep} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


def mlflow_role_policy(bucket_arn: str, key_arn: str) -> str:
    """The tracking server reads and writes the bucket and its key, nothing else."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"{bucket_arn}/mlflow/*",
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                    "Resource": bucket_arn,
                },
                {
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": key_arn,
                },
            ],
        }
    )


class Registries(pulumi.ComponentResource):
    """The serving image repository, a model package group per model, the tracking server."""

    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    package_groups: dict[str, aws.sagemaker.ModelPackageGroup]
    tracking_server: aws.sagemaker.MlflowTrackingServer | None

    def __init__(
        self, name: str, args: RegistriesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:Registries", name, None, opts)
        protected = pulumi.ResourceOptions(parent=self, protect=args.protect)

        if args.create_repository:
            repository = aws.ecr.Repository(
                f"{name}-serving",
                name=args.repository_name,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.key_arn}],
                force_delete=False,
                tags=args.tags,
                opts=protected,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-serving-lifecycle",
                repository=repository.name,
                policy=ecr_lifecycle_policy(args.keep_images, args.protected_tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.repository_url, self.repository_arn = repository.repository_url, repository.arn
            if args.pull_accounts:
                aws.ecr.RepositoryPolicy(
                    f"{name}-serving-pulls",
                    repository=repository.name,
                    policy=cross_account_pull_policy(args.pull_accounts),
                    opts=pulumi.ResourceOptions(parent=self),
                )
        elif args.image_account:
            host = f"{args.image_account}.dkr.ecr.{args.region}.amazonaws.com"
            self.repository_url = pulumi.Output.from_input(f"{host}/{args.repository_name}")
            self.repository_arn = pulumi.Output.from_input(
                f"arn:aws:ecr:{args.region}:{args.image_account}:repository/{args.repository_name}"
            )
        else:
            existing = aws.ecr.get_repository_output(
                name=args.repository_name, opts=pulumi.InvokeOutputOptions(parent=self)
            )
            self.repository_url, self.repository_arn = existing.repository_url, existing.arn

        self.package_groups = {
            model: aws.sagemaker.ModelPackageGroup(
                f"{name}-{slug(model)}-packages",
                model_package_group_name=package_group_name(model, args.environment),
                model_package_group_description=f"Registered versions of {model}",
                tags=tags,
                opts=protected,
            )
            for model, tags in sorted(args.models.items())
        }

        self.tracking_server = None
        self.tracking_uri: pulumi.Output[str] | None = None
        if args.mlflow:
            role = workload_role(
                f"{name}-mlflow-role",
                f"{name}-mlflow-policy",
                environment=args.environment,
                boundary=args.boundary_arn,
                trust=assume_role_policy("sagemaker.amazonaws.com"),
                policy=pulumi.Output.all(args.bucket_arn, args.key_arn).apply(
                    lambda a: mlflow_role_policy(a[0], a[1])
                ),
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.tracking_server = aws.sagemaker.MlflowTrackingServer(
                f"{name}-mlflow",
                tracking_server_name=f"mlops-{slug(args.environment)}",
                artifact_store_uri=pulumi.Output.concat("s3://", args.bucket_name, "/mlflow"),
                role_arn=role.arn,
                tracking_server_size=args.mlflow_size,
                mlflow_version=args.mlflow_version,
                automatic_model_registration=False,
                tags=args.tags,
                opts=protected,
            )
            # The pipelines' MLFLOW_TRACKING_URI is the server's ARN (sagemaker-mlflow plugin).
            self.tracking_uri = self.tracking_server.arn

        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "package_groups": {
                    m: g.model_package_group_name for m, g in self.package_groups.items()
                },
                "tracking_uri": self.tracking_uri,
            }
        )
