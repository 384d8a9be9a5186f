"""A SageMaker real-time endpoint for the version git pins, updated blue/green in place.

Names are chosen for SageMaker's immutability: the model and the endpoint configuration carry
the version in their Pulumi names (and get generated physical names), so a new pin creates a
new model and configuration, and the endpoint, whose name never changes, moves to it with a
blue/green deployment (canary or linear, as model.yaml says) that SageMaker rolls back by
itself when one of the alarms it watches fires. The old configuration is deleted afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.roles import assume_role_policy, workload_role
from pipelines.core.conventions import capture_prefix, model_data_key
from pipelines.core.definitions import AllAtOnce, Canary, Deployment
from pipelines.core.deploy_limits import (
    CANARY_MAX_PERCENT,
    LINEAR_MAX_PERCENT,
    LINEAR_MIN_PERCENT,
    MAX_WAIT_SECONDS,
    MIN_SHIFTING_INSTANCES,
    PROVIDER_ENDPOINT_WAIT_MINUTES,
    TERMINATION_WAIT_SECONDS,
    Fleet,
    fleet,
    has_instance_storage,
    sagemaker_variant,
)

VARIANT = "AllTraffic"  # the variant name the serving image and the capture layout assume
CONTAINER_PORT = 8080
ROLLBACK_CONFIGURATION = "deploymentConfig.autoRollbackConfiguration"


@dataclass
class SagemakerEndpointArgs:
    model: str
    version: str
    environment: str
    endpoint_name: str
    deployment: Deployment
    image_uri: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    # Fixed names (monitoring.alarm_names), never outputs: see the endpoint's ignore_changes.
    rollback_alarm_names: list[str]
    tags: dict[str, str]
    capture_percent: int = 100
    scaled_down: bool = False
    scaled_down_instance_type: str = "ml.t2.medium"
    extra_environment: dict[str, str] = field(default_factory=dict)
    boundary_arn: pulumi.Input[str] | None = None  # the stack's WorkloadBoundary
    rollback_alarms: list[pulumi.Resource] = field(default_factory=list)  # created first


def traffic_routing(
    deployment: Deployment, smallest_fleet: int | None = None
) -> aws.sagemaker.EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationArgsDict:
    """model.yaml's strategy as SageMaker's blue/green traffic routing, within its bounds.

    A fleet that can be a single instance (a scaled-down stack) cannot be shifted by instance,
    so it moves all at once and still bakes; ``mlops check`` refuses model.yaml files that
    ask for that on a full-size stack.
    """
    strategy = deployment.strategy
    wait = min(strategy.bake_minutes * 60, MAX_WAIT_SECONDS)
    if smallest_fleet is None:
        smallest_fleet = fleet(deployment).minimum
    if isinstance(strategy, AllAtOnce) or smallest_fleet < MIN_SHIFTING_INSTANCES:
        return {"type": "ALL_AT_ONCE", "wait_interval_in_seconds": wait}
    if isinstance(strategy, Canary):
        size = min(strategy.canary_percent, CANARY_MAX_PERCENT)
        return {
            "type": "CANARY",
            "wait_interval_in_seconds": wait,
            "canary_size": {"type": "CAPACITY_PERCENT", "value": size},
        }
    step = min(max(strategy.step_percent, LINEAR_MIN_PERCENT), LINEAR_MAX_PERCENT)
    return {
        "type": "LINEAR",
        "wait_interval_in_seconds": wait,
        "linear_step_size": {"type": "CAPACITY_PERCENT", "value": step},
    }


def execution_role_policy(
    bucket_arn: str, key_arn: str, repository_arn: str, model: str, environment: str, endpoint: str
) -> str:
    """Read this model's archives, write this environment's captures, pull the one image."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadModelArchives",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"{bucket_arn}/{model_data_key(model, '*')}",
                },
                {
                    "Sid": "WriteCaptures",
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"{bucket_arn}/{capture_prefix(environment)}/*",
                },
                {
                    "Sid": "UseTheKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": key_arn,
                },
                {
                    "Sid": "PullTheServingImage",
                    "Effect": "Allow",
                    "Action": [
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
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
                    "Sid": "WriteEndpointLogs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": f"arn:aws:logs:*:*:log-group:/aws/sagemaker/Endpoints/{endpoint}:*",
                },
            ],
        }
    )


def instances_after_update(size: Fleet) -> int:
    """The new configuration's ``initial_instance_count``: the most auto-scaling may have reached.

    UpdateEndpoint keeps the running instance count only with ``RetainAllVariantProperties``
    (SageMaker API reference, UpdateEndpoint), which the provider does not expose
    (terraform-provider-aws ``aws_sagemaker_endpoint`` has no such argument; pulumi_aws 7's
    ``Endpoint`` takes deployment_config, endpoint_config_name, name, region, tags). Each version
    update would therefore reset a fleet auto-scaling grew back to model.yaml's
    ``instance_count`` in the middle of the load that grew it. Starting the new fleet at the
    maximum never leaves it smaller than the one it replaces; target tracking scales it in to
    what the traffic needs after its scale-in cooldown, so the cost is minutes of extra
    instances per update.
    """
    return size.maximum


