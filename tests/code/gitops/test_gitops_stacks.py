"""``mlops render gitops``: a pins pull request carries what a GitOps controller will apply."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from examples_root import REPO_ROOT, copy_examples
from test_render import IMAGE, edit_model, pin, tree
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.core.pins import in_promotion_order, list_environments, load_environment
from pipelines.gitops.gitops_stacks import rendered_folder

pytestmark = pytest.mark.code

NEWER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:def456"


def chain(root: Path) -> list[str]:
    """The scratch repository's environments in promotion order, whatever they are called."""
    folder = root / "environments"
    environments = [load_environment(folder, n) for n in list_environments(folder)]
    return [e.environment for e in in_promotion_order(environments)]


def set_stack(root: Path, env: str, **config: Any) -> None:
    path = root / f"Pulumi.{env}.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())["name"]  # adoption renames it
    data.setdefault("config", {}).update({f"{project}:{k}": v for k, v in config.items()})
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """penguins on Kubernetes, pinned in the first and the last environment; no GitOps stack."""
    root = copy_examples(tmp_path / "repo")
    shutil.copy(REPO_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(REPO_ROOT / "monitoring" / "alerts", root / "monitoring" / "alerts")
    edit_model(root, "penguins", target="kubernetes")
    first, *_, last = chain(root)
    pin(root, first, "penguins", "4")
    pin(root, last, "penguins", "3")
    monkeypatch.setenv("MLOPS_ROOT", str(root))
    return root


def last_env(root: Path) -> str:
    return chain(root)[-1]


def render_gitops(root: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        app, ["render", "gitops", "--github-output", str(root / "github-output"), *extra]
    )


def folders_output(root: Path) -> str:
    return (root / "github-output").read_text()


def images(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("deployment-*.yaml"):
        pod = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]
        found |= {c["image"] for c in pod["containers"] + pod["initContainers"]}
    return found


def test_without_a_gitops_stack_nothing_is_rendered(repo: Path) -> None:
    result = render_gitops(repo)
    assert result.exit_code == 0, result.output
    for env in chain(repo):
        assert f"{env}: kubernetesApply is pulumi; nothing rendered" in result.output
    assert not (repo / "deploy").exists()
    assert folders_output(repo) == "folders=\n", "the pull request adds no folder"


def test_only_the_gitops_stack_is_rendered_and_as_render_kubernetes_writes_it(
    repo: Path, tmp_path: Path
) -> None:
    first, env = chain(repo)[0], last_env(repo)
    set_stack(repo, env, kubernetesApply="gitops")
    result = render_gitops(repo, "--image", IMAGE)
    assert result.exit_code == 0, result.output
    folder = str(rendered_folder(env))
    assert folders_output(repo) == f"folders={folder}\n"
    assert not (repo / rendered_folder(first)).exists(), "Pulumi applies that stack"
    alone = tmp_path / "alone"
    CliRunner().invoke(
        app, ["render", "kubernetes", "--env", env, "--out", str(alone), "--image", IMAGE]
    )
    assert tree(repo / folder) == tree(alone), "one renderer, one output"
    again = render_gitops(repo, "--image", IMAGE)
    assert again.exit_code == 0 and f"{env}: {folder}: 1 model(s)" in again.output
    assert "0 changed" in again.output


def test_a_pin_change_keeps_the_image_the_cluster_runs_and_changes_only_that_model(
    repo: Path,
) -> None:
    """The stack file in git names no image; the committed render does, and the controller runs
    it. Moving a pin must not change it (nor need a cloud call to find it)."""
    env = last_env(repo)
    set_stack(repo, env, kubernetesApply="gitops")
    edit_model(repo, "seattle_weather", target="kubernetes")
    pin(repo, env, "seattle_weather", "7")
    assert render_gitops(repo, "--env", env, "--image", IMAGE).exit_code == 0
    folder = repo / rendered_folder(env)
    before = tree(folder)
    pin(repo, env, "penguins", "3", "4")
    result = render_gitops(repo, "--env", env)
    assert result.exit_code == 0, result.output
    assert images(folder) == {IMAGE}
    after = tree(folder)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed and all(p.startswith("penguins/") for p in changed), changed


def test_a_new_image_is_rendered_when_named_and_the_stack_file_image_wins_over_git(
    repo: Path,
) -> None:
    env = last_env(repo)
    set_stack(repo, env, kubernetesApply="gitops")
    assert render_gitops(repo, "--image", IMAGE).exit_code == 0
    folder = repo / rendered_folder(env)
    assert render_gitops(repo, "--image", NEWER_IMAGE).exit_code == 0
    assert images(folder) == {NEWER_IMAGE}
    set_stack(repo, env, image=IMAGE)
    assert render_gitops(repo).exit_code == 0
    assert images(folder) == {IMAGE}


def test_a_gitops_stack_without_kubernetes_models_needs_no_image(repo: Path) -> None:
    env = last_env(repo)
    set_stack(repo, env, kubernetesApply="gitops")
    path = repo / "environments" / f"{env}.yaml"
    pins = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**pins, "models": {}}, sort_keys=False))
    result = render_gitops(repo)
    assert result.exit_code == 0, result.output
    top = yaml.safe_load((repo / rendered_folder(env) / "kustomization.yaml").read_text())
    assert top["resources"] == [], "the controller prunes what is no longer pinned"


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"kubernetesApply": "argo"}, "kubernetesApply"),
        ({"kubernetesApply": "gitops", "rollouts": "penguins@3"}, "rollouts"),
    ],
)
def test_bad_stack_config_exits_2_naming_the_file_and_field_and_writes_no_folder(
    repo: Path, config: dict[str, str], named: str
) -> None:
    """Every stack is rendered before any is written: the good one is not written either."""
    first, env = chain(repo)[0], last_env(repo)
    set_stack(repo, first, kubernetesApply="gitops")
    set_stack(repo, env, **config)
    result = render_gitops(repo, "--image", IMAGE)
    assert result.exit_code == 2, result.output
    assert f"Pulumi.{env}.yaml: {named}" in result.output
    assert not (repo / "deploy").exists()
    assert not (repo / "github-output").exists()


