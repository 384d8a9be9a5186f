"""Which workflows and jobs a change starts, read from the workflow files themselves.

act ignores path filters, so this test is what keeps them in step with the layout: GitHub's
``paths``/``paths-ignore`` glob rules are implemented below, the job conditions are evaluated
against what ``mlops plan`` says about the same change, and the security rules every workflow
must follow are checked here too.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from workflow_helpers import REPO_ROOT, Copy, load_workflows, pinned_actions

from pipelines.core.datasets import load_dataset_by_name, update_fingerprint
from pipelines.core.definitions import discover_models
from pipelines.gitops.plan import plan_change, retraining_schedules

pytestmark = pytest.mark.workflows


def glob_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter glob: ``*`` stays within a folder, ``**`` crosses them, ``?`` is one char."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def filtered_in(patterns: list[str], path: str) -> bool:
    """Last matching pattern wins; a leading ``!`` excludes again."""
    selected = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if glob_regex(pattern.lstrip("!")).match(path):
            selected = not negated
    return selected


def starts(trigger: dict[str, Any] | None, files: list[str]) -> bool:
    trigger = trigger or {}
    if "paths" in trigger:
        return any(filtered_in(trigger["paths"], f) for f in files)
    if "paths-ignore" in trigger:
        return any(not filtered_in(trigger["paths-ignore"], f) for f in files)
    return True


def workflows_started(event: str, files: list[str]) -> set[str]:
    started = set()
    for name, doc in load_workflows().items():
        on = doc["on"]
        if isinstance(on, dict) and event in on and starts(on[event], files):
            started.add(name)
    return started


def jobs_started(workflow: str, outputs: dict[str, bool]) -> set[str]:
    """Jobs whose ``if:`` holds for these plan outputs (success assumed everywhere else)."""
    started = set()
    for job_id, job in load_workflows()[workflow]["jobs"].items():
        condition = str(job.get("if", "True")).replace("${{", "").replace("}}", "")
        condition = re.sub(
            r"needs\.(?:plan|select)\.outputs\.(\w+) == 'true'",
            lambda m: str(outputs[m.group(1)]),
            condition,
        )
        condition = re.sub(r"!\s*(cancelled|failure)\(\)", "True", condition)
        condition = condition.replace("always()", "True")
        # The changes here are branches of the repository itself, not a fork's.
        condition = condition.replace(SAME_REPOSITORY, "True")
        condition = condition.replace("&&", " and ").replace("||", " or ")
        assert re.fullmatch(r"[\sA-Za-z()]*", condition), f"{workflow}: {job_id}: {condition}"
        if eval(condition, {}, {}):  # only True/False/and/or/() remain
            started.add(job_id)
    return started


def change(copy: Copy, kind: str) -> None:
    root = copy.root
    if kind == "model definition":
        copy.edit("models/penguins/model.yaml", "max_depth: 6", "max_depth: 5")
    elif kind == "dataset":
        csv = root / "data" / "penguins" / "penguins.csv"
        csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:-1]))
        update_fingerprint(load_dataset_by_name(root / "data", "penguins"))
    elif kind == "pipeline code":
        (root / "pipelines" / "stages" / "train.py").write_text(
            (root / "pipelines" / "stages" / "train.py").read_text() + "\n# changed\n"
        )
    elif kind == "infra":
        (root / "infra").mkdir(exist_ok=True)
        (root / "infra" / "__main__.py").write_text('"""The Pulumi program."""\n')
    elif kind == "serving":
        (root / "serving").mkdir(exist_ok=True)
        (root / "serving" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    elif kind == "pins":
        pins = sorted((root / "environments").glob("*.yaml"))[0]
        pins.write_text(pins.read_text() + "# a merged pins pull request\n")
    elif kind == "readme":
        (root / "README.md").write_text("# changed\n")
    copy.commit(kind)


SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"
PR = "pull-request.yml"
MAIN = "main.yml"
# kind -> (models retrained, pull-request jobs, main jobs); test.yml always runs.
EXPECTED: dict[str, tuple[list[str], set[str], set[str]]] = {
    "model definition": (
        ["penguins"],
        {"plan", "train-and-gate", "report", "verdict"},
        {"plan", "promote"},
    ),
    "dataset": (
        ["penguins"],
        {"plan", "train-and-gate", "report", "verdict"},
        {"plan", "promote"},
    ),
    "pipeline code": (
        ["every model"],  # training code affects every model of the copy
        {"plan", "train-and-gate", "image", "report", "verdict"},
        {"plan", "image", "infra-up", "gitops", "promote"},
    ),
    "infra": ([], {"plan", "infra-preview", "report", "verdict"}, {"plan", "infra-up"}),
    # A rebuilt image: the stacks Pulumi applies get it by `up`, GitOps stacks by a pull request.
    "serving": ([], {"plan", "image", "verdict"}, {"plan", "image", "infra-up", "gitops"}),
    # A merged pins pull request: the stacks apply it and the registry's aliases follow it.
    "pins": ([], {"plan", "infra-preview", "report", "verdict"}, {"plan", "infra-up", "sync"}),
}


@pytest.mark.parametrize("kind", [*EXPECTED, "readme"])
def test_what_a_change_starts(copy: Copy, kind: str) -> None:
    change(copy, kind)
    result = plan_change(copy.root, copy.base)
    files = result.changed_files
    outputs = {
        "any": bool(result.affected),
        "infra": result.infra,
        "image": result.image,
        "pins": result.pins,
    }
    if kind == "readme":
        # The pull-request workflow runs on every PR (its verdict is the required check); the
        # plan finds nothing, so only plan and verdict run.
        assert workflows_started("pull_request", files) == {PR, "test.yml"}
        assert workflows_started("push", files) == {"test.yml"}
        assert result.affected == []
        assert jobs_started(PR, outputs) == {"plan", "verdict"}
        return
    models, pr_jobs, main_jobs = EXPECTED[kind]
    if models == ["every model"]:
        models = sorted(discover_models(copy.root / "models"))
        assert {"penguins", "seattle_weather"} <= set(models)
    assert workflows_started("pull_request", files) == {PR, "test.yml"}
    assert workflows_started("push", files) == {MAIN, "test.yml"}
    assert result.affected == models
    assert jobs_started(PR, outputs) == pr_jobs
    assert jobs_started(MAIN, outputs) == main_jobs


def test_glob_semantics() -> None:
    assert filtered_in(["models/**"], "models/penguins/model.yaml")
    assert filtered_in(["Pulumi*.yaml"], "Pulumi.prod.yaml")
    assert not filtered_in(["Pulumi*.yaml"], "infra/Pulumi.yaml")
    assert filtered_in(["**.md"], "docs/deep/file.md")
    assert not filtered_in(["*.md"], "docs/file.md")
    assert not filtered_in(["models/**", "!models/**/*.md"], "models/penguins/README.md")


def test_retraining_crons_cover_every_models_schedule() -> None:
    # No model with a schedule (examples dropped, none added yet): no cron and no empty key.
    crons = {c["cron"] for c in load_workflows()["retrain.yml"]["on"].get("schedule", [])}
    schedules = retraining_schedules(REPO_ROOT)
    assert set(schedules.values()) == crons, f"models: {schedules}, retrain.yml: {crons}"


def test_dispatch_choices_list_every_model() -> None:
    from pipelines.core.definitions import discover_models

    models = discover_models(REPO_ROOT / "models")
    for name in ("retrain.yml", "promote-manual.yml"):
        model = load_workflows()[name]["on"]["workflow_dispatch"]["inputs"]["model"]
        if models:
            assert (model["type"], model["options"]) == ("choice", models), name
        else:  # GitHub rejects a choice without options: a name is typed until the first model
            assert model["type"] == "string" and "options" not in model, name


def test_drift_dispatch_is_the_event_the_monitor_sends() -> None:
    from pipelines.core.conventions import RETRAIN_EVENT_TYPE

    assert load_workflows()["retrain.yml"]["on"]["repository_dispatch"]["types"] == [
        RETRAIN_EVENT_TYPE
    ]
    select = load_workflows()["retrain.yml"]["jobs"]["select"]["steps"][-1]
    assert "github.event.client_payload.model" in select["env"]["MODEL"]


def all_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, job_id, job)
        for name, doc in load_workflows().items()
        for job_id, job in doc["jobs"].items()
    ]


def test_security_rules_hold_in_every_workflow() -> None:
    for name, doc in load_workflows().items():
        assert doc.get("permissions") == {}, f"{name}: permissions: {{}} at the top"
    for name, job_id, job in all_jobs():
        where = f"{name}: {job_id}"
        assert "permissions" in job, f"{where}: grants its own permissions"
        if "uses" not in job:  # a reusable workflow's jobs carry their own timeouts
            assert "timeout-minutes" in job, f"{where}: timeout-minutes"
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, where
            for line in str(step.get("run", "")).splitlines():
                assert "${{" not in line, f"{where}: expression expanded inside a script: {line}"
        if "id-token" in job.get("permissions", {}):
            assert job["permissions"]["id-token"] == "write"


def test_every_action_is_pinned_by_sha_with_its_tag() -> None:
    files = [*REPO_ROOT.glob(".github/workflows/*.yml"), *REPO_ROOT.glob(".github/actions/*/*.yml")]
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.search(r"uses:\s*([^\s#]+)", line)
            if not match or match.group(1).startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match.group(1)), line
            assert re.search(r"# v\d", line), f"{path.name}: no tag comment: {line}"
    assert ("pulumi/actions", "8e5e406f4007fca908480587cb9893c07090f58d") in pinned_actions()


def test_aws_only_through_oidc_and_deployments_never_cancelled() -> None:
    text = "\n".join(p.read_text() for p in REPO_ROOT.glob(".github/workflows/*.yml"))
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert text.count("role-to-assume:") >= 3
    infra = load_workflows()["infra.yml"]["jobs"]
    assert infra["up"]["concurrency"]["cancel-in-progress"] is False
    assert infra["up"]["environment"] == "${{ inputs.stack }}"
    promote = load_workflows()["promote.yml"]["jobs"]["promote"]
    assert promote["concurrency"]["cancel-in-progress"] is False
    assert load_workflows()[PR]["concurrency"]["cancel-in-progress"] is True
