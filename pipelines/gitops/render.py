"""``mlops render kubernetes``: an environment's Kubernetes workload manifests, as files in git.

For clusters run by a GitOps controller (Argo CD, Flux; stack config ``kubernetesApply: gitops``)
the pipeline commits manifests rather than calling the cluster. They come from the same plan the
Pulumi program follows (``pipelines.core.model_plan``: models, pins, the stack's ``rollouts``) and
the same builders (``pipelines.core.kubernetes_manifests``), with no cluster and no Pulumi engine.

Layout: one folder per model (``<out>/<model>/``) holding one file per object
(``<kind>-<name>.yaml``) and a ``kustomization.yaml`` listing them, and a top-level
``kustomization.yaml`` listing the model folders, which Argo CD and Flux both read. The output is
deterministic (sorted keys, no timestamps), so a pin change shows as a diff of that model's
folder only. Pulumi keeps the objects bound to cloud resources (namespace, service account with
the pod role, the ConfigMap naming the bucket); they are not rendered here.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.alert_rules import read_alert_rules, rollback_expressions
from pipelines.core.cluster_settings import stack_values
from pipelines.core.conventions import endpoint_name, slug
from pipelines.core.definitions import RolloutFlavor
from pipelines.core.errors import DefinitionError
from pipelines.core.kubernetes_manifests import EndpointSpec, Manifest, workload_manifests
from pipelines.core.model_plan import ModelPlan, plan, rollout_steps
from pipelines.gitops.deploy_image import IMAGE_URI

KUSTOMIZATION = "kustomization.yaml"
MANAGED_BY = "gitops"


class _Dumper(yaml.SafeDumper):
    """Sorted keys, no anchors, multi-line strings (scripts, PromQL) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=True, width=100, allow_unicode=True)


@dataclass(frozen=True)
class RenderSettings:
    """What the manifests need from the stack besides git: read from Pulumi.<env>.yaml."""

    image: str  # empty when none is known; an error only once a model needs it
    monitoring_namespace: str
    prometheus_release: str
    rollouts: list[str]


def render_settings(
    root: Path, environment: str, image: str | None, rendered: Path | None = None
) -> RenderSettings:
    """The stack's settings; the image is ``image``, else ``mlops:image``, else the one the
    render in ``rendered`` names (a GitOps cluster runs what git says, so a render that moves a
    pin keeps the image the cluster runs)."""
    values = stack_values(root, environment)
    chosen = image or str(values.get("image") or "") or committed_image(rendered)
    rollouts = values.get("rollouts") or []
    if not isinstance(rollouts, list) or not all(isinstance(r, str) for r in rollouts):
        raise DefinitionError(
            "must be a list of model@version[=percent] strings",
            file=f"Pulumi.{environment}.yaml",
            field="rollouts",
        )
    return RenderSettings(
        image=chosen,
        monitoring_namespace=str(values.get("kubernetesMonitoringNamespace") or "monitoring"),
        prometheus_release=str(values.get("prometheusRelease") or "kube-prometheus-stack"),
        rollouts=rollouts,
    )


def committed_image(folder: Path | None) -> str:
    """The one serving image the manifests in ``folder`` run; empty if none (or no folder)."""
    if folder is None or not folder.is_dir():
        return ""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.yaml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DefinitionError(
                f"not readable YAML ({type(exc).__name__}); render it again with --image",
                file=path,
            ) from None
        for image in _images(documents):
            found.setdefault(image, path)
    if len(found) > 1:
        named = ", ".join(f"{image} ({path})" for image, path in sorted(found.items()))
        raise DefinitionError(
            f"the manifests there run more than one image ({named}); pass --image to choose",
            file=folder,
            field="image",
        )
    return next(iter(found), "")


def _images(node: Any) -> list[str]:
    """Every container ``image`` in a parsed manifest, at any depth (pods, rollouts, KServe)."""
    if isinstance(node, list):
        return [image for item in node for image in _images(item)]
    if not isinstance(node, dict):
        return []
    own = [node["image"]] if isinstance(node.get("image"), str) and "name" in node else []
    return own + [image for value in node.values() for image in _images(value)]