def test_no_known_image_exits_2_naming_it_and_writes_nothing(repo: Path) -> None:
    set_stack(repo, last_env(repo), kubernetesApply="gitops")
    result = render_gitops(repo)
    assert result.exit_code == 2 and "image: no serving image" in result.output
    assert not (repo / "deploy").exists()


def test_a_committed_render_running_two_images_exits_2_and_is_left_as_it_was(
    repo: Path,
) -> None:
    env = last_env(repo)
    set_stack(repo, env, kubernetesApply="gitops")
    assert render_gitops(repo, "--image", IMAGE).exit_code == 0
    folder = repo / rendered_folder(env)
    (edited,) = folder.rglob("deployment-*.yaml")
    text = edited.read_text()
    edited.write_text(text.replace(IMAGE, NEWER_IMAGE, 1))
    before = tree(folder)
    pin(repo, env, "penguins", "3", "4")
    result = render_gitops(repo)
    assert result.exit_code == 2, result.output
    assert "image" in result.output and IMAGE in result.output and NEWER_IMAGE in result.output
    assert tree(folder) == before


def test_an_unknown_environment_exits_2_naming_its_file(repo: Path) -> None:
    result = render_gitops(repo, "--env", "no-such-env")
    assert result.exit_code == 2 and "no-such-env.yaml" in result.output


def test_a_checkout_without_the_pulumi_program_renders_nothing(repo: Path) -> None:
    """The promotion workflow runs this step in every repository, Pulumi program or not."""
    (repo / "Pulumi.yaml").unlink()
    result = render_gitops(repo)
    assert result.exit_code == 0, result.output
    assert not (repo / "deploy").exists() and folders_output(repo) == "folders=\n"
