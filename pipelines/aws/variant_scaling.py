"""Before ``pulumi up``: deregister the auto-scaling of each variant whose instance type changes.

UpdateEndpoint fails when it changes the instance type of, or removes, a production variant
that is registered with Application Auto Scaling; AWS's way through is to deregister the
scalable target (which deletes its scaling policies too), update the endpoint, and register it
again (SageMaker developer guide, "Update or delete endpoints that use auto scaling",
endpoint-scaling-update.html). The Pulumi program cannot order that itself: the target is a
separate resource that depends on the endpoint. So the deploy job runs this first. It compares
each SageMaker endpoint of the stack's plan (the one the program deploys: ``model_plan.plan``
and ``deploy_limits.sagemaker_variant``) with what runs (DescribeEndpoint, then
DescribeEndpointConfig), and deregisters the targets the update would trip over. The
``pulumi up`` that follows runs with ``--refresh``: the refresh finds the target and its policy
gone, and the update registers them again, after the endpoint, whose name the target's resource
id is made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.aws.sagemaker_flow import VARIANT, AwsError, aws_errors
from pipelines.core.cluster_settings import stack_values
from pipelines.core.conventions import endpoint_name
from pipelines.core.deploy_limits import sagemaker_variant
from pipelines.core.errors import MlopsError
from pipelines.core.model_plan import plan

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# Every call this module makes, as IAM names them: the deploy role allows each on the stack's
# own resources (infra/components/ci_access.py), which tests/infra/test_infra_iam.py proves.
ACTIONS = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DeregisterScalableTarget",
)


def resource_id(endpoint: str, variant: str) -> str:
    """A SageMaker variant's id in Application Auto Scaling."""
    return f"endpoint/{endpoint}/variant/{variant}"


@dataclass(frozen=True)
class PlannedEndpoint:
    """A SageMaker endpoint the stack's `pulumi up` deploys, and its variants' instance types."""

    model: str
    name: str
    variants: dict[str, str]


def planned_endpoints(root: Path, stack: str) -> list[PlannedEndpoint]:
    """The SageMaker endpoints the Pulumi program declares for ``stack``, from git alone.

    The plan and the stack settings it needs (``scaledDown``, ``scaledDownInstanceType``,
    ``rollouts``) are read as ``mlops render`` reads them: ``Pulumi.<stack>.yaml`` over
    ``Pulumi.yaml``'s defaults.
    """
    if not (root / "Pulumi.yaml").is_file():
        raise MlopsError("no Pulumi.yaml: this reads the stack's settings from it", file=root)
    values = stack_values(root, stack)
    stack_file = f"Pulumi.{stack}.yaml"
    scaled_down = _flag(values.get("scaledDown", False), stack_file, "scaledDown")
    small = values.get("scaledDownInstanceType")
    if scaled_down and not (isinstance(small, str) and small):
        raise MlopsError(
            "must name an instance type (ml.t2.medium in Pulumi.yaml)",
            file=stack_file,
            field="scaledDownInstanceType",
        )
    rollouts = values.get("rollouts") or []
    if not isinstance(rollouts, list) or not all(isinstance(r, str) for r in rollouts):
        raise MlopsError(
            "must be a list of model@version[=percent] strings", file=stack_file, field="rollouts"
        )
    planned = []
    for p in plan(root, stack, rollouts):
        if not p.has_endpoint or p.target != "sagemaker":
            continue
        variant = sagemaker_variant(
            p.deployment, scaled_down=scaled_down, scaled_down_instance_type=str(small)
        )
        planned.append(
            PlannedEndpoint(p.name, endpoint_name(p.name, stack), {VARIANT: variant.instance_type})
        )
    return planned


def _flag(value: Any, stack_file: str, key: str) -> bool:
    """A boolean as Pulumi's ``require_bool`` reads it: YAML's true/false or the strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise MlopsError(f"is {value!r}; it must be true or false", file=stack_file, field=key)


@dataclass(frozen=True)
class Deregistration:
    """A registered variant that the update changes or removes: its target must go first."""

    endpoint: str
    variant: str
    live_type: str | None
    planned_type: str | None  # None: the update removes the variant

    @property
    def resource_id(self) -> str:
        return resource_id(self.endpoint, self.variant)

    def reason(self) -> str:
        live = self.live_type or "no instance type (serverless)"
        change = (
            f"the deploy removes it (it runs {live})"
            if self.planned_type is None
            else f"its instance type changes from {live} to {self.planned_type}"
        )
        return (
            f"{self.endpoint}/{self.variant}: {change} and it is registered for auto-scaling, "
            "which UpdateEndpoint refuses"
        )


@dataclass
class ScalingCheck:
    """What the stack's SageMaker endpoints need before ``pulumi up``, read from AWS."""

    deregistrations: list[Deregistration] = field(default_factory=list)
    # Live variants the deploy keeps whose target is already gone (deregistered by hand, or by
    # a run of this whose `up` did not get to refresh): the stack's state may still hold them.
    unregistered: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def refresh(self) -> bool:
        """Whether the next ``pulumi up`` must refresh to register the targets again."""
        return bool(self.deregistrations or self.unregistered)


