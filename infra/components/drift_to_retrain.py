"""Drift alarm to retraining: EventBridge calls GitHub's ``repository_dispatch`` directly.

When a model's drift alarm (``Monitoring``) goes into ALARM, an EventBridge rule sends
``{"event_type": "drift-detected", "client_payload": {"model": ...}}`` (the event the retrain
workflow listens for, ``pipelines.core.conventions.RETRAIN_EVENT_TYPE``) through an API
destination. A dispatch that still fails after EventBridge's retries (GitHub down, token
revoked) lands in a dead-letter queue instead of vanishing, so a missed retraining is visible
and can be replayed.

The GitHub token never passes through Pulumi. The program creates the connection with a
placeholder and ignores later changes to it; ``mlops retrain-token`` sets the real value with
``events:UpdateConnection``, and EventBridge keeps it in a Secrets Manager secret of its own.
Pulumi state (and its config) therefore hold no secret, so the pull-request preview role, which
must read the state, can read no token either (pulumi/pulumi#11024: a preview that can decrypt
the state can read every secret in it).
The connection's secret is encrypted with a key of its own that EventBridge accepts (tagged, with
the documented key policy: see ``connection_key_policy``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.roles import assume_role_policy, workload_role
from pipelines.core.conventions import (
    DISPATCH_TOKEN_PLACEHOLDER,
    GITHUB_API_HEADERS,
    RETRAIN_EVENT_TYPE,
    dispatch_connection_name,
    slug,
)

GITHUB_API = "https://api.github.com"


@dataclass
class DriftToRetrainArgs:
    repository: str  # owner/name
    environment: str
    drift_alarm_arns: dict[str, pulumi.Input[str]]  # model -> its drift alarm ARN
    key_arn: pulumi.Input[str]
    tags: dict[str, str]
    boundary_arn: pulumi.Input[str] | None = None  # the stack's WorkloadBoundary
    protect: bool = False  # the connection's key: losing it loses the connection's secret


# EventBridge uses a customer managed key for a connection only if the key carries this tag.
CONNECTION_KEY_TAG = {"EventBridgeApiDestinations": "true"}
# The actions EventBridge needs on a connection's key (both quotes: Amazon EventBridge user guide,
# "Encrypting EventBridge connection authorization with AWS KMS keys",
# https://docs.aws.amazon.com/eventbridge/latest/userguide/encryption-connections.html).
CONNECTION_KEY_ACTIONS = ["kms:DescribeKey", "kms:GenerateDataKey", "kms:Decrypt"]
# What an account needs to manage (not use) a key: AWS's default "key administrators" statement.
KEY_ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]


def connection_key_policy(account_id: str, region: str) -> str:
    """The key policy EventBridge documents for connections, scoped to this account.

    The account administers the key through IAM (the deploy role's key statements), but using
    it is allowed only as EventBridge does: through Secrets Manager, for a connection's secret
    (``events!connection/*`` in the encryption context), on a key tagged
    ``EventBridgeApiDestinations=true`` -- the conditions the EventBridge guide recommends.
    """
    account = f"arn:aws:iam::{account_id}:root"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": account},
                    "Action": KEY_ADMIN_ACTIONS,
                    "Resource": "*",
                },
                {
                    "Sid": "EventBridgeConnectionsThroughSecretsManager",
                    "Effect": "Allow",
                    "Principal": {"AWS": account},
                    "Action": CONNECTION_KEY_ACTIONS,
                    "Resource": "*",
                    "Condition": {
                        "StringLike": {
                            "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
                            "kms:EncryptionContext:SecretARN": [
                                f"arn:aws:secretsmanager:{region}:{account_id}"
                                ":secret:events!connection/*"
                            ],
                        },
                        "StringEquals": {"aws:ResourceTag/EventBridgeApiDestinations": "true"},
                    },
                },
            ],
        }
    )


def alarm_event_pattern(alarm_arn: str) -> str:
    """This alarm entering ALARM (not OK or INSUFFICIENT_DATA)."""
    return json.dumps(
        {
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "resources": [alarm_arn],
            "detail": {"state": {"value": ["ALARM"]}},
        }
    )


def dispatch_template(model: str, environment: str) -> str:
    """The body GitHub receives; ``<alarm>`` is filled in by EventBridge's input transformer."""
    body = {
        "event_type": RETRAIN_EVENT_TYPE,
        "client_payload": {"model": model, "environment": environment, "alarm": "<alarm>"},
    }
    # EventBridge substitutes <alarm> inside the JSON string, quotes included.
    return json.dumps(body).replace('"<alarm>"', "<alarm>")


def dead_letter_policy(queue_arn: str, rule_arns: list[str]) -> str:
    """Only these rules' deliveries may land in the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "EventBridgeDeadLetters",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arns}},
                }
            ],
        }
    )


def invoke_policy(destination_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "events:InvokeApiDestination",
                    "Resource": destination_arn,
                }
            ],
        }
    )


class DriftToRetrain(pulumi.ComponentResource):
    """The GitHub connection and destination, and one rule per model."""

    connection_name: pulumi.Output[str]
    connection_key: aws.kms.Key
    dead_letters: aws.sqs.Queue
    rules: dict[str, aws.cloudwatch.EventRule]

    def __init__(
        self, name: str, args: DriftToRetrainArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:DriftToRetrain", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Not the stack's key: EventBridge refuses a key without its tag, and the connection's
        # key policy admits only EventBridge's use of it.
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.connection_key = aws.kms.Key(
            f"{name}-connection-key",
            description=f"{name}: the EventBridge connection's GitHub token",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.all(identity.account_id, region.region).apply(
                lambda a: connection_key_policy(a[0], a[1])
            ),
            tags={**args.tags, **CONNECTION_KEY_TAG},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        connection = aws.cloudwatch.EventConnection(
            f"{name}-github",
            name=dispatch_connection_name(args.environment),
            description="GitHub REST API with the repository_dispatch token",
            authorization_type="API_KEY",
            kms_key_identifier=self.connection_key.arn,
            auth_parameters={
                "api_key": {"key": "Authorization", "value": DISPATCH_TOKEN_PLACEHOLDER},
                "invocation_http_parameters": {
                    "headers": [
                        {"key": key, "value": value, "is_value_secret": False}
                        for key, value in GITHUB_API_HEADERS.items()
                    ]
                },
            },
            # The token is set outside Pulumi (`mlops retrain-token`); a deploy must not put
            # the placeholder back.
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["authParameters.apiKey.value"]
            ),
        )
        self.connection_name = connection.name
        destination = aws.cloudwatch.EventApiDestination(
            f"{name}-dispatches",
            description=f"repository_dispatch on {args.repository}",
            connection_arn=connection.arn,
            http_method="POST",
            invocation_endpoint=f"{GITHUB_API}/repos/{args.repository}/dispatches",
            invocation_rate_limit_per_second=1,
            opts=child,
        )
        role = workload_role(
            f"{name}-role",
            f"{name}-role-policy",
            environment=args.environment,
            boundary=args.boundary_arn,
            trust=assume_role_policy("events.amazonaws.com"),
            policy=destination.arn.apply(invoke_policy),
            tags=args.tags,
            opts=child,
        )

        # SQS-managed encryption: a customer key would need a key policy granting EventBridge.
        self.dead_letters = aws.sqs.Queue(
            f"{name}-dead-letters",
            message_retention_seconds=14 * 24 * 3600,
            sqs_managed_sse_enabled=True,
            tags=args.tags,
            opts=child,
        )
        self.rules = {}
        for model, alarm_arn in sorted(args.drift_alarm_arns.items()):
            rule = aws.cloudwatch.EventRule(
                f"{name}-{slug(model)}",
                description=f"Drift alarm of {model} in {args.environment} -> retrain workflow",
                event_pattern=pulumi.Output.from_input(alarm_arn).apply(alarm_event_pattern),
                tags={**args.tags, "model": model},
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{slug(model)}-target",
                rule=rule.name,
                arn=destination.arn,
                role_arn=role.arn,
                input_transformer={
                    "input_paths": {"alarm": "$.detail.alarmName"},
                    "input_template": dispatch_template(model, args.environment),
                },
                retry_policy={"maximum_event_age_in_seconds": 3600, "maximum_retry_attempts": 10},
                dead_letter_config={"arn": self.dead_letters.arn},
                opts=child,
            )
            self.rules[model] = rule
        if self.rules:
            aws.sqs.QueuePolicy(
                f"{name}-dead-letters-policy",
                queue_url=self.dead_letters.url,
                policy=pulumi.Output.all(
                    self.dead_letters.arn, *(rule.arn for rule in self.rules.values())
                ).apply(lambda arns: dead_letter_policy(arns[0], list(arns[1:]))),
                opts=child,
            )

        self.register_outputs(
            {
                "connection_name": self.connection_name,
                "dead_letter_queue_arn": self.dead_letters.arn,
            }
        )
