"""What AWS and the deploy path would refuse, checked before anything is deployed.

Pulumi's mock runtime accepts any value; SageMaker, IAM and the Pulumi AWS provider do not. Each
limit is written here once, with where it comes from, and enforced at the edges: ``mlops check``
(every model against every environment), the Pulumi program at preview (the stack being
deployed) and the policy pack (the resources as declared). Importing this module has no side
effects and does not import Pulumi.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pipelines.core.conventions import endpoint_name, package_group_name, slug
from pipelines.core.definitions import AllAtOnce, Canary, Deployment, ModelDefinition
from pipelines.core.errors import DefinitionError

# --- names ------------------------------------------------------------------------------------

# SageMaker's names (EndpointName, EndpointConfigName, ModelName, JobDefinitionName,
# MonitoringScheduleName, ModelPackageGroupName) all match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}:
# at most 63 characters (SageMaker API Reference, CreateEndpoint and the other Create* actions).
SAGEMAKER_NAME_MAX = 63
# EventBridge Scheduler: a schedule's Name, 1-64 characters (Scheduler API Reference,
# CreateSchedule).
SCHEDULE_NAME_MAX = 64
# IAM: RoleName, 1-64 characters (IAM API Reference, CreateRole).
IAM_ROLE_NAME_MAX = 64
# A Kubernetes namespace is an RFC 1123 label: at most 63 characters (Kubernetes docs, "Object
# Names and IDs").
KUBERNETES_LABEL_MAX = 63
# Pulumi auto-naming appends "-" and 7 random characters to a resource's logical name
# (pulumi-aws autonaming; the mock runtime in tests/infra does the same). Shown as x's.
AUTONAME = "-" + "x" * 7
# `mlops check` assumes versions up to this one; the stack checks the version it pins.
LONGEST_CHECKED_VERSION = "9999"


@dataclass(frozen=True)
class CloudName:
    """One name a model gets in the cloud, and the longest that service accepts."""

    what: str
    name: str
    limit: int


def cloud_names(
    model: str, environment: str, target: str, version: str = LONGEST_CHECKED_VERSION
) -> list[CloudName]:
    """The names the Pulumi components derive from a model in one environment.

    They mirror the logical names in ``infra/components`` (``sagemaker_endpoint.py``,
    ``scheduled_monitor.py``, ``kubernetes_endpoint.py``, ``registries.py``); a test runs
    the program with the longest name this allows and holds every physical name to its limit.
    """
    base = endpoint_name(model, environment)
    names = [
        CloudName("model package group", package_group_name(model, environment), SAGEMAKER_NAME_MAX)
    ]
    if target == "sagemaker":
        names += [
            CloudName("endpoint", base, SAGEMAKER_NAME_MAX),
            CloudName("endpoint execution role", f"{base}-role{AUTONAME}", IAM_ROLE_NAME_MAX),
            CloudName("model", f"{base}-model-v{version}{AUTONAME}", SAGEMAKER_NAME_MAX),
            CloudName(
                "endpoint configuration", f"{base}-config-v{version}{AUTONAME}", SAGEMAKER_NAME_MAX
            ),
            CloudName("monitor job role", f"{base}-monitor-job{AUTONAME}", IAM_ROLE_NAME_MAX),
            CloudName("monitor schedule role", f"{base}-monitor-cron{AUTONAME}", IAM_ROLE_NAME_MAX),
        ]
    elif target == "kubernetes":
        names += [
            CloudName("namespace", base, KUBERNETES_LABEL_MAX),
            CloudName("pod role", f"{base}-pod-role{AUTONAME}", IAM_ROLE_NAME_MAX),
            CloudName("monitor pod role", f"{base}-monitor-pod{AUTONAME}", IAM_ROLE_NAME_MAX),
        ]
    return names


def check_cloud_names(
    definition: ModelDefinition,
    path: Path | str,
    environment: str,
    version: str = LONGEST_CHECKED_VERSION,
) -> None:
    """Refuse a model name whose derived names would exceed a service's limit."""
    names = cloud_names(definition.name, environment, definition.deployment.target, version)
    worst = max(names, key=lambda n: len(n.name) - n.limit)
    excess = len(worst.name) - worst.limit
    if excess <= 0:
        return
    longest = len(slug(definition.name)) - excess
    raise DefinitionError(
        f"{definition.name!r} is too long for environment {environment!r}: its "
        f"{worst.what} would be named {worst.name!r} ({len(worst.name)} characters, the limit "
        f"is {worst.limit}; x's stand for the suffix Pulumi generates, version "
        f"{version} assumed). Use a name of at most {longest} characters",
        file=path,
        field="name",
    )


