"""The artifact store: one S3 bucket for model archives, captures, baselines and MLflow.

Secure by default: a customer-managed KMS key with rotation, versioning, every kind of public
access blocked, bucket-owner-enforced ownership (no ACLs), a policy that refuses plain HTTP,
and access logs in a second bucket. Lifecycle rules keep the bill bounded: old object versions
and raw captures expire after the number of days the stack configures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from pipelines.core.conventions import CAPTURES_PREFIX

_EncryptionDefault = (
    aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgsDict
)


@dataclass
class ArtifactStoreArgs:
    tags: dict[str, str]
    noncurrent_version_days: int = 30
    capture_retention_days: int = 90
    log_retention_days: int = 365
    protect: bool = False
    extra_read_principals: list[pulumi.Input[str]] = field(default_factory=list)


def deny_insecure_transport(bucket_arn: str) -> str:
    """A bucket policy that refuses every request not made over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


class ArtifactStore(pulumi.ComponentResource):
    """An encrypted, private, versioned bucket with access logging."""

    bucket: aws.s3.Bucket
    key: aws.kms.Key
    log_bucket: aws.s3.Bucket

    def __init__(
        self, name: str, args: ArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:ArtifactStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, protect=args.protect)

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{name}: model archives, captures and monitoring reports",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{name}",
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.log_bucket = aws.s3.Bucket(
            f"{name}-logs", force_destroy=False, tags=args.tags, opts=child
        )
        # S3 server access logs cannot be delivered to a KMS-encrypted bucket; SSE-S3 instead.
        self._private(f"{name}-logs", self.log_bucket, kms_key_arn=None)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-logs-lifecycle",
            bucket=self.log_bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": args.log_retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 1},
                }
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket", force_destroy=False, tags=args.tags, opts=child
        )
        self._private(f"{name}-bucket", self.bucket, kms_key_arn=self.key.arn)
        aws.s3.BucketPolicy(
            f"{name}-bucket-policy",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(deny_insecure_transport),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.s3.BucketPolicy(
            f"{name}-logs-policy",
            bucket=self.log_bucket.id,
            policy=pulumi.Output.all(self.log_bucket.arn, self.bucket.arn).apply(
                lambda a: _log_delivery_policy(a[0], a[1])
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        aws.s3.BucketLogging(
            f"{name}-bucket-logging",
            bucket=self.bucket.id,
            target_bucket=self.log_bucket.id,
            target_prefix="artifacts/",
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-bucket-lifecycle",
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "expire-old-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": args.noncurrent_version_days
                    },
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                },
                {
                    "id": "expire-captures",
                    "status": "Enabled",
                    "filter": {"prefix": f"{CAPTURES_PREFIX}/"},
                    "expiration": {"days": args.capture_retention_days},
                },
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.key_arn = self.key.arn
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "key_arn": self.key_arn,
            }
        )

    def _private(
        self, name: str, bucket: aws.s3.Bucket, kms_key_arn: pulumi.Output[str] | None
    ) -> None:
        """Versioning, encryption, no public access and no ACLs on ``bucket``."""
        opts = pulumi.ResourceOptions(parent=self)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=opts,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=opts,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=opts,
        )
        default: _EncryptionDefault
        if kms_key_arn is None:
            default = {"sse_algorithm": "AES256"}
        else:
            default = {"sse_algorithm": "aws:kms", "kms_master_key_id": kms_key_arn}
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                {"apply_server_side_encryption_by_default": default, "bucket_key_enabled": True}
            ],
            opts=opts,
        )


def _log_delivery_policy(log_bucket_arn: str, source_bucket_arn: str) -> str:
    """TLS only, and the S3 logging service may write the artifact bucket's access logs."""
    policy = json.loads(deny_insecure_transport(log_bucket_arn))
    policy["Statement"].append(
        {
            "Sid": "AllowAccessLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{log_bucket_arn}/*",
            "Condition": {"ArnLike": {"aws:SourceArn": source_bucket_arn}},
        }
    )
    return json.dumps(policy)
