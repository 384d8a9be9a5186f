"""A rebuilt serving image reaches the stacks a GitOps controller applies (main.yml's `gitops`).

Pulumi gives every stack the new image at `up`, but on a stack with ``kubernetesApply: gitops``
it does not apply the workloads: Argo CD or Flux applies ``deploy/kubernetes/<stack>``, which
names the image. So the job renders that folder with the new image and opens a pull request of
it, one per GitOps stack. These tests read the job's rules from the file, then run its own
scripts in a scratch repository, as the runner would, and stage what create-pull-request adds.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from workflow_helpers import BIN, git, load_workflows, make_copy

from pipelines.core.pins import in_promotion_order, list_environments, load_environment
from pipelines.gitops.gitops_stacks import rendered_folder

pytestmark = pytest.mark.workflows

OLD_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:" + "a" * 40
NEW_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:" + "b" * 40


def job() -> dict[str, Any]:
    return load_workflows()["main.yml"]["jobs"]["gitops"]


def step(step_id: str) -> dict[str, Any]:
    (found,) = [s for s in job()["steps"] if s.get("id") == step_id]
    return found


def pull_request_step() -> dict[str, Any]:
    (found,) = [s for s in job()["steps"] if "create-pull-request" in str(s.get("uses", ""))]
    return found


def test_the_job_renders_each_stack_with_the_pushed_image_and_opens_a_pull_request_of_it() -> None:
    gitops, workflows = job(), load_workflows()
    assert set(gitops["needs"]) >= {"plan", "image"}, "after the image is pushed"
    assert "needs.plan.outputs.image == 'true'" in gitops["if"] and "!failure()" in gitops["if"]
    assert gitops["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    assert gitops["env"]["BUILT_AT"] == "${{ github.sha }}"
    # The same stacks as the deploys (adoption rewrites both lists from the promotion chain).
    infra_up = workflows["main.yml"]["jobs"]["infra-up"]
    assert gitops["strategy"]["matrix"]["stack"] == infra_up["strategy"]["matrix"]["stack"]
    assert gitops["strategy"]["fail-fast"] is False
    assert "matrix.stack" in gitops["concurrency"]["group"]
    assert gitops["concurrency"]["cancel-in-progress"] is False
    assert gitops["permissions"] == {"contents": "write", "pull-requests": "write"}
    checkout = gitops["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"] == {
        "persist-credentials": False, "ref": "refs/heads/main", "fetch-depth": 0,
    }  # fmt: skip

    render = step("render")
    assert render["if"] == "steps.newer.outputs.skip != 'true'"
    assert '--env "$STACK"' in render["run"] and '--image "$IMAGE"' in render["run"]
    assert '--github-output "$GITHUB_OUTPUT"' in render["run"]
    steps = gitops["steps"]
    pull_request = pull_request_step()
    assert steps.index(step("newer")) < steps.index(render) < steps.index(pull_request)
    folders = "${{ steps.render.outputs.folders }}"
    assert pull_request["if"] == f"{folders.strip('${} ')} != ''"
    assert pull_request["with"]["add-paths"] == folders, "the rendered folder and nothing else"
    assert "matrix.stack" in pull_request["with"]["branch"], "one pull request per stack"
    assert pull_request["with"]["token"].startswith("${{ steps.app-token.outputs.token")


def run_script(script: str, root: Path, environ: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], cwd=root, env=environ,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def outputs_of(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.mark.parametrize("case", ["gitops stack", "pulumi stack", "newer image on main"])
def test_the_jobs_own_steps_stage_only_the_image_lines_and_only_when_they_should(
    tmp_path: Path, case: str
) -> None:
    copy = make_copy(tmp_path, pulumi_project=True)
    root = copy.root
    git(root, "checkout", "-q", "main")
    folder = root / "environments"
    env = in_promotion_order([load_environment(folder, n) for n in list_environments(folder)])[-1]
    stack_file = root / f"Pulumi.{env.environment}.yaml"
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())["name"]  # adoption renames it
    if case != "pulumi stack":
        stack = yaml.safe_load(stack_file.read_text()) or {}
        stack.setdefault("config", {})[f"{project}:kubernetesApply"] = "gitops"
        stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    model = root / "models" / "penguins" / "model.yaml"
    definition = yaml.safe_load(model.read_text())
    definition["deployment"]["target"] = "kubernetes"
    model.write_text(yaml.safe_dump(definition, sort_keys=False))
    pins = folder / f"{env.environment}.yaml"
    data = yaml.safe_load(pins.read_text())
    data["models"]["penguins"] = {
        "version": "3", "run_id": "r" * 16, "model_uri": "models:/penguins/3",
        "fingerprint": "f" * 16, "data_fingerprint": "d" * 16, "git_commit": "c" * 40,
        "promoted_at": "2026-11-25T10:00:00+00:00",
    }  # fmt: skip
    pins.write_text(yaml.safe_dump(data, sort_keys=False))
    environ = {"PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(root),
               "HOME": str(tmp_path), "MLOPS_HOME": str(tmp_path / "state")}  # fmt: skip
    if case != "pulumi stack":  # the folder main holds: rendered with the image it runs now
        run_script(
            f"mlops render gitops --env {env.environment} --image {OLD_IMAGE}", root, environ
        )
    built_at = copy.commit("the commit whose image was just pushed")
    if case == "newer image on main":  # merged while this run built: its own run rolls it out
        (root / "serving").mkdir(exist_ok=True)
        (root / "serving" / "Dockerfile").write_text("FROM python:3.11-slim\n")
        copy.commit("a newer image")

    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    output = tmp_path / "github-output"
    output.write_text("")
    environ |= {"STACK": env.environment, "IMAGE": NEW_IMAGE, "BUILT_AT": built_at,
                "RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(output)}  # fmt: skip
    run_script(step("newer")["run"], root, environ)
    skipped = outputs_of(output).get("skip") == "true"
    assert skipped == (case == "newer image on main")
    if not skipped:
        run_script(step("render")["run"], root, environ)
    folders = outputs_of(output).get("folders", "")

    rendered = rendered_folder(env.environment)
    if case != "gitops stack":
        assert folders == "", "no pull request: the step's `if` is false"
        assert git(root, "status", "--porcelain") == ""
        return
    assert folders == str(rendered)
    git(root, "add", "--", *re.split(r"[\n,]+", folders))
    staged = git(root, "diff", "--cached", "--name-only").splitlines()
    assert staged and all(p.startswith(f"{rendered}/penguins/") for p in staged), staged
    changed = [
        line
        for line in git(root, "diff", "--cached", "-U0").splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed and all("image: " in line for line in changed), changed
    assert all(NEW_IMAGE in line for line in changed if line.startswith("+"))
    assert git(root, "status", "--porcelain", "--untracked-files=all") == "".join(
        f"M  {p}\n" for p in staged
    ).rstrip("\n"), "everything rendered is in the pull request"