class SagemakerEndpoint(pulumi.ComponentResource):
    """Model, endpoint configuration with data capture, endpoint, and its auto-scaling."""

    endpoint: aws.sagemaker.Endpoint
    endpoint_config: aws.sagemaker.EndpointConfiguration

    def __init__(
        self, name: str, args: SagemakerEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:SagemakerEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        deployment = args.deployment
        instance_type, size = sagemaker_variant(
            deployment,
            scaled_down=args.scaled_down,
            scaled_down_instance_type=args.scaled_down_instance_type,
        )
        minimum, count, maximum = size.minimum, instances_after_update(size), size.maximum

        role = workload_role(
            f"{name}-role",
            f"{name}-role-policy",
            environment=args.environment,
            boundary=args.boundary_arn,
            trust=assume_role_policy("sagemaker.amazonaws.com"),
            policy=pulumi.Output.all(args.bucket_arn, args.key_arn, args.repository_arn).apply(
                lambda a: execution_role_policy(
                    a[0], a[1], a[2], args.model, args.environment, args.endpoint_name
                )
            ),
            tags=args.tags,
            opts=child,
        )

        version_suffix = f"v{args.version}"
        # A version's model and configuration outlive the stack's reference to them: after an
        # alarm-triggered rollback SageMaker serves the previous ones while the provider, told
        # the update succeeded, would delete them. Both are free metadata; `mlops sagemaker
        # verify-endpoints` then fails the run and says which configuration is live.
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        model = aws.sagemaker.Model(
            f"{name}-model-{version_suffix}",
            execution_role_arn=role.arn,
            primary_container={
                "image": args.image_uri,
                "model_data_url": pulumi.Output.concat(
                    "s3://", args.bucket_name, "/", model_data_key(args.model, args.version)
                ),
                "environment": {
                    # SageMaker captures itself; a second capture in the server would double it.
                    "MLOPS_SERVE_ENDPOINT_NAME": args.endpoint_name,
                    "MLOPS_SERVE_VARIANT_NAME": VARIANT,
                    **args.extra_environment,
                },
            },
            # The container needs no network: SageMaker mounts the model and captures itself.
            enable_network_isolation=True,
            tags=args.tags,
            opts=kept,
        )
        self.endpoint_config = aws.sagemaker.EndpointConfiguration(
            f"{name}-config-{version_suffix}",
            # SageMaker refuses a volume key where the instance's own storage is encrypted.
            kms_key_arn=None if has_instance_storage(instance_type) else args.key_arn,
            production_variants=[
                {
                    "variant_name": VARIANT,
                    "model_name": model.name,
                    "instance_type": instance_type,
                    "initial_instance_count": count,
                }
            ],
            data_capture_config={
                "enable_capture": True,
                "initial_sampling_percentage": args.capture_percent,
                "destination_s3_uri": pulumi.Output.concat(
                    "s3://", args.bucket_name, "/", capture_prefix(args.environment)
                ),
                "kms_key_id": args.key_arn,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                "capture_content_type_header": {
                    "json_content_types": ["application/json"],
                    "csv_content_types": ["text/csv"],
                },
            },
            tags=args.tags,
            opts=kept,
        )
        self.endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=args.endpoint_name,
            endpoint_config_name=self.endpoint_config.name,
            deployment_config={
                "blue_green_update_policy": {
                    "traffic_routing_configuration": traffic_routing(deployment, minimum),
                    "termination_wait_in_seconds": TERMINATION_WAIT_SECONDS,
                    # SageMaker gives up (and rolls back) when the provider stops waiting, so a
                    # deploy never ends with an update still running behind it.
                    "maximum_execution_timeout_in_seconds": PROVIDER_ENDPOINT_WAIT_MINUTES * 60,
                },
                "auto_rollback_configuration": {
                    "alarms": [{"alarm_name": alarm} for alarm in args.rollback_alarm_names]
                },
            },
            tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=args.rollback_alarms,
                # The provider forces a replacement when auto_rollback_configuration changes
                # (ForceNew in terraform-provider-aws's aws_sagemaker_endpoint), which fails
                # under a fixed endpoint name. The alarms' names derive from the endpoint's
                # alone, so the set never changes for an endpoint; what tunes them (thresholds)
                # lives on the alarms and updates in place.
                ignore_changes=[ROLLBACK_CONFIGURATION],
            ),
        )

        resource_id = self.endpoint.name.apply(lambda n: f"endpoint/{n}/variant/{VARIANT}")
        target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=resource_id,
            min_capacity=minimum,
            max_capacity=maximum,
            tags=args.tags,
            opts=child,
        )
        aws.appautoscaling.Policy(
            f"{name}-scaling-policy",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": float(deployment.autoscaling.target_invocations_per_instance),
                "predefined_metric_specification": {
                    "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"
                },
                "scale_in_cooldown": 300,
                "scale_out_cooldown": 60,
            },
            opts=child,
        )

        self.endpoint_name = self.endpoint.name
        self.register_outputs(
            {"endpoint_name": self.endpoint_name, "endpoint_config_name": self.endpoint_config.name}
        )
