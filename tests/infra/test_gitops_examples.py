"""The Argo CD and Flux examples (docs/examples/gitops/) validate against their CRD models and
point at the folder `mlops render kubernetes` writes; what that command writes validates too."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pulumi_mocks import KUBERNETES_VERSION, REPO_ROOT
from test_infra_flavours import CUSTOM_APIS, validate_inference_service
from test_infra_kubernetes import validate_crds

from pipelines.gitops.gitops_stacks import rendered_folder
from pipelines.gitops.render import KUSTOMIZATION, render_kubernetes

pytestmark = pytest.mark.infra

EXAMPLES = REPO_ROOT / "docs" / "examples" / "gitops"
# The examples' stack; its folder is the one `mlops render gitops` (the pins pull request) writes.
RENDERED = str(rendered_folder("prod"))


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


def test_what_mlops_render_writes_validates_as_the_cluster_would_read_it(
    repo_factory: Any, tmp_path: Path
) -> None:
    """The rendered files, parsed back from YAML, pass the same validators as Pulumi's objects."""
    repo = repo_factory(
        targets={"penguins": "kubernetes", "seattle_weather": "kubernetes"},
        pins={"prod": {"penguins": ["4", "5"], "seattle_weather": ["2", "3"]}},
    )
    for model, flavor in (("penguins", "rollout"), ("seattle_weather", "kserve")):
        path = repo / "models" / model / "model.yaml"
        data = yaml.safe_load(path.read_text())
        data["deployment"]["kubernetes"] = {"flavor": flavor}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy(REPO_ROOT / "Pulumi.yaml", repo / "Pulumi.yaml")
    files = render_kubernetes(repo, "prod", "registry.example/mlops-serving:abc123")
    manifests = [
        yaml.safe_load(text) for path, text in files.items() if not path.endswith(KUSTOMIZATION)
    ]
    assert {m["kind"] for m in manifests} >= {"Rollout", "AnalysisTemplate", "InferenceService"}
    custom = []
    for manifest in manifests:
        if manifest["kind"] == "InferenceService":
            validate_inference_service(manifest)
        elif manifest["apiVersion"].startswith(CUSTOM_APIS):
            custom.append(manifest)
        else:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    result = validate_crds(custom)
    assert result.returncode == 0, result.stderr
