"""How a stack reaches its EKS cluster, and what its CI deploy role may do there.

The program never relies on an ambient kubeconfig (GitHub's runners have none): its Kubernetes
provider is built from the cluster's endpoint and certificate authority, and authenticates with
``aws eks get-token`` as whatever AWS identity runs ``pulumi up`` (the deploy role in CI).

That role gets into the cluster through an EKS access entry (EKS's own API for cluster access,
replacing the ``aws-auth`` ConfigMap; the cluster's authentication mode must include ``API``):
``AmazonEKSAdminPolicy`` scoped to the namespaces of the stack's models, plus a Kubernetes
group whose ClusterRole may manage namespaces, which the namespace-scoped policy cannot. Nothing
grants it RBAC objects at cluster scope, so it cannot widen its own access. The entry is part of
CI access: created by the administrator's bootstrap run (with the administrator's cluster
access), like the roles themselves.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from pipelines.core.cluster_settings import ClusterSettings
from pipelines.core.conventions import SHARED, slug

ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy"


def deployers_group(environment: str) -> str:
    return f"mlops:{slug(environment)}:deployers"


def kubeconfig(cluster: str, endpoint: str, certificate: str, region: str) -> str:
    """A kubeconfig whose user runs ``aws eks get-token`` (the AWS CLI every runner has)."""
    command = ["eks", "get-token", "--cluster-name", cluster]
    if region:
        command += ["--region", region]
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster,
                    "cluster": {"server": endpoint, "certificate-authority-data": certificate},
                }
            ],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
            "current-context": cluster,
            "users": [
                {
                    "name": cluster,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": command,
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        }
    )


def eks_provider(environment: str, cluster: ClusterSettings, region: str) -> k8s.Provider:
    found = aws.eks.get_cluster_output(name=cluster.cluster_name)
    return k8s.Provider(
        f"mlops-{slug(environment)}-cluster",
        kubeconfig=pulumi.Output.all(found.endpoint, found.certificate_authorities).apply(
            lambda a: kubeconfig(cluster.cluster_name, a[0], a[1][0]["data"], region)
        ),
    )


class DeployerAccess(pulumi.ComponentResource):
    """The deploy role's access entry, its namespace-scoped admin policy, and namespace rights."""

    def __init__(
        self,
        name: str,
        *,
        environment: str,
        cluster: ClusterSettings,
        deploy_role_arn: pulumi.Input[str],
        namespaces: list[str],
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mlops:index:DeployerAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = deployers_group(environment)
        role_name = f"mlops-{slug(environment)}-namespace-manager"
        meta: k8s.meta.v1.ObjectMetaArgsDict = {
            "name": role_name,
            "labels": {
                "app.kubernetes.io/part-of": "mlops",
                "app.kubernetes.io/managed-by": "pulumi",
                "mlops/model": SHARED,
                "mlops/environment": slug(environment),
            },
            "annotations": {"mlops/owner": tags.get("owner", "")},
        }
        entry = aws.eks.AccessEntry(
            f"{name}-entry",
            cluster_name=cluster.cluster_name,
            principal_arn=deploy_role_arn,
            kubernetes_groups=[group],
            type="STANDARD",
            tags=tags,
            opts=child,
        )
        aws.eks.AccessPolicyAssociation(
            f"{name}-namespaces",
            cluster_name=cluster.cluster_name,
            principal_arn=entry.principal_arn,
            policy_arn=ADMIN_POLICY,
            access_scope={"type": "namespace", "namespaces": sorted(namespaces)},
            opts=child,
        )
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-namespace-manager",
            metadata=meta,
            rules=[
                {
                    "api_groups": [""],
                    "resources": ["namespaces"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                }
            ],
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-namespace-manager-binding",
            metadata=meta,
            role_ref={
                "api_group": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role_name,
            },
            subjects=[{"kind": "Group", "name": group, "api_group": "rbac.authorization.k8s.io"}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role]),
        )
        self.register_outputs({})