def check(sagemaker: Any, autoscaling: Any, planned: list[PlannedEndpoint]) -> ScalingCheck:
    """Compare each planned endpoint with the one running; reads only, changes nothing."""
    result = ScalingCheck()
    for endpoint in planned:
        live = live_variants(sagemaker, endpoint.name)
        if live is None:
            result.notes.append(f"{endpoint.name}: not live yet; `pulumi up` creates it")
            continue
        registered = registered_variants(autoscaling, endpoint.name, sorted(live))
        for variant, live_type in sorted(live.items()):
            planned_type = endpoint.variants.get(variant)
            where = f"{endpoint.name}/{variant}"
            if variant in registered:
                if planned_type == live_type:
                    result.notes.append(f"{where}: stays {live_type}; nothing to do")
                else:
                    result.deregistrations.append(
                        Deregistration(endpoint.name, variant, live_type, planned_type)
                    )
            elif planned_type is None:
                result.notes.append(
                    f"{where}: the deploy removes it; not registered for auto-scaling, so "
                    "nothing to do"
                )
            else:
                result.unregistered.append(resource_id(endpoint.name, variant))
                change = (
                    f"stays {live_type}"
                    if planned_type == live_type
                    else f"changes from {live_type} to {planned_type}"
                )
                result.notes.append(
                    f"{where}: {change}, and is not registered for auto-scaling (deregistered "
                    "by an earlier run or by hand): `pulumi up` refreshes and registers it again"
                )
    return result


def live_variants(sagemaker: Any, endpoint: str) -> dict[str, str | None] | None:
    """The running variants' instance types, by name; None when the endpoint does not exist."""
    from botocore.exceptions import ClientError

    with aws_errors(f"DescribeEndpoint {endpoint}", sagemaker):
        try:
            described = sagemaker.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            # SageMaker reports an unknown endpoint as a ValidationException with this text.
            if error.get("Code") == "ValidationException" and "Could not find endpoint" in str(
                error.get("Message", "")
            ):
                return None
            raise
    config = described["EndpointConfigName"]
    with aws_errors(f"DescribeEndpointConfig {config} (of endpoint {endpoint})", sagemaker):
        variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)[
            "ProductionVariants"
        ]
    return {v["VariantName"]: v.get("InstanceType") for v in variants}


def registered_variants(autoscaling: Any, endpoint: str, variants: list[str]) -> set[str]:
    """Which of an endpoint's variants are scalable targets."""
    ids = {resource_id(endpoint, v): v for v in variants}
    found: set[str] = set()
    with aws_errors(f"DescribeScalableTargets for {endpoint}", autoscaling):
        pages = autoscaling.get_paginator("describe_scalable_targets").paginate(
            ServiceNamespace=NAMESPACE, ResourceIds=sorted(ids), ScalableDimension=DIMENSION
        )
        for page in pages:
            targets = [t["ResourceId"] for t in page["ScalableTargets"]]
            found |= {ids[t] for t in targets if t in ids}
    return found


def deregister(autoscaling: Any, deregistrations: list[Deregistration]) -> list[str]:
    """Deregister each target (AWS deletes its scaling policies with it); what was done, by line.

    A target already gone counts as done. When one call fails, the error names what was
    deregistered before it: the next run of this step sees those targets missing and still
    asks for the refresh that registers them again.
    """
    from botocore.exceptions import ClientError

    done: list[str] = []
    for change in deregistrations:
        try:
            with aws_errors(f"DeregisterScalableTarget {change.resource_id}", autoscaling):
                try:
                    autoscaling.deregister_scalable_target(
                        ServiceNamespace=NAMESPACE,
                        ResourceId=change.resource_id,
                        ScalableDimension=DIMENSION,
                    )
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "ObjectNotFoundException":
                        raise
        except AwsError as exc:
            before = f"; already deregistered: {', '.join(done)}" if done else ""
            raise AwsError(
                f"{exc}{before}. Nothing else was changed; run the deploy again once the cause "
                "is fixed (it refreshes the stack and registers the targets again)"
            ) from exc
        done.append(change.resource_id)
    return done
