"""The Argo CD and Flux examples (docs/examples/gitops/) validate against their CRD models and
point at the folder `mlops render kubernetes` writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pulumi_mocks import REPO_ROOT
from test_infra_kubernetes import validate_crds

pytestmark = pytest.mark.infra

EXAMPLES = REPO_ROOT / "docs" / "examples" / "gitops"
RENDERED = "deploy/kubernetes/prod"  # what the examples' comments tell `--out` to be


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_example_validates_against_its_crd() -> None:
    manifests = [d for path in sorted(EXAMPLES.glob("*.yaml")) for d in documents(path)]
    assert {m["kind"] for m in manifests} == {"Application", "GitRepository", "Kustomization"}
    result = validate_crds(manifests)
    assert result.returncode == 0, result.stderr


def test_the_crd_validator_refuses_a_misspelt_sync_policy() -> None:
    (application,) = documents(EXAMPLES / "argocd-application.yaml")
    application["spec"]["syncPolicy"]["automated"]["prune"] = "yes"
    result = validate_crds([application])
    assert result.returncode == 1 and "prune" in result.stderr


def test_both_controllers_sync_the_rendered_folder_and_prune() -> None:
    (application,) = documents(EXAMPLES / "argocd-application.yaml")
    assert application["spec"]["source"]["path"] == RENDERED
    assert application["spec"]["syncPolicy"]["automated"]["prune"] is True
    source, kustomization = documents(EXAMPLES / "flux-kustomization.yaml")
    assert kustomization["spec"]["path"] == f"./{RENDERED}"
    assert kustomization["spec"]["prune"] is True
    assert kustomization["spec"]["sourceRef"] == {"kind": source["kind"], "name": "mlops"}