# --- volume keys ------------------------------------------------------------------------------

# "Certain Nitro-based instances include local storage ... Local storage volumes are encrypted
# using a hardware module on the instance. You can't request a KmsKeyId when using an instance
# type with local storage ... the call to CreateEndpointConfig fails" (SageMaker API Reference,
# CreateEndpointConfig, KmsKeyId). The same sentence stands for VolumeKmsKeyId of training
# (ResourceConfig), batch transform (TransformResources) and processing jobs (ClusterConfig, which
# the scheduled monitor runs on). Which types have instance storage: Amazon EC2 "Instance store
# specifications". EC2 names such families with a "d" (c5d, m5d, r5d, g4dn, p3dn, p4d, m6id);
# these have NVMe instance storage without the letter:
INSTANCE_STORAGE_FAMILIES = frozenset(
    {"g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "p6-b200", "trn1", "trn1n", "trn2"}
)
_GENERATION = re.compile(r"^[a-z]+[0-9]+")


def has_instance_storage(instance_type: str) -> bool:
    """Whether an ``ml.*`` instance type has local NVMe storage (and so takes no volume key)."""
    family = instance_type.removeprefix("ml.").split(".")[0]
    attributes = _GENERATION.sub("", family).split("-")[0]  # g4dn: "dn"; p6-b200: ""
    return family in INSTANCE_STORAGE_FAMILIES or "d" in attributes


# --- traffic shifting -------------------------------------------------------------------------

# SageMaker shifts canary and linear traffic by instance: the canary is at most 50 % of the new
# fleet, a linear step 10-50 % of it (SageMaker API Reference, TrafficRoutingConfig: CanarySize,
# LinearStepSize; "Use canary traffic shifting"). A fleet of one cannot be split that way.
MIN_SHIFTING_INSTANCES = 2
CANARY_MAX_PERCENT = 50
LINEAR_MIN_PERCENT, LINEAR_MAX_PERCENT = 10, 50
# WaitIntervalInSeconds, the bake after each step: 0-3600 (TrafficRoutingConfig).
MAX_WAIT_SECONDS = 3600


class Fleet(NamedTuple):
    """A SageMaker variant's instances: the least auto-scaling keeps, the first, the most."""

    minimum: int
    initial: int
    maximum: int


def fleet(deployment: Deployment) -> Fleet:
    """model.yaml's instance count and auto-scaling as the endpoint runs them (at least one)."""
    minimum = max(deployment.autoscaling.min_instances, 1)
    maximum = max(deployment.autoscaling.max_instances, minimum)
    return Fleet(minimum, min(max(deployment.instance_count, minimum), maximum), maximum)


class SagemakerVariant(NamedTuple):
    """What a SageMaker endpoint's one production variant runs on a stack."""

    instance_type: str
    fleet: Fleet


def sagemaker_variant(
    deployment: Deployment, *, scaled_down: bool, scaled_down_instance_type: str
) -> SagemakerVariant:
    """model.yaml's instance type and fleet, or one small instance on a scaled-down stack.

    The Pulumi program deploys this, and ``mlops sagemaker deregister-scaling`` compares it with
    what runs before the deploy, so both read the stack's choice from here.
    """
    if scaled_down:
        return SagemakerVariant(scaled_down_instance_type, Fleet(1, 1, 1))
    return SagemakerVariant(deployment.instance_type, fleet(deployment))


def check_traffic_shifting(definition: ModelDefinition, path: Path | str) -> None:
    """Refuse canary or linear shifting on a SageMaker fleet that can shrink to one instance."""
    deployment = definition.deployment
    if deployment.target != "sagemaker" or isinstance(deployment.strategy, AllAtOnce):
        return
    smallest = fleet(deployment).minimum
    if smallest < MIN_SHIFTING_INSTANCES:
        raise DefinitionError(
            f"{deployment.strategy.type} traffic shifting needs at least "
            f"{MIN_SHIFTING_INSTANCES} instances on SageMaker, which moves traffic by instance "
            f"(a canary at most half the fleet, linear steps 10-50 % of it); this fleet can "
            f"shrink to {smallest}. Set min_instances (and instance_count) to "
            f"{MIN_SHIFTING_INSTANCES} or more, or deployment.strategy.type to all_at_once",
            file=path,
            field="deployment.autoscaling.min_instances",
        )


# --- rollout time -----------------------------------------------------------------------------

# The Pulumi AWS provider waits a fixed 60 minutes for an endpoint to be InService after an
# update (terraform-provider-aws, internal/service/sagemaker/endpoint.go, waitEndpointInService:
# timeout = 60 * time.Minute, not configurable), the deploy role's session lasts an hour
# (max_session_duration in infra/components/ci_access.py) and the deploy job has
# timeout-minutes: 60 (.github/workflows/infra.yml). A rollout that bakes longer fails midway.
PROVIDER_ENDPOINT_WAIT_MINUTES = 60
# Of those 60 minutes, held back for SageMaker to start and health-check the new fleet and for
# the rest of the deploy job (checkout, install, the other resources).
ROLLOUT_HEADROOM_MINUTES = 20
MAX_ROLLOUT_MINUTES = PROVIDER_ENDPOINT_WAIT_MINUTES - ROLLOUT_HEADROOM_MINUTES
# How long the old fleet is kept once all traffic has moved (BlueGreenUpdatePolicy
# TerminationWaitInSeconds): a last chance for an alarm to roll back.
TERMINATION_WAIT_SECONDS = 300


def shifting_steps(deployment: Deployment, smallest_fleet: int | None = None) -> int:
    """How many times SageMaker moves traffic, each move followed by a bake of bake_minutes."""
    strategy = deployment.strategy
    if smallest_fleet is None:
        smallest_fleet = fleet(deployment).minimum
    if isinstance(strategy, AllAtOnce) or smallest_fleet < MIN_SHIFTING_INSTANCES:
        return 1
    if isinstance(strategy, Canary):
        return 2
    step = min(max(strategy.step_percent, LINEAR_MIN_PERCENT), LINEAR_MAX_PERCENT)
    return math.ceil(100 / step)


def rollout_minutes(deployment: Deployment, smallest_fleet: int | None = None) -> float:
    """The longest an update of a SageMaker endpoint waits on purpose: every bake, then the
    old fleet's termination wait."""
    steps = shifting_steps(deployment, smallest_fleet)
    bake = min(deployment.strategy.bake_minutes * 60, MAX_WAIT_SECONDS) / 60
    return steps * bake + TERMINATION_WAIT_SECONDS / 60


def check_rollout_time(definition: ModelDefinition, path: Path | str) -> None:
    """Refuse a SageMaker rollout that would outlast what a deploy can wait for."""
    deployment = definition.deployment
    if deployment.target != "sagemaker":
        return  # a Kubernetes rollout advances between deploys (stack config `rollouts`)
    minutes = rollout_minutes(deployment)
    if minutes <= MAX_ROLLOUT_MINUTES:
        return
    steps = shifting_steps(deployment)
    termination = TERMINATION_WAIT_SECONDS // 60
    most = (MAX_ROLLOUT_MINUTES - termination) // steps
    raise DefinitionError(
        f"a {deployment.strategy.type} rollout on SageMaker waits {steps} x "
        f"{deployment.strategy.bake_minutes} minutes of baking + {termination} before the old "
        f"fleet goes = {minutes:g} minutes; a deploy waits at most {MAX_ROLLOUT_MINUTES} (the "
        f"provider gives an endpoint update {PROVIDER_ENDPOINT_WAIT_MINUTES} minutes, as long as "
        f"the CI role's session and the deploy job, and {ROLLOUT_HEADROOM_MINUTES} of them go to "
        f"starting the new fleet). Bake at most {most} minutes, or take fewer steps",
        file=path,
        field="deployment.strategy.bake_minutes",
    )
