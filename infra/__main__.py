"""The Pulumi program (``pulumi up`` at the repository root): stack config in, components out.

Config is read here and nowhere else; every key is declared, with its description and default,
in ``Pulumi.yaml``. What runs where comes from ``models/`` and ``environments/<stack>.yaml``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pulumi

REPO_ROOT = Path(__file__).resolve().parents[1]
# Pulumi runs this folder as a script; the components import as the `infra` package.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from infra.stack import StackSettings, build  # noqa: E402


def settings_from_config() -> StackSettings:
    config = pulumi.Config()
    return StackSettings(
        stack=pulumi.get_stack(),
        owner=config.require("owner"),
        github_repository=config.require("githubRepository"),
        legacy_github_token=config.get_secret("githubToken") is not None,
        image=config.get("image") or "",
        deploy_environments=config.get_object("deployEnvironments") or [],
        registry_environments=config.get_object("registryEnvironments") or [],
        deploy_branches=config.get_object("deployBranches") or [],
        publish_branches=config.get_object("publishBranches") or ["main"],
        owns_account_resources=config.require_bool("ownsAccountResources"),
        image_repository=config.require("imageRepository"),
        protected_image_tags=config.get_object("protectedImageTags") or [],
        alert_emails=config.get_object("alertEmails") or [],
        budget_monthly_usd=config.require_int("budgetMonthlyUsd"),
        protect_resources=config.require_bool("protectResources"),
        scaled_down=config.require_bool("scaledDown"),
        scaled_down_instance_type=config.require("scaledDownInstanceType"),
        mlflow_tracking_server=config.require_bool("mlflowTrackingServer"),
        mlflow_server_size=config.require("mlflowServerSize"),
        noncurrent_version_days=config.require_int("noncurrentVersionDays"),
        capture_retention_days=config.require_int("captureRetentionDays"),
        rollouts=config.get_object("rollouts") or [],
        kubernetes_monitoring_namespace=config.require("kubernetesMonitoringNamespace"),
        prometheus_release=config.require("prometheusRelease"),
        kubernetes_apply=config.require("kubernetesApply"),
        eks_cluster_name=config.get("eksClusterName") or "",
        eks_oidc_provider_arn=config.get("eksOidcProviderArn") or "",
        eks_oidc_issuer=config.get("eksOidcIssuer") or "",
        model_monitor_instance_type=config.require("modelMonitorInstanceType"),
        model_monitor_instance_count=config.require_int("modelMonitorInstanceCount"),
        region=pulumi.Config("aws").get("region") or "",
        state_bucket=config.get("stateBucket") or "",
        secrets_key_arn=config.get("secretsKeyArn") or "",
        project=pulumi.get_project(),
        image_account=config.get("imageAccount") or "",
        image_pull_accounts=config.get_object("imagePullAccounts") or [],
    )


# The checkout whose models and pins the stack follows: this one, or MLOPS_ROOT as for the CLI.
repo_root = Path(os.environ.get("MLOPS_ROOT") or REPO_ROOT)
for key, value in build(settings_from_config(), repo_root).items():
    pulumi.export(key, value)
