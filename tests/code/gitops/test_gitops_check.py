"""Git stays the truth between renders: a GitOps stack's committed folder must be what the
definitions render (``mlops render gitops --check``, and ``mlops check`` on every pull request).

The controller applies ``deploy/kubernetes/<env>``, not the pins: a pin moved by hand, a model's
deployment settings changed, or a rendered file edited, without a new render, would have the
cluster run something the definitions no longer say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_gitops_stacks import chain, last_env, repo, set_stack  # noqa: F401 (repo: a fixture)
from test_render import IMAGE, edit_model, pin, tree
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.gitops.gitops_stacks import rendered_folder

pytestmark = pytest.mark.code

# An EKS cluster's IRSA settings: `mlops check` wants them where a Kubernetes model is pinned.
CLUSTER = {
    "eksClusterName": "ml-serving",
    "eksOidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/"
    "oidc.eks.us-east-1.amazonaws.com/id/ABC",
    "eksOidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/ABC",
}


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def rendered(repo: Path) -> tuple[Path, str]:  # noqa: F811 (the fixture imported above)
    """The last environment applied by a GitOps controller, rendered and committed."""
    for each in chain(repo):
        set_stack(repo, each, **CLUSTER)
    env = last_env(repo)
    set_stack(repo, env, kubernetesApply="gitops")
    done = run("render", "gitops", "--env", env, "--image", IMAGE)
    assert done.exit_code == 0, done.output
    return repo, env


def test_a_fresh_render_passes_both_checks(rendered: tuple[Path, str]) -> None:
    _root, env = rendered
    result = run("render", "gitops", "--check")
    assert result.exit_code == 0, result.output
    assert f"{env}: {rendered_folder(env)} matches the definitions" in result.output
    checked = run("check")
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize("change", ["pin moved by hand", "deployment setting", "file edited"])
def test_a_change_without_a_new_render_fails_both_checks_naming_the_folder_and_the_fix(
    rendered: tuple[Path, str], change: str
) -> None:
    root, env = rendered
    folder = root / rendered_folder(env)
    if change == "pin moved by hand":
        pin(root, env, "penguins", "3", "4")
    elif change == "deployment setting":
        edit_model(root, "penguins", resources={"cpu": "2", "memory": "4Gi"})
    else:
        (edited,) = folder.glob("penguins/deployment-*.yaml")
        edited.write_text(edited.read_text() + "# tuned in the cluster\n")
    before = tree(folder)

    result = run("render", "gitops", "--check")
    assert result.exit_code == 1, result.output
    assert f"{rendered_folder(env)} is not what the definitions render" in result.output
    assert "penguins/" in result.output
    assert f"mlops render gitops --env {env}" in result.output
    checked = run("check")
    assert checked.exit_code == 2, checked.output
    assert f"mlops render gitops --env {env}" in checked.output
    assert tree(folder) == before, "a check writes nothing"

    assert run("render", "gitops", "--env", env).exit_code == 0
    assert run("render", "gitops", "--check").exit_code == 0
    assert run("check").exit_code == 0


def test_a_file_that_is_not_text_is_reported_not_a_crash(rendered: tuple[Path, str]) -> None:
    root, env = rendered
    (root / rendered_folder(env) / "penguins" / "notes.yaml").write_bytes(b"\xff\xfe\x00")
    result = run("render", "gitops", "--check")
    assert result.exit_code == 2, result.output
    assert "penguins/notes.yaml: not readable YAML" in result.output


def test_a_stack_never_rendered_and_without_an_image_is_a_note_not_a_failure(
    repo: Path,  # noqa: F811
) -> None:
    """Turning a stack to gitops before any image is known must not block every pull request:
    there is nothing to compare yet, and the note says how to make the first render."""
    for each in chain(repo):
        set_stack(repo, each, **CLUSTER)
    env = last_env(repo)
    set_stack(repo, env, kubernetesApply="gitops")
    result = run("render", "gitops", "--check")
    assert result.exit_code == 0, result.output
    assert "is not rendered yet" in result.output and "--image" in result.output
    checked = run("check")
    assert checked.exit_code == 0, checked.output
    assert "is not rendered yet" in checked.output
    assert not (repo / "deploy").exists()


def test_check_takes_no_image(rendered: tuple[Path, str]) -> None:
    result = run("render", "gitops", "--check", "--image", IMAGE)
    assert result.exit_code == 2 and "--check" in result.output


def test_a_bad_stack_setting_is_still_exit_2_naming_it(rendered: tuple[Path, str]) -> None:
    root, env = rendered
    set_stack(root, env, rollouts="penguins@3")
    result = run("render", "gitops", "--check")
    assert result.exit_code == 2, result.output
    assert f"Pulumi.{env}.yaml: rollouts" in result.output
