"""The rules every stack must keep, as plain functions over resources' input properties.

Each rule takes what Pulumi hands a policy pack (a resource's type token and its input
properties, camelCase as on the wire) and returns the violations it finds, as messages. The
policy pack (``__main__.py``) reports them at ``pulumi preview``; the infra tests call the same
functions on what the program declares under the mock runtime, and on deliberately bad inputs.
Values that are unknown at preview time (not yet computed) are skipped, never guessed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pipelines.core.conventions import REQUIRED_TAGS
from pipelines.core.deploy_limits import (
    IAM_ROLE_NAME_MAX,
    KUBERNETES_LABEL_MAX,
    MAX_ROLLOUT_MINUTES,
    MIN_SHIFTING_INSTANCES,
    SAGEMAKER_NAME_MAX,
    SCHEDULE_NAME_MAX,
    has_instance_storage,
)

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
K8S_LABELS = ("mlops/model", "mlops/environment")
K8S_OWNER_ANNOTATION = "mlops/owner"

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ROLE = "aws:iam/role:Role"
SCHEDULE = "aws:scheduler/schedule:Schedule"
# The name property of each type the program names (or lets Pulumi name) from a model, and the
# longest name its service accepts (sources in pipelines.core.deploy_limits).
NAME_LIMITS: dict[str, tuple[str, int]] = {
    ENDPOINT: ("name", SAGEMAKER_NAME_MAX),
    ENDPOINT_CONFIG: ("name", SAGEMAKER_NAME_MAX),
    "aws:sagemaker/model:Model": ("name", SAGEMAKER_NAME_MAX),
    SCHEDULE: ("name", SCHEDULE_NAME_MAX),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": (
        "modelPackageGroupName",
        SAGEMAKER_NAME_MAX,
    ),
    ROLE: ("name", IAM_ROLE_NAME_MAX),
    "kubernetes:core/v1:Namespace": ("metadata.name", KUBERNETES_LABEL_MAX),
}
POLICY_DOCUMENT_PROPS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/policy:Policy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}


@dataclass
class Resource:
    """A declared resource as a rule sees it; ``refs`` names the resources a property uses."""

    type: str
    name: str
    props: Mapping[str, Any]
    refs: dict[str, list[str]] = field(default_factory=dict)


Rule = Callable[[str, Mapping[str, Any]], list[str]]


# --- resource rules -------------------------------------------------------------------------


def endpoint_captures_data(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every endpoint configuration captures requests and responses, encrypted, to S3."""
    if resource_type != ENDPOINT_CONFIG:
        return []
    capture = props.get("dataCaptureConfig")
    if not isinstance(capture, Mapping):
        return ["endpoint configuration has no dataCaptureConfig: the monitor would be blind"]
    problems = []
    if capture.get("enableCapture") is False:
        problems.append("data capture is disabled")
    sampling = capture.get("initialSamplingPercentage")
    if not _unknown(sampling) and not sampling:
        problems.append("data capture samples 0 % of requests")
    if "kmsKeyId" not in capture:
        problems.append("captured data is not encrypted with a KMS key (kmsKeyId)")
    modes = {
        o.get("captureMode") for o in capture.get("captureOptions") or [] if isinstance(o, Mapping)
    }
    if not {"Input", "Output"} <= modes:
        problems.append("data capture must record both Input and Output")
    return problems