def endpoint_spec(
    p: ModelPlan, environment: str, settings: RenderSettings, alert_rules: dict[str, str]
) -> EndpointSpec:
    """The same spec the Pulumi program builds for this model (infra/stack.py)."""
    assert p.version is not None
    expressions: dict[str, str] = {}
    if isinstance(p.deployment.kubernetes, RolloutFlavor):
        try:
            expressions = rollback_expressions(alert_rules)
        except ValueError as exc:
            raise DefinitionError(
                str(exc), file=f"models/{p.name}/model.yaml", field="deployment.kubernetes.flavor"
            ) from None
    return EndpointSpec(
        model=p.name,
        version=p.version,
        environment=environment,
        owner=p.definition.owner,
        endpoint_name=endpoint_name(p.name, environment),
        deployment=p.deployment,
        image=settings.image,
        capture_percent=p.definition.monitoring.capture_percent,
        previous_version=p.previous_version,
        canary_weight=p.canary_weight,
        steps=tuple(rollout_steps(p.deployment)),
        bake_minutes=p.deployment.strategy.bake_minutes,
        monitoring_namespace=settings.monitoring_namespace,
        prometheus_release=settings.prometheus_release,
        rollback_expressions=expressions,
        managed_by=MANAGED_BY,
    )


def file_name(manifest: Manifest) -> str:
    return f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"


def render_kubernetes(
    root: Path, environment: str, image: str | None, rendered: Path | None = None
) -> dict[str, str]:
    """Relative path -> file text, for every pinned ``target: kubernetes`` model.

    ``rendered`` is the folder of the previous render, whose image is kept when neither
    ``image`` nor the stack file names one.
    """
    settings = render_settings(root, environment, image, rendered)
    plans = plan(root, environment, settings.rollouts)
    if not settings.image and any(p.has_endpoint and p.target == "kubernetes" for p in plans):
        raise DefinitionError(
            "no serving image: pass --image registry/repository:tag (or set mlops:image in "
            f"Pulumi.{environment}.yaml, or render over a folder whose manifests name one); the "
            "manifests run exactly that image",
            field="image",
        )
    if settings.image and not IMAGE_URI.fullmatch(settings.image):
        raise DefinitionError(
            f"{settings.image!r} is not registry/repository:tag or "
            "registry/repository@sha256:digest",
            field="image",
        )
    alert_rules = read_alert_rules(root / "monitoring")
    header = (
        f"# Rendered by `mlops render kubernetes --env {environment}` from models/, "
        f"environments/{environment}.yaml\n# and Pulumi.{environment}.yaml. Do not edit: "
        "change those and render again.\n"
    )
    files: dict[str, str] = {}
    folders = []
    for p in plans:
        if not (p.has_endpoint and p.target == "kubernetes"):
            continue
        folder = slug(p.name)
        names = []
        for manifest in workload_manifests(endpoint_spec(p, environment, settings, alert_rules)):
            name = file_name(manifest)
            files[f"{folder}/{name}"] = header + to_yaml(manifest)
            names.append(name)
        files[f"{folder}/{KUSTOMIZATION}"] = header + to_yaml(_kustomization(sorted(names)))
        folders.append(folder)
    files[KUSTOMIZATION] = header + to_yaml(_kustomization(sorted(folders)))
    return files


def _kustomization(resources: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }


def changed_paths(files: dict[str, str], out: Path) -> list[str]:
    """The paths under ``out`` that writing ``files`` would write or remove, sorted."""
    if out.exists() and not out.is_dir():
        raise DefinitionError("exists and is not a folder", file=out)
    previous = (
        {str(p.relative_to(out)): _read_text(p) for p in out.rglob("*") if p.is_file()}
        if out.is_dir()
        else {}
    )
    return sorted(
        path for path in set(previous) | set(files) if previous.get(path) != files.get(path)
    )


def _read_text(path: Path) -> str | None:
    """A file's text; None for bytes that are not UTF-8 (they differ from any render)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def write_rendered(files: dict[str, str], out: Path) -> list[str]:
    """Make ``out`` hold exactly ``files``; returns the paths that changed (written or removed).

    Everything is written beside ``out`` first and swapped in by rename, so a failure leaves the
    previous render in place; unchanged files keep their bytes, so git sees only real changes.
    """
    changed = changed_paths(files, out)
    if not changed:
        return []
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for path, text in files.items():
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return changed
