"""The EKS settings a stack needs before it may run a ``target: kubernetes`` model.

Without them the program would apply Kubernetes objects through whatever kubeconfig the CI
runner happens to have (none, on GitHub's runners) and the pods would get no AWS credentials,
so they could not download the model archive or write captures. The Pulumi program
(``infra/stack.py``) and ``mlops check`` refuse a stack that pins a Kubernetes model without
them, naming the stack file and the key; both read the same rules from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.errors import DefinitionError

# The template's Pulumi project name; `mlops init` renames it, and the stack files' keys with it.
PROJECT_NAMESPACE = "mlops"
# Who applies a stack's Kubernetes workload objects (config kubernetesApply): the Pulumi program,
# or a GitOps controller syncing what `mlops render` committed. The first is the default.
KUBERNETES_APPLIERS = ("pulumi", "gitops")
# EKS cluster names: 1-100 letters, digits, hyphens and underscores, starting alphanumeric.
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
_ISSUER = re.compile(r"^oidc\.eks\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/id/[0-9A-Za-z]+$")


@dataclass(frozen=True)
class ClusterSettings:
    cluster_name: str
    oidc_provider_arn: str
    oidc_issuer: str


def cluster_settings(
    stack_file: Path | str, cluster_name: str, oidc_provider_arn: str, oidc_issuer: str
) -> ClusterSettings:
    """The validated settings, or DefinitionError naming ``stack_file`` and the key."""
    values = {
        "eksClusterName": cluster_name,
        "eksOidcProviderArn": oidc_provider_arn,
        "eksOidcIssuer": oidc_issuer,
    }
    for key, value in values.items():
        if not value:
            raise DefinitionError(
                f"{key} is not set, and this stack pins a model with deployment.target: "
                "kubernetes: the deploy reaches the cluster through eksClusterName and the pods "
                "get AWS credentials (IRSA) through eksOidcProviderArn and eksOidcIssuer "
                "(see docs/infrastructure.md, 'Kubernetes clusters')",
                file=stack_file,
                field=key,
            )
    if not _CLUSTER_NAME.match(cluster_name):
        raise DefinitionError(
            f"{cluster_name!r} is not an EKS cluster name (1-100 letters, digits, '-' or '_')",
            file=stack_file,
            field="eksClusterName",
        )
    issuer = oidc_issuer.removeprefix("https://")
    if not _ISSUER.match(issuer):
        raise DefinitionError(
            f"{oidc_issuer!r} is not an EKS OIDC issuer "
            "(oidc.eks.<region>.amazonaws.com/id/<ID>, from `aws eks describe-cluster`)",
            file=stack_file,
            field="eksOidcIssuer",
        )
    if not re.fullmatch(rf"arn:aws[a-z-]*:iam::\d{{12}}:oidc-provider/{re.escape(issuer)}",
                        oidc_provider_arn):  # fmt: skip
        raise DefinitionError(
            f"{oidc_provider_arn!r} is not the IAM OIDC provider of issuer {issuer} "
            f"(arn:aws:iam::<account>:oidc-provider/{issuer})",
            file=stack_file,
            field="eksOidcProviderArn",
        )
    return ClusterSettings(cluster_name, oidc_provider_arn, issuer)


def stack_values(root: Path, stack: str) -> dict[str, Any]:
    """The stack's own config over Pulumi.yaml's defaults, as `pulumi` merges them.

    The stack's keys are in the project's namespace (``<name>:key``, Pulumi.yaml's ``name``),
    which is the team's name, not ``mlops``, in an adopted repository. A checkout without
    Pulumi.yaml (a team that deploys no infrastructure from it, or a copy made for a test) has
    no defaults; the callers' own defaults then apply.
    """
    project_file = root / "Pulumi.yaml"
    project = (
        yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
        if project_file.is_file()
        else {}
    )
    values = {
        key: spec.get("default")
        for key, spec in (project.get("config") or {}).items()
        if isinstance(spec, dict)
    }
    path = root / f"Pulumi.{stack}.yaml"
    if path.is_file():
        own = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}
        prefix = f"{project.get('name') or PROJECT_NAMESPACE}:"
        values.update({k.removeprefix(prefix): v for k, v in own.items() if k.startswith(prefix)})
    return values


def check_stack_cluster_settings(root: Path, stack: str) -> ClusterSettings:
    """For ``mlops check``: the settings in ``Pulumi.<stack>.yaml`` (merged over defaults)."""
    values = stack_values(root, stack)
    return cluster_settings(
        root / f"Pulumi.{stack}.yaml",
        str(values.get("eksClusterName") or ""),
        str(values.get("eksOidcProviderArn") or ""),
        str(values.get("eksOidcIssuer") or ""),
    )


def kubernetes_apply(root: Path, stack: str) -> str:
    """The stack's ``kubernetesApply`` (``pulumi`` unless set), or DefinitionError naming it."""
    value = stack_values(root, stack).get("kubernetesApply", KUBERNETES_APPLIERS[0])
    if value not in KUBERNETES_APPLIERS:
        raise DefinitionError(
            f"{value!r} is not one of {', '.join(KUBERNETES_APPLIERS)}",
            file=f"Pulumi.{stack}.yaml",
            field="kubernetesApply",
        )
    return str(value)