def endpoint_rolls_back(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every endpoint updates blue/green and rolls back on at least one CloudWatch alarm."""
    if resource_type != ENDPOINT:
        return []
    deployment = props.get("deploymentConfig")
    if not isinstance(deployment, Mapping):
        return ["endpoint has no deploymentConfig: updates are not blue/green and never roll back"]
    problems = []
    if not isinstance(deployment.get("blueGreenUpdatePolicy"), Mapping):
        problems.append("endpoint has no blueGreenUpdatePolicy")
    rollback = deployment.get("autoRollbackConfiguration")
    alarms = rollback.get("alarms") if isinstance(rollback, Mapping) else None
    if not alarms:
        problems.append("endpoint has no rollback alarms (autoRollbackConfiguration.alarms)")
    return problems


def names_fit(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Names are no longer than their service accepts (SageMaker 63, IAM roles 64)."""
    if resource_type not in NAME_LIMITS:
        return []
    path, limit = NAME_LIMITS[resource_type]
    value: Any = props
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if isinstance(value, str) and len(value) > limit:
        return [f"name {value!r} is {len(value)} characters; the limit is {limit}"]
    return []


def no_volume_key_on_instance_storage(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No volume KMS key on an instance type with local storage: SageMaker refuses the call."""
    if resource_type == ENDPOINT_CONFIG and props.get("kmsKeyArn"):
        types = [
            v.get("instanceType")
            for v in props.get("productionVariants") or []
            if isinstance(v, Mapping)
        ]
    elif resource_type == SCHEDULE and _processing_request(props):
        cluster = _processing_request(props).get("ProcessingResources", {}).get("ClusterConfig", {})
        types = [cluster.get("InstanceType")] if cluster.get("VolumeKmsKeyId") else []
    else:
        return []
    return [
        f"{t} has local instance storage, which takes no volume KMS key"
        for t in types
        if isinstance(t, str) and has_instance_storage(t)
    ]


def rollout_fits_the_deploy(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """An endpoint update bakes no longer than a deploy can wait for it (40 minutes)."""
    if resource_type != ENDPOINT:
        return []
    policy = (props.get("deploymentConfig") or {}).get("blueGreenUpdatePolicy") or {}
    routing = policy.get("trafficRoutingConfiguration") or {}
    wait, termination = routing.get("waitIntervalInSeconds"), policy.get("terminationWaitInSeconds")
    if not isinstance(wait, int | float) or _unknown(termination):
        return []
    steps = {"CANARY": 2, "LINEAR": 0}.get(str(routing.get("type")), 1)
    if routing.get("type") == "LINEAR":
        step = (routing.get("linearStepSize") or {}).get("value") or 100
        steps = -(-100 // int(step))  # a percentage of the fleet per step
    minutes = (steps * wait + (termination or 0)) / 60
    if minutes > MAX_ROLLOUT_MINUTES:
        return [
            f"the update waits {minutes:g} minutes ({steps} bakes of {wait:g} s and the "
            f"termination wait); a deploy waits at most {MAX_ROLLOUT_MINUTES}"
        ]
    return []


def no_admin_statements(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No IAM policy allows every action on every resource."""
    documents: list[Any] = []
    if resource_type in POLICY_DOCUMENT_PROPS:
        documents.append(props.get(POLICY_DOCUMENT_PROPS[resource_type]))
    if resource_type == ROLE:
        documents += [
            p.get("policy") for p in props.get("inlinePolicies") or [] if isinstance(p, Mapping)
        ]
    problems = []
    for document in documents:
        for statement in _statements(document):
            if statement.get("Effect") != "Allow":
                continue
            actions = _as_list(statement.get("Action"))
            resources = _as_list(statement.get("Resource"))
            if any(a in ("*", "*:*") for a in actions) and "*" in resources:
                problems.append(f"statement {statement.get('Sid', '(no Sid)')} allows * on *")
            if "NotAction" in statement or "NotResource" in statement:
                problems.append(
                    f"statement {statement.get('Sid', '(no Sid)')} uses NotAction/NotResource"
                )
    return problems


def no_service_wildcards(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No IAM policy allows a whole service (``s3:*``): name the actions the program needs."""
    documents = (
        [props.get(POLICY_DOCUMENT_PROPS[resource_type])]
        if resource_type in POLICY_DOCUMENT_PROPS
        else []
    )
    return [
        f"statement {statement.get('Sid', '(no Sid)')} allows every action of {action[:-2]}"
        for document in documents
        for statement in _statements(document)
        if statement.get("Effect") == "Allow"
        for action in _as_list(statement.get("Action"))
        if isinstance(action, str) and action.endswith(":*")
    ]


# Roles on this path are the administrator's (CI roles); every other role the program
# creates is a workload role and must carry the stack's permissions boundary.
CI_ROLE_PATH_ROOT = "/mlops-ci/"


def workload_roles_carry_a_boundary(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Without its boundary, a workload role is refused by IAM for the deploy role (and, made
    by an administrator, would be a role whose inline policy alone decides what it may do)."""
    if resource_type != ROLE or str(props.get("path") or "/").startswith(CI_ROLE_PATH_ROOT):
        return []
    if props.get("permissionsBoundary"):
        return []
    return ["role has no permissions boundary (create it with infra.components.roles)"]


def oidc_trust_is_scoped(repository: str | None = None) -> Rule:
    """Roles trusted by GitHub's OIDC provider name the audience and exact subjects of one repo."""

    def rule(resource_type: str, props: Mapping[str, Any]) -> list[str]:
        if resource_type != ROLE:
            return []
        problems = []
        for statement in _statements(props.get("assumeRolePolicy")):
            federated = _as_list((statement.get("Principal") or {}).get("Federated"))
            if not any(isinstance(f, str) and GITHUB_OIDC_HOST in f for f in federated):
                continue
            condition = statement.get("Condition") or {}
            equals = condition.get("StringEquals") or {}
            like = condition.get("StringLike") or {}
            if equals.get(f"{GITHUB_OIDC_HOST}:aud") != "sts.amazonaws.com":
                problems.append("GitHub trust does not require the sts.amazonaws.com audience")
            subs = _as_list(equals.get(f"{GITHUB_OIDC_HOST}:sub")) + _as_list(
                like.get(f"{GITHUB_OIDC_HOST}:sub")
            )
            if not subs:
                problems.append("GitHub trust names no subject: any repository could assume it")
            for sub in subs:
                repo = sub.split(":")[1] if sub.startswith("repo:") and sub.count(":") >= 2 else ""
                if not repo or "*" in repo or "?" in repo:
                    problems.append(
                        f"GitHub trust subject {sub!r} is not limited to one repository"
                    )
                elif repository and repo != repository:
                    problems.append(f"GitHub trust subject {sub!r} is not for {repository}")
                elif "*" in sub:
                    problems.append(f"GitHub trust subject {sub!r} has a wildcard ref")
        return problems

    return rule


def tagged(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Taggable AWS resources carry model, environment and owner tags; Kubernetes objects the
    same as labels (model, environment) and an annotation (owner, which labels cannot hold)."""
    if resource_type.startswith("kubernetes:"):
        metadata = props.get("metadata") or {}
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        missing = [k for k in K8S_LABELS if not labels.get(k)]
        if not annotations.get(K8S_OWNER_ANNOTATION):
            missing.append(K8S_OWNER_ANNOTATION)
        return [f"missing {', '.join(missing)}"] if missing else []
    if not taggable(resource_type):
        return []
    tags = props.get("tags")
    if _unknown(tags):
        return []
    tags = tags or {}
    missing = [k for k in REQUIRED_TAGS if not tags.get(k)]
    return [f"missing tags {', '.join(missing)}"] if missing else []


def encrypted_at_rest(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Keys rotate; topics, secrets, image repositories and buckets' data use KMS."""
    if resource_type == "aws:kms/key:Key" and not props.get("enableKeyRotation"):
        return ["KMS key rotation is off"]
    if resource_type == "aws:sns/topic:Topic" and not props.get("kmsMasterKeyId"):
        return ["SNS topic is not encrypted (kmsMasterKeyId)"]
    if resource_type == "aws:secretsmanager/secret:Secret" and not props.get("kmsKeyId"):
        return ["secret is encrypted with the AWS-managed key, not the stack's key"]
    if resource_type == "aws:ecr/repository:Repository":
        problems = []
        if props.get("imageTagMutability") != "IMMUTABLE":
            problems.append("image tags are mutable")
        if not (props.get("imageScanningConfiguration") or {}).get("scanOnPush"):
            problems.append("images are not scanned on push")
        return problems
    if resource_type == BUCKET and props.get("acl") in ("public-read", "public-read-write"):
        return [f"bucket ACL is {props['acl']}"]
    return []


# Where each kind that runs the serving image keeps its pod spec (every Kubernetes flavour).
POD_SPECS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:argoproj.io/v1alpha1:Rollout": ("spec", "template", "spec"),
    "kubernetes:serving.kserve.io/v1beta1:InferenceService": ("spec", "predictor"),
}


def pods_are_locked_down(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Pods run non-root, read-only, without privilege escalation, with probes and resources."""
    path = POD_SPECS.get(resource_type)
    if path is None:
        return []
    pod: Any = props
    for key in path:
        pod = (pod or {}).get(key) or {}
    problems = []
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    pod_non_root = (pod.get("securityContext") or {}).get("runAsNonRoot")
    # KServe (Knative) takes the container-level field; either level satisfies the API server.
    if not pod_non_root and not all(
        (c.get("securityContext") or {}).get("runAsNonRoot") for c in containers or [{}]
    ):
        problems.append("pod securityContext.runAsNonRoot is not true")
    for container in containers:
        name = container.get("name", "?")
        security = container.get("securityContext") or {}
        if not security.get("readOnlyRootFilesystem"):
            problems.append(f"container {name}: root filesystem is writable")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name}: privilege escalation is allowed")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            problems.append(f"container {name}: capabilities are not dropped")
        if not (container.get("resources") or {}).get("requests"):
            problems.append(f"container {name}: no resource requests")
    for container in pod.get("containers") or []:
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container:
                problems.append(f"container {container.get('name', '?')}: no {probe}")
    return problems


RESOURCE_RULES: dict[str, Rule] = {
    "endpoint-captures-data": endpoint_captures_data,
    "endpoint-rolls-back": endpoint_rolls_back,
    "names-fit": names_fit,
    "no-volume-key-on-instance-storage": no_volume_key_on_instance_storage,
    "rollout-fits-the-deploy": rollout_fits_the_deploy,
    "no-admin-iam-statements": no_admin_statements,
    "no-service-wildcards": no_service_wildcards,
    "workload-roles-carry-a-boundary": workload_roles_carry_a_boundary,
    "github-oidc-trust-scoped": oidc_trust_is_scoped(),
    "resources-tagged": tagged,
    "encrypted-at-rest": encrypted_at_rest,
    "pods-locked-down": pods_are_locked_down,
}


# --- stack rules: a bucket's protection lives in resources of its own -----------------------


def buckets_are_private_and_encrypted(resources: Iterable[Resource]) -> list[str]:
    """Every bucket has all public access blocked, ACLs off, default encryption, and a policy
    that refuses plain HTTP and allows no anonymous principal."""
    resources = list(resources)
    buckets = [r for r in resources if r.type == BUCKET]

    def attached(kind: str, bucket: Resource) -> list[Resource]:
        return [r for r in resources if r.type == kind and bucket.name in r.refs.get("bucket", [])]

    problems = []
    for bucket in buckets:
        blocks = attached(PUBLIC_ACCESS_BLOCK, bucket)
        flags = (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
        if not any(all(b.props.get(f) is True for f in flags) for b in blocks):
            problems.append(f"bucket {bucket.name}: public access is not fully blocked")
        if not attached(ENCRYPTION, bucket):
            problems.append(f"bucket {bucket.name}: no default encryption")
        owners = attached(OWNERSHIP, bucket)
        if not any(
            (o.props.get("rule") or {}).get("objectOwnership") == "BucketOwnerEnforced"
            for o in owners
        ):
            problems.append(f"bucket {bucket.name}: ACLs are not disabled (BucketOwnerEnforced)")
        policies = attached(BUCKET_POLICY, bucket)
        statements = [s for p in policies for s in _statements(p.props.get("policy"))]
        if not any(_denies_plain_http(s) for s in statements):
            problems.append(f"bucket {bucket.name}: policy does not deny non-TLS requests")
        for s in statements:
            if s.get("Effect") == "Allow" and s.get("Principal") in ("*", {"AWS": "*"}):
                problems.append(f"bucket {bucket.name}: policy allows anonymous access")
    return problems


def traffic_shifting_has_instances(resources: Iterable[Resource]) -> list[str]:
    """Canary and linear updates run only on endpoints whose configuration has two instances
    or more: SageMaker shifts traffic by instance."""
    resources = list(resources)
    problems = []
    for endpoint in (r for r in resources if r.type == ENDPOINT):
        policy = (endpoint.props.get("deploymentConfig") or {}).get("blueGreenUpdatePolicy") or {}
        routing = (policy.get("trafficRoutingConfiguration") or {}).get("type")
        if routing not in ("CANARY", "LINEAR"):
            continue
        configs = endpoint.refs.get("endpointConfigName", [])
        for config in (r for r in resources if r.type == ENDPOINT_CONFIG and r.name in configs):
            for variant in config.props.get("productionVariants") or []:
                count = variant.get("initialInstanceCount") if isinstance(variant, Mapping) else 0
                if isinstance(count, int | float) and count < MIN_SHIFTING_INSTANCES:
                    problems.append(
                        f"endpoint {endpoint.name}: {routing} traffic shifting on "
                        f"{int(count)} instance(s) of {config.name}; it needs "
                        f"{MIN_SHIFTING_INSTANCES} or more"
                    )
    return problems


STACK_RULES: dict[str, Callable[[Iterable[Resource]], list[str]]] = {
    "buckets-private-and-encrypted": buckets_are_private_and_encrypted,
    "traffic-shifting-has-instances": traffic_shifting_has_instances,
}


# --- helpers --------------------------------------------------------------------------------


@cache
def taggable(resource_type: str) -> bool:
    """Whether the pulumi-aws resource behind a type token has a ``tags`` input."""
    if not resource_type.startswith("aws:"):
        return False
    try:
        _, module_part, class_name = resource_type.split(":")
        module = module_part.split("/")[0]
        package = importlib.import_module(
            "pulumi_aws" if module == "index" else f"pulumi_aws.{module}"
        )
        cls = getattr(package, class_name)
    except (ValueError, ImportError, AttributeError):
        return False
    return isinstance(getattr(cls, "tags", None), property)


def _statements(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    if not isinstance(document, Mapping):
        return []
    statements = document.get("Statement", [])
    return [s for s in _as_list(statements) if isinstance(s, Mapping)]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _denies_plain_http(statement: Mapping[str, Any]) -> bool:
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    return statement.get("Effect") == "Deny" and condition.get("aws:SecureTransport") in (
        "false",
        False,
    )


def _processing_request(props: Mapping[str, Any]) -> dict[str, Any]:
    """The CreateProcessingJob request a schedule sends, when its input is known and is one."""
    target = props.get("target") or {}
    raw = target.get("input") if isinstance(target, Mapping) else None
    if not isinstance(raw, str) or not str(target.get("arn", "")).endswith("createProcessingJob"):
        return {}
    try:
        request = json.loads(raw)
    except ValueError:
        return {}
    return request if isinstance(request, dict) else {}


def _unknown(value: Any) -> bool:
    """A value not computed yet at preview (pulumi-policy usually skips the rule itself)."""
    return type(value).__name__ == "Unknown"
