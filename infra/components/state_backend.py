"""Where Pulumi keeps a stack's state and secrets key, and what CI may do with them.

With a self-managed backend (``pulumi login s3://<bucket>``) and the ``awskms`` secrets
provider, ``pulumi up`` and ``pulumi preview`` in CI read and write S3 objects and call KMS
outside every resource the program declares. Those grants were left to the platform's bucket
names (``mlops-<stack>-*``): a state bucket named otherwise was unreachable, one named so was
reachable with the rights meant for the artifact store. Here they are named: config
``stateBucket`` and ``secretsKeyArn``, validated, and each CI role gets exactly its stack's part.

The layout is the Pulumi CLI's for project-scoped stacks (``pkg/backend/diy``):
``.pulumi/stacks/<project>/<stack>.json`` (and its ``.bak``/``.gz`` variants), history and
backups under ``.pulumi/{history,backups}/<project>/<stack>/``, update locks under
``.pulumi/locks/organization/<project>/<stack>/``, and ``.pulumi/meta.yaml``. ``preview`` takes
no lock on this backend (only ``up``, ``refresh``, ``import`` and ``destroy`` do), so the
preview role reads and never writes.

The awskms provider encrypts the stack's data key with ``kms:Encrypt`` and unwraps it with
``kms:Decrypt`` when a stack is loaded, preview included. The program holds no secret (the
GitHub token goes straight to EventBridge, see ``drift_to_retrain``), so what the preview role
can decrypt is the data key of a state that has no secret in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipelines.core.errors import DefinitionError

STATE_DIR = ".pulumi"
# The organisation segment DIY backends use for project-scoped stacks.
DIY_ORGANIZATION = "organization"
# S3's rules for bucket names (general purpose buckets), as documented by S3.
_BUCKET_NAME = re.compile(
    r"^(?!xn--)(?!sthree-)(?!.*-s3alias$)(?!.*--ol-s3$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
)
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# A KMS key by ARN: IAM authorises key operations on the key ARN, never on an alias.
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")

Statement = dict[str, Any]


@dataclass(frozen=True)
class StateBackend:
    """A stack's Pulumi state bucket and the KMS key of its ``awskms`` secrets provider."""

    bucket: str
    secrets_key_arn: str
    project: str
    stack: str

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    def _objects(self, *keys: str) -> list[str]:
        return [f"{self.bucket_arn}/{STATE_DIR}/{key}" for key in keys]

    @property
    def state_objects(self) -> list[str]:
        """The stack's checkpoint and its history and backups."""
        p, s = self.project, self.stack
        return self._objects(f"stacks/{p}/{s}.json*", f"history/{p}/{s}/*", f"backups/{p}/{s}/*")

    @property
    def lock_objects(self) -> list[str]:
        return self._objects(f"locks/{DIY_ORGANIZATION}/{self.project}/{self.stack}/*")

    @property
    def meta_object(self) -> str:
        return self._objects("meta.yaml")[0]


def state_backend(
    bucket: str, secrets_key_arn: str, *, project: str, stack: str
) -> StateBackend | None:
    """The validated settings, or None when state lives elsewhere (Pulumi Cloud, a laptop).

    Raises DefinitionError naming ``Pulumi.<stack>.yaml`` and the key when a value could not
    work: a bucket name S3 would refuse, one inside the stack's own ``mlops-<stack>-`` names
    (where the deploy role manages buckets, so it could delete its own state), a key given by
    alias, or one setting without the other.
    """
    stack_file = f"Pulumi.{stack}.yaml"
    if not bucket and not secrets_key_arn:
        return None
    if not bucket or not secrets_key_arn:
        missing = "stateBucket" if not bucket else "secretsKeyArn"
        raise DefinitionError(
            f"{stack_file}: stateBucket and secretsKeyArn go together (the S3 backend and its "
            f"awskms secrets provider); {missing} is not set",
            field=missing,
        )
    if not _BUCKET_NAME.match(bucket) or _IP_ADDRESS.match(bucket) or ".." in bucket:
        raise DefinitionError(
            f"{stack_file}: stateBucket {bucket!r} is not a valid S3 bucket name (3-63 "
            "lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)",
            field="stateBucket",
        )
    if bucket.startswith(f"mlops-{stack}-"):
        raise DefinitionError(
            f"{stack_file}: stateBucket {bucket!r} is inside the stack's own bucket names "
            f"(mlops-{stack}-*), which its deploy role may reconfigure and delete; name the "
            "state bucket outside them",
            field="stateBucket",
        )
    if not _KEY_ARN.match(secrets_key_arn):
        raise DefinitionError(
            f"{stack_file}: secretsKeyArn {secrets_key_arn!r} is not a KMS key ARN "
            "(arn:aws:kms:<region>:<account>:key/<key-id>); IAM grants key use on the key's ARN, "
            "never on an alias",
            field="secretsKeyArn",
        )
    return StateBackend(bucket, secrets_key_arn, project, stack)


def _list_the_bucket(backend: StateBackend) -> Statement:
    """The CLI lists ``.pulumi/`` to find stacks, history and (on ``up``) other locks."""
    return {
        "Sid": "ListTheStateBucket",
        "Effect": "Allow",
        "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
        "Resource": backend.bucket_arn,
    }


def deploy_statements(backend: StateBackend) -> list[Statement]:
    """``pulumi up``: read and write the stack's checkpoint, take its lock, use the key."""
    return [
        _list_the_bucket(backend),
        {
            "Sid": "ThisStacksState",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": [*backend.state_objects, *backend.lock_objects],
        },
        {
            "Sid": "ReadTheBackendsMetadata",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": backend.meta_object,
        },
        {
            "Sid": "ThisStacksSecretsKey",
            "Effect": "Allow",
            # Encrypt/Decrypt: the awskms provider's data key; GenerateDataKey: an SSE-KMS
            # state bucket encrypted with the same key.
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            "Resource": backend.secrets_key_arn,
        },
    ]


def preview_statements(backend: StateBackend) -> list[Statement]:
    """``pulumi preview``: read the stack's checkpoint (no lock on this backend), unwrap its key."""
    return [
        _list_the_bucket(backend),
        {
            "Sid": "ReadThisStacksState",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [backend.state_objects[0], backend.meta_object],
        },
        {
            "Sid": "UnwrapThisStacksDataKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:DescribeKey"],
            "Resource": backend.secrets_key_arn,
        },
    ]
