"""``mlops render kubernetes``: deterministic manifests from the pins, for a GitOps controller."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from examples_root import REPO_ROOT, copy_examples
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.core.pins import Environment, save_environment

pytestmark = pytest.mark.code

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:abc123"
PIN = {
    "run_id": "0123456789abcdef",
    "fingerprint": "f" * 16,
    "data_fingerprint": "d" * 16,
    "git_commit": "c" * 40,
    "promoted_at": "2026-11-25T10:00:00+00:00",
    "promoted_by": "tests",
}


def _production(root: Path) -> str:
    """The team's last environment (``prod`` here; an adopted repository may name it otherwise)."""
    from pipelines.core.pins import in_promotion_order, list_environments, load_environment

    folder = root / "environments"
    ordered = in_promotion_order([load_environment(folder, n) for n in list_environments(folder)])
    return ordered[-1].environment


PROD = _production(REPO_ROOT)


def edit_model(root: Path, model: str, **deployment: Any) -> None:
    path = root / "models" / model / "model.yaml"
    data = yaml.safe_load(path.read_text())
    data["deployment"].update(deployment)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def pin(root: Path, env: str, model: str, *versions: str) -> None:
    path = root / "environments" / f"{env}.yaml"
    if not path.is_file():
        save_environment(root / "environments", Environment(environment=env))
    data = yaml.safe_load(path.read_text())
    records = [{"version": v, "model_uri": f"models:/{model}/{v}", **PIN} for v in versions]
    data["models"][model] = {**records[-1], "history": records[:-1]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Both examples on Kubernetes, one as a rollout and one on KServe, pinned in production."""
    root = copy_examples(tmp_path / "repo")
    for name in ("Pulumi.yaml", f"Pulumi.{PROD}.yaml"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "monitoring" / "alerts", root / "monitoring" / "alerts")
    edit_model(root, "penguins", target="kubernetes", kubernetes={"flavor": "rollout"})
    edit_model(root, "seattle_weather", target="kubernetes", kubernetes={"flavor": "kserve"})
    pin(root, PROD, "penguins", "3", "4")
    pin(root, PROD, "seattle_weather", "7")
    monkeypatch.setenv("MLOPS_ROOT", str(root))
    return root


def render(out: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        app, ["render", "kubernetes", "--env", PROD, "--out", str(out), *extra]
    )


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_rendering_twice_gives_byte_identical_files(repo: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert render(first, "--image", IMAGE).exit_code == 0
    assert render(second, "--image", IMAGE).exit_code == 0
    assert tree(first) == tree(second)
    again = render(first, "--image", IMAGE)
    assert again.exit_code == 0 and "0 changed" in again.output


def test_the_folder_holds_one_file_per_object_and_kustomizations(
    repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert render(out, "--image", IMAGE).exit_code == 0
    files = sorted(tree(out))
    assert "kustomization.yaml" in files
    assert "penguins/rollout-penguins.yaml" in files
    assert "penguins/analysistemplate-penguins-rollback.yaml" in files
    assert "seattle-weather/inferenceservice-seattle-weather.yaml" in files
    top = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert top["resources"] == ["penguins", "seattle-weather"]
    listed = yaml.safe_load((out / "penguins" / "kustomization.yaml").read_text())["resources"]
    objects = [f.removeprefix("penguins/") for f in files if f.startswith("penguins/")]
    assert listed == sorted(set(objects) - {"kustomization.yaml"})
    rollout = yaml.safe_load((out / "penguins" / "rollout-penguins.yaml").read_text())
    container = rollout["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert rollout["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gitops"
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in (out / "penguins").glob("*.yaml")}
    assert not kinds & {"Namespace", "ServiceAccount", "ConfigMap"}, "Pulumi owns those"


def test_a_pin_change_alters_only_that_models_files(repo: Path, tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    assert render(before, "--image", IMAGE).exit_code == 0
    pin(repo, PROD, "seattle_weather", "7", "8")
    assert render(after, "--image", IMAGE).exit_code == 0
    old, new = tree(before), tree(after)
    changed = {p for p in set(old) | set(new) if old.get(p) != new.get(p)}
    assert changed, "the new version must show"
    assert all(p.startswith("seattle-weather/") for p in changed), changed
    isvc = after / "seattle-weather" / "inferenceservice-seattle-weather.yaml"
    service = yaml.safe_load(isvc.read_text())
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert not filecmp.dircmp(before / "penguins", after / "penguins").diff_files


def test_rendering_over_an_earlier_render_removes_what_no_longer_exists(
    repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert render(out, "--image", IMAGE).exit_code == 0
    edit_model(repo, "seattle_weather", target="sagemaker", kubernetes={"flavor": "deployment"})
    result = render(out, "--image", IMAGE)
    assert result.exit_code == 0
    assert not (out / "seattle-weather").exists()
    assert "seattle-weather/inferenceservice-seattle-weather.yaml" in result.output


@pytest.mark.parametrize(
    ("deployment", "field"),
    [
        ({"kubernetes": {"flavor": "knative"}}, "deployment.kubernetes"),
        ({"kubernetes": {"flavor": "rollout", "failure_limit": -1}}, "failure_limit"),
        (
            {"kubernetes": {"flavor": "rollout"}, "strategy": {"type": "all_at_once"}},
            "kubernetes.flavor: rollout needs",
        ),
    ],
)
def test_a_bad_flavour_or_missing_setting_exits_2_naming_the_field_and_writes_nothing(
    repo: Path, tmp_path: Path, deployment: dict[str, Any], field: str
) -> None:
    edit_model(repo, "penguins", **deployment)
    out = tmp_path / "out"
    result = render(out, "--image", IMAGE)
    assert result.exit_code == 2, result.output
    assert field in result.output and "models/penguins/model.yaml" in result.output
    assert not out.exists()


def test_no_image_exits_2_naming_it(repo: Path, tmp_path: Path) -> None:
    result = render(tmp_path / "out")
    assert result.exit_code == 2 and "image" in result.output


def test_a_rollout_with_no_alert_rules_exits_2(repo: Path, tmp_path: Path) -> None:
    shutil.rmtree(repo / "monitoring" / "alerts")
    result = render(tmp_path / "out", "--image", IMAGE)
    assert result.exit_code == 2 and "ModelLatencyP99High" in result.output


def test_rendering_over_an_earlier_render_keeps_its_image_when_none_is_named(
    repo: Path, tmp_path: Path
) -> None:
    """A GitOps cluster runs the image git names: moving a pin must not need it passed again."""
    out = tmp_path / "out"
    assert render(out, "--image", IMAGE).exit_code == 0
    pin(repo, PROD, "penguins", "3", "4", "5")
    result = render(out)
    assert result.exit_code == 0, result.output
    rollout = yaml.safe_load((out / "penguins" / "rollout-penguins.yaml").read_text())
    assert rollout["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE


def test_an_image_that_is_not_registry_repository_tag_exits_2_and_writes_nothing(
    repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = render(out, "--image", "mlops-serving")
    assert result.exit_code == 2 and "image: 'mlops-serving' is not" in result.output
    assert not out.exists()
