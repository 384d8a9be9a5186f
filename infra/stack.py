"""One stack of the platform: the components wired together from the stack's settings.

``__main__.py`` reads Pulumi config into ``StackSettings`` and calls ``build``; tests call the
same function (or run ``__main__`` itself) under Pulumi's mock runtime. Which models run and at
which version comes from git (``infra.model_plan``), never from config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from infra.components.artifact_store import ArtifactStore, ArtifactStoreArgs
from infra.components.budget import Budget, BudgetArgs
from infra.components.ci_access import CiAccess, CiAccessArgs
from infra.components.drift_to_retrain import DriftToRetrain, DriftToRetrainArgs
from infra.components.eks_access import DeployerAccess, eks_provider
from infra.components.kubernetes_endpoint import KubernetesEndpoint, KubernetesEndpointArgs
from infra.components.kubernetes_monitor import KubernetesMonitor, KubernetesMonitorArgs
from infra.components.monitoring import (
    DEFAULT_LATENCY_MS,
    MonitoredModel,
    Monitoring,
    MonitoringArgs,
    alarm_names,
    read_monitoring_files,
)
from infra.components.registries import Registries, RegistriesArgs, image_tag
from infra.components.roles import WorkloadBoundary
from infra.components.sagemaker_endpoint import SagemakerEndpoint, SagemakerEndpointArgs
from infra.components.scheduled_monitor import (
    MAX_INSTANCE_COUNT,
    ScheduledMonitor,
    ScheduledMonitorArgs,
)
from infra.components.state_backend import state_backend
from infra.model_plan import ModelPlan, plan, rollout_steps
from pipelines.core.alert_rules import rollback_expressions
from pipelines.core.cluster_settings import KUBERNETES_APPLIERS, cluster_settings
from pipelines.core.conventions import SHARED, endpoint_name, slug, tags
from pipelines.core.datasets import s3_object_arns
from pipelines.core.definitions import RolloutFlavor
from pipelines.core.errors import DefinitionError
from pipelines.core.pins import list_environments, load_environment

# The endpoint's p99 alarm fires at this multiple of the model's offline latency gate.
LATENCY_ALARM_FACTOR = 2.0


@dataclass
class StackSettings:
    """Everything a stack is configured with (declared, with defaults, in Pulumi.yaml)."""

    stack: str
    owner: str
    github_repository: str
    legacy_github_token: bool = False  # `githubToken` still in the stack's config
    image: str = ""
    deploy_environments: list[str] = field(default_factory=list)
    registry_environments: list[str] = field(default_factory=list)
    deploy_branches: list[str] = field(default_factory=list)
    publish_branches: list[str] = field(default_factory=lambda: ["main"])
    owns_account_resources: bool = True
    image_repository: str = "mlops-serving"
    protected_image_tags: list[str] = field(default_factory=list)
    alert_emails: list[str] = field(default_factory=list)
    budget_monthly_usd: int = 200
    protect_resources: bool = False
    scaled_down: bool = False
    scaled_down_instance_type: str = "ml.t2.medium"
    mlflow_tracking_server: bool = True
    mlflow_server_size: str = "Small"
    noncurrent_version_days: int = 30
    capture_retention_days: int = 90
    rollouts: list[str] = field(default_factory=list)
    kubernetes_monitoring_namespace: str = "monitoring"
    prometheus_release: str = "kube-prometheus-stack"
    # Who applies the endpoints' Kubernetes workload objects: this program, or a GitOps
    # controller syncing `mlops render kubernetes` output (docs/infrastructure.md).
    kubernetes_apply: str = "pulumi"
    eks_cluster_name: str = ""
    eks_oidc_provider_arn: str = ""
    eks_oidc_issuer: str = ""
    model_monitor_instance_type: str = "ml.m5.large"
    model_monitor_instance_count: int = 1
    region: str = ""
    state_bucket: str = ""
    secrets_key_arn: str = ""
    project: str = "mlops"
    image_account: str = ""
    image_pull_accounts: list[str] = field(default_factory=list)


def _check_image_accounts(settings: StackSettings) -> None:
    """An account per stack: one of them holds the image repository, the others pull from it."""
    stack_file = f"Pulumi.{settings.stack}.yaml"
    for key, accounts in (
        ("imageAccount", [settings.image_account] if settings.image_account else []),
        ("imagePullAccounts", settings.image_pull_accounts),
    ):
        bad = [a for a in accounts if not (isinstance(a, str) and re.fullmatch(r"\d{12}", a))]
        if bad:
            raise DefinitionError(
                f"{stack_file}: {key} holds {bad[0]!r}, not a 12-digit AWS account id "
                "(quote it in YAML, or a leading zero is lost)",
                field=key,
            )
    if settings.image_account and settings.image_pull_accounts:
        raise DefinitionError(
            f"{stack_file}: imagePullAccounts is for the stack that owns the image repository, "
            f"but this stack pulls from account {settings.image_account} (imageAccount)",
            field="imagePullAccounts",
        )
    if settings.image_account and not settings.region:
        raise DefinitionError(
            f"{stack_file}: imageAccount needs aws:region, the repository's region",
            field="aws:region",
        )


def _check_monitor_instance_count(settings: StackSettings) -> None:
    count = settings.model_monitor_instance_count
    # bool is an int to Python, and YAML's `true` is no count.
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not 1 <= count <= MAX_INSTANCE_COUNT
    ):
        raise DefinitionError(
            f"Pulumi.{settings.stack}.yaml: modelMonitorInstanceCount is {count!r}; it must be a "
            f"whole number from 1 to {MAX_INSTANCE_COUNT}",
            field="modelMonitorInstanceCount",
        )


# An ECR image tag (CreateRepository/PutImage: 1-128 of these characters, no wildcard).
_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def protected_image_tags(settings: StackSettings) -> list[str]:
    """The tags the repository's lifecycle policy must keep: this stack's and the listed ones.

    The repository is shared by the stacks of an account and only its owner declares the
    lifecycle policy, so the owner is told the tags the other stacks run
    (``protectedImageTags``); its own image is always kept.
    """
    for listed in settings.protected_image_tags:
        if not isinstance(listed, str) or not _IMAGE_TAG.fullmatch(listed):
            raise DefinitionError(
                f"Pulumi.{settings.stack}.yaml: protectedImageTags entry {listed!r} is not an "
                "ECR image tag (1-128 letters, digits, '.', '_' or '-'; the image workflow "
                "tags by commit SHA)",
                field="protectedImageTags",
            )
    own = image_tag(settings.image) if settings.image else None
    return sorted({*settings.protected_image_tags, *([own] if own else [])})


def build(settings: StackSettings, repo_root: Path) -> dict[str, object]:
    """Declare every resource of the stack; returns the stack outputs."""
    env = settings.stack
    environment = load_environment(repo_root / "environments", env)
    if settings.deploy_branches:
        # A branch subject lets any job on that branch deploy, with no environment rules or
        # reviewers in between: deploy trust is the stack's GitHub environments only.
        approval = " and requires approval" if environment.requires_approval else ""
        raise DefinitionError(
            f"Pulumi.{env}.yaml: deployBranches ({', '.join(settings.deploy_branches)}) is no "
            f"longer allowed: the deploy role of {env!r}{approval} trusts only its GitHub "
            "environments (deployEnvironments); remove the key",
            field="deployBranches",
        )
    if settings.legacy_github_token:
        raise DefinitionError(
            f"Pulumi.{env}.yaml: githubToken is no longer read: a secret in Pulumi config is "
            "readable by every pull-request preview of the stack. Remove it (`pulumi config rm "
            f"githubToken --stack {env}`) and set the token on the EventBridge connection with "
            f"`mlops retrain-token --env {env}`",
            field="githubToken",
        )
    _check_monitor_instance_count(settings)
    state = state_backend(
        settings.state_bucket, settings.secrets_key_arn, project=settings.project, stack=env
    )
    _check_image_accounts(settings)
    if settings.kubernetes_apply not in KUBERNETES_APPLIERS:
        raise DefinitionError(
            f"Pulumi.{env}.yaml: kubernetesApply is {settings.kubernetes_apply!r}; choose one of "
            + ", ".join(KUBERNETES_APPLIERS),
            field="kubernetesApply",
        )
    plans = plan(repo_root, env, settings.rollouts)
    shared_tags = tags(SHARED, env, settings.owner)
    model_tags = {p.name: tags(p.name, env, p.definition.owner) for p in plans}
    protect = settings.protect_resources
    protected_tags = protected_image_tags(settings)

    boundary = WorkloadBoundary(
        f"mlops-{slug(env)}-boundary", env, shared_tags, image_account=settings.image_account
    )
    store = ArtifactStore(
        f"mlops-{slug(env)}",
        ArtifactStoreArgs(
            tags=shared_tags,
            noncurrent_version_days=settings.noncurrent_version_days,
            capture_retention_days=settings.capture_retention_days,
            protect=protect,
        ),
    )
    registries = Registries(
        f"mlops-{slug(env)}-registries",
        RegistriesArgs(
            environment=env,
            tags=shared_tags,
            bucket_name=store.bucket_name,
            bucket_arn=store.bucket_arn,
            key_arn=store.key_arn,
            models=model_tags,
            mlflow=settings.mlflow_tracking_server,
            mlflow_size=settings.mlflow_server_size,
            protect=protect,
            repository_name=settings.image_repository,
            create_repository=settings.owns_account_resources and not settings.image_account,
            image_account=settings.image_account,
            region=settings.region,
            pull_accounts=settings.image_pull_accounts,
            protected_tags=protected_tags,
            boundary_arn=boundary.arn,
        ),
    )

    deployable = [p for p in plans if p.has_endpoint]
    if deployable and not settings.image:
        pulumi.log.warn(
            "config `image` is not set, so no endpoint is deployed for "
            + ", ".join(p.name for p in deployable)
            + "; the image workflow sets it to registry/repository:commit"
        )
        deployable = []
    on_sagemaker = [p for p in deployable if p.target == "sagemaker"]
    on_kubernetes = [p for p in deployable if p.target == "kubernetes"]
    cluster = (
        cluster_settings(
            f"Pulumi.{env}.yaml",
            settings.eks_cluster_name,
            settings.eks_oidc_provider_arn,
            settings.eks_oidc_issuer,
        )
        if on_kubernetes
        else None
    )
    kubernetes = (
        pulumi.ResourceOptions(
            providers={"kubernetes": eks_provider(env, cluster, settings.region)}
        )
        if cluster
        else None
    )

    alert_rules, dashboards = read_monitoring_files(repo_root / "monitoring")
    monitoring = Monitoring(
        f"mlops-{slug(env)}-monitoring",
        MonitoringArgs(
            environment=env,
            tags=shared_tags,
            models=[
                MonitoredModel(
                    model=p.name,
                    tags=model_tags[p.name],
                    endpoint_name=endpoint_name(p.name, env) if p in on_sagemaker else None,
                    latency_p99_ms=_latency_threshold(p),
                )
                for p in plans
            ],
            alert_emails=settings.alert_emails,
            kubernetes_namespace=settings.kubernetes_monitoring_namespace
            if on_kubernetes
            else None,
            alert_rules=alert_rules,
            dashboards=dashboards,
            prometheus_release=settings.prometheus_release,
        ),
        opts=kubernetes,
    )

    endpoints: dict[str, pulumi.Output[str] | str] = {}
    # What `mlops sagemaker verify-endpoints` compares with the configuration each endpoint runs.
    endpoint_configs: dict[str, pulumi.Output[str]] = {}
    for p in on_sagemaker:
        assert p.version is not None
        name = endpoint_name(p.name, env)
        endpoint = SagemakerEndpoint(
            name,
            SagemakerEndpointArgs(
                model=p.name,
                version=p.version,
                environment=env,
                endpoint_name=name,
                deployment=p.deployment,
                image_uri=settings.image,
                repository_arn=registries.repository_arn,
                bucket_name=store.bucket_name,
                bucket_arn=store.bucket_arn,
                key_arn=store.key_arn,
                rollback_alarm_names=alarm_names(name),
                rollback_alarms=list(monitoring.rollback_alarms[p.name]),
                tags=model_tags[p.name],
                capture_percent=p.definition.monitoring.capture_percent,
                scaled_down=settings.scaled_down,
                scaled_down_instance_type=settings.scaled_down_instance_type,
                boundary_arn=boundary.arn,
            ),
        )
        ScheduledMonitor(
            f"{name}-monitor",
            ScheduledMonitorArgs(
                model=p.name,
                version=p.version,
                environment=env,
                endpoint_name=endpoint.endpoint_name,
                schedule=p.definition.monitoring.schedule,
                image_uri=settings.image,
                repository_arn=registries.repository_arn,
                bucket_name=store.bucket_name,
                bucket_arn=store.bucket_arn,
                key_arn=store.key_arn,
                tags=model_tags[p.name],
                instance_type=settings.model_monitor_instance_type,
                instance_count=settings.model_monitor_instance_count,
                boundary_arn=boundary.arn,
            ),
        )
        endpoints[p.name] = endpoint.endpoint_name
        endpoint_configs[p.name] = endpoint.endpoint_config.name
    for p in on_kubernetes:
        assert p.version is not None
        name = endpoint_name(p.name, env)
        steps = rollout_steps(p.deployment)
        k8s_endpoint = KubernetesEndpoint(
            name,
            KubernetesEndpointArgs(
                model=p.name,
                version=p.version,
                environment=env,
                owner=p.definition.owner,
                endpoint_name=name,
                deployment=p.deployment,
                image=settings.image,
                bucket_name=store.bucket_name,
                bucket_arn=store.bucket_arn,
                key_arn=store.key_arn,
                tags=model_tags[p.name],
                capture_percent=p.definition.monitoring.capture_percent,
                previous_version=p.previous_version,
                canary_weight=p.canary_weight,
                steps=tuple(steps),
                bake_minutes=p.deployment.strategy.bake_minutes,
                monitoring_namespace=settings.kubernetes_monitoring_namespace,
                oidc_provider_arn=cluster.oidc_provider_arn if cluster else None,
                oidc_issuer=cluster.oidc_issuer if cluster else None,
                region=settings.region or None,
                boundary_arn=boundary.arn,
                prometheus_release=settings.prometheus_release,
                rollback_expressions=_rollback_expressions(p, alert_rules),
                apply_workloads=settings.kubernetes_apply == "pulumi",
            ),
            opts=kubernetes,
        )
        endpoints[p.name] = pulumi.Output.concat(name, "/", k8s_endpoint.service_name)
        if cluster and kubernetes:
            KubernetesMonitor(
                f"{name}-monitor",
                KubernetesMonitorArgs(
                    model=p.name,
                    version=p.version,
                    environment=env,
                    owner=p.definition.owner,
                    namespace=name,
                    endpoint_name=name,
                    schedule=p.definition.monitoring.schedule,
                    image=settings.image,
                    bucket_name=store.bucket_name,
                    bucket_arn=store.bucket_arn,
                    key_arn=store.key_arn,
                    tags=model_tags[p.name],
                    oidc_provider_arn=cluster.oidc_provider_arn,
                    oidc_issuer=cluster.oidc_issuer,
                    region=settings.region or None,
                    boundary_arn=boundary.arn,
                    pod_count=settings.model_monitor_instance_count,
                ),
                opts=pulumi.ResourceOptions.merge(
                    kubernetes, pulumi.ResourceOptions(depends_on=[k8s_endpoint.namespace])
                ),
            )

    retrain = [p for p in plans if p.definition.retraining.on_drift]
    dispatch_connection: pulumi.Output[str] | None = None
    if retrain:
        dispatch_connection = DriftToRetrain(
            f"mlops-{slug(env)}-retrain",
            DriftToRetrainArgs(
                repository=settings.github_repository,
                environment=env,
                drift_alarm_arns={p.name: monitoring.drift_alarms[p.name].arn for p in retrain},
                key_arn=store.key_arn,
                tags=shared_tags,
                boundary_arn=boundary.arn,
                protect=protect,
            ),
        ).connection_name

    ci = CiAccess(
        f"mlops-{slug(env)}-ci",
        CiAccessArgs(
            repository=settings.github_repository,
            environment=env,
            tags=shared_tags,
            bucket_arn=store.bucket_arn,
            key_arn=store.key_arn,
            repository_arn=registries.repository_arn,
            deploy_environments=settings.deploy_environments or [env],
            publish_branches=settings.publish_branches,
            create_provider=settings.owns_account_resources,
            tracking_server_arn=registries.tracking_uri,
            # The promotion jobs run in the target's GitHub environment: by default every
            # environment of the promotion chain may register in this stack's server.
            registry_environments=settings.registry_environments
            or list_environments(repo_root / "environments"),
            image_repository=settings.image_repository,
            state=state,
            cluster_name=cluster.cluster_name if cluster else None,
            dataset_objects=s3_object_arns(repo_root / "data"),
        ),
    )
    if cluster:
        DeployerAccess(
            f"mlops-{slug(env)}-cluster-access",
            environment=env,
            cluster=cluster,
            deploy_role_arn=ci.roles["deploy"].arn,
            namespaces=[
                *(endpoint_name(p.name, env) for p in on_kubernetes),
                settings.kubernetes_monitoring_namespace,
            ],
            tags=shared_tags,
            opts=kubernetes,
        )
    Budget(
        f"mlops-{slug(env)}-budget",
        BudgetArgs(
            environment=env,
            monthly_limit_usd=settings.budget_monthly_usd,
            tags=shared_tags,
            emails=settings.alert_emails,
            topic_arn=monitoring.topic_arn,
        ),
    )

    return {
        "bucket": store.bucket_name,
        "image_repository": registries.repository_url,
        # The image this update applied: the next `up` that built none re-applies it
        # (pipelines/gitops/deploy_image.py), since the stack file in git never holds one.
        "image": settings.image,
        "tracking_uri": registries.tracking_uri,
        "package_groups": {
            m: g.model_package_group_name for m, g in registries.package_groups.items()
        },
        "endpoints": endpoints,
        "endpoint_configs": endpoint_configs,
        "versions": {p.name: p.version for p in plans},
        "alerts_topic": monitoring.topic_arn,
        "ci_roles": ci.role_arns,
        # Set its token once, and on rotation: `mlops retrain-token --env <stack>`.
        "dispatch_connection": dispatch_connection,
    }


def _rollback_expressions(p: ModelPlan, alert_rules: dict[str, str]) -> dict[str, str]:
    """The alert expressions a ``rollout`` model's analysis runs (none for other flavours)."""
    if not isinstance(p.deployment.kubernetes, RolloutFlavor):
        return {}
    try:
        return rollback_expressions(alert_rules)
    except ValueError as exc:
        raise DefinitionError(
            str(exc), file=f"models/{p.name}/model.yaml", field="deployment.kubernetes.flavor"
        ) from None


def _latency_threshold(p: ModelPlan) -> float:
    gate = p.definition.gates.latency
    return gate.p99_ms * LATENCY_ALARM_FACTOR if gate else DEFAULT_LATENCY_MS
