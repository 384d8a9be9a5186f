"""The GitOps loop executed end to end: the workflows run with act in the order GitHub would
dispatch them, against ONE registry that outlives every job.

The registry is the local stack's MLflow server (SQLite, artifacts in S3 on moto) on 127.0.0.1;
GitHub's API is the fake one (comments); the repository is a throwaway copy that is its own
origin (so `infra.yml` reads main's head from it); pulumi/actions and the Pulumi CLI are
stand-ins that record their inputs and keep each stack's outputs between runs, as Pulumi's
state would; docker, Trivy, the ECR login and the AWS credentials action record theirs. After
each step the test asserts the registry's aliases and versions, git's pins, the pins pull
request the stand-in would open, the report comment, the roles asked for and what each deploy
and build got.

The steps, as a team lives them: a released champion; a pull request that improves the model
(gated against that champion, one report comment); its merge (the gated run is registered, not
retrained; the pins pull request is opened and no alias moves); that pull request unmerged (the
registry agrees with git); a serving-image change merged (built and scanned without
credentials, pushed by the job holding the publish role, applied by every stack's `up`); the
pins pull request merged (`mlops sync` moves the alias; every stack's `up` gets the image it
runs, though this run built none); a worse pull request (rejected, registry unchanged); a drift
dispatch and a cron run (retrained on main, gated, pins pull request); a retraining that loses
(rejected, nothing registered or proposed).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from workflow_helpers import REPOSITORY, STAND_INS, Copy, FakeGitHub, act, git, make_copy

from pipelines.aws.local_stack import Stack
from pipelines.core.pins import in_promotion_order, list_environments, load_environment
from pipelines.core.registry import CHALLENGER, aliases_of
from pipelines.core.tags import GIT_COMMIT_TAG, MODEL_TAG, TRAIN_STAGE_TAG

pytestmark = pytest.mark.workflows

MODEL = "penguins"
# What the stacks ran before this story starts (the pulumi stand-in's state): an image pushed by
# an earlier merge. Every `up` that builds none must apply it again, never an empty one.
RELEASED_IMAGE = "registry.example.internal/mlops-serving:0123abc"
DEPLOY_ROLE = "arn:aws:iam::000000000000:role/deploy-stand-in"
PUBLISH_ROLE = "arn:aws:iam::000000000000:role/publish-stand-in"
REGISTRY_ROLE = "arn:aws:iam::000000000000:role/registry-stand-in"
ECR_REGISTRY = "000000000000.dkr.ecr.region-1.amazonaws.com"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Loop:
    """The copy, the one registry, the fake GitHub and the stand-ins' state, across the steps."""

    copy: Copy
    stack: Stack
    github: FakeGitHub
    work: Path
    steps: list[str] = field(default_factory=list)

    @property
    def pulumi_state(self) -> Path:
        return self.work / "pulumi-state"

    @property
    def client(self) -> MlflowClient:
        uri = self.stack.client_env()["MLFLOW_TRACKING_URI"]
        return MlflowClient(uri, uri)

    def run(
        self, step: str, event_name: str, event: dict[str, Any], workflow: str
    ) -> subprocess.CompletedProcess[str]:
        """One workflow, whole, for one event; its artifacts land in work/<step>/artifacts."""
        self.steps.append(step)
        folder = self.work / step
        folder.mkdir()
        aws = {k: v for k, v in self.stack.client_env().items() if k.startswith("AWS_")}
        done = act(
            self.copy,
            event_name,
            event,
            None,
            folder,
            self.github.url,
            workflow=workflow,
            secrets={
                "MLFLOW_TRACKING_URI": self.stack.client_env()["MLFLOW_TRACKING_URI"],
                "AWS_DEPLOY_ROLE_ARN": DEPLOY_ROLE,
                "AWS_PUBLISH_ROLE_ARN": PUBLISH_ROLE,
                "MLFLOW_AWS_ROLE_ARN": REGISTRY_ROLE,
            },
            env={
                **aws,  # moto: nothing may reach a real AWS account
                "PULUMI_STAND_IN_STATE": str(self.pulumi_state),
                "AWS_STAND_IN_LOG": str(folder / "aws-credentials.jsonl"),
                "DOCKER_STAND_IN_LOG": str(folder / "docker.log"),
                "ECR_STAND_IN_REGISTRY": ECR_REGISTRY,
                # The repository is its own origin: `git ls-remote origin` reads main's head.
                "GIT_CONFIG_GLOBAL": str(self.work / "gitconfig"),
                # The Pulumi CLI's and docker's stand-ins.
                "PATH": f"{STAND_INS / 'bin'}:{_host_path()}",
            },
            timeout=300,
        )
        (folder / "act.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        return done

    def mlops(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The CLI on the copy's current checkout, against the shared registry."""
        done = subprocess.run(
            [str(_venv_bin() / "mlops"), *args],
            cwd=self.copy.root,
            env={
                **_clean_env(),
                **self.stack.client_env(),
                "PYTHONPATH": str(self.copy.root),
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done

    def pulumi_calls(self) -> list[dict[str, Any]]:
        calls = self.pulumi_state / "calls.jsonl"
        if not calls.is_file():
            return []
        return [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()]

    def pins(self) -> dict[str, str | None]:
        """Version of MODEL pinned in each environment on the copy's checkout."""
        folder = self.copy.root / "environments"
        pinned = {}
        for name in list_environments(folder):
            pin = load_environment(folder, name).models.get(MODEL)
            pinned[name] = pin.version if pin else None
        return pinned

    def versions(self) -> list[str]:
        found = self.client.search_model_versions(f"name = '{MODEL}'")
        return sorted((v.version for v in found), key=int)

    def pins_pull_request(self, step: str, environment: str) -> Path:
        return (
            self.work / step / "artifacts" / "pull-requests" / f"promote_{environment}_{MODEL}.diff"
        )


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def _host_path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "AWS_"))}


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    base = tmp_path_factory.mktemp("lifecycle")
    copy = make_copy(base, pulumi_project=True)  # the `up` job reads the stack's settings
    git(copy.root, "checkout", "-q", "main")
    git(copy.root, "branch", "-q", "-D", "change")
    ports = {"moto_port": _free_port(), "mlflow_port": _free_port()}
    stack = Stack(base / "state", {**ports, "prometheus_bin": str(base / "no-prometheus")})
    github = FakeGitHub([])
    work = base / "work"
    work.mkdir()
    (work / "gitconfig").write_text(
        f'[url "{copy.root / ".git"}"]\n\tinsteadOf = https://github.com/{REPOSITORY}.git\n',
        encoding="utf-8",
    )
    try:
        stack.up()
        yield Loop(copy, stack, github, work)
    finally:
        github.stop()
        stack.down()


def _chain(root: Path) -> list[str]:
    folder = root / "environments"
    environments = [load_environment(folder, n) for n in list_environments(folder)]
    return [e.environment for e in in_promotion_order(environments)]


def _champion_environment(root: Path) -> str:
    folder = root / "environments"
    for name in list_environments(folder):
        if load_environment(folder, name).champion:
            return name
    raise AssertionError("no environment holds the champion")


def _upstream(root: Path, environment: str) -> list[str]:
    """The environments a version passes through to reach ``environment``, first to last."""
    folder = root / "environments"
    path = [environment]
    while (source := load_environment(folder, path[0]).promote_from) is not None:
        path.insert(0, source)
    return path


def _workflow(root: Path, name: str) -> dict[str, Any]:
    doc = yaml.safe_load((root / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _pull_request(copy: Copy, number: int, base: str) -> dict[str, Any]:
    head = git(copy.root, "rev-parse", "HEAD")
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "base": {"sha": base, "ref": "main"},
            "head": {"sha": head, "ref": f"change-{number}", "repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY},
    }


def _push(before: str, after: str) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": {"full_name": REPOSITORY},
    }


def _pinned_by(diff: Path, environment: str) -> str | None:
    """The version of MODEL the pins pull request (its diff, and its branch's pins files beside
    it) pins in ``environment``."""
    assert diff.is_file(), f"no pins pull request {diff.name}"
    pin = load_environment(diff.with_suffix(""), environment).models.get(MODEL)
    return pin.version if pin else None


def _baselines(loop: Loop, bucket: str) -> set[str]:
    """Versions of MODEL whose monitoring baseline is complete (its manifest) in the bucket."""
    import boto3

    env = loop.stack.client_env()
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    found = s3.list_objects_v2(Bucket=bucket, Prefix=f"baselines/{MODEL}/").get("Contents", [])
    return {o["Key"].split("/")[2] for o in found if o["Key"].endswith("/baseline.json")}


def _log(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout + done.stderr)[-6000:]


def _training_runs(loop: Loop) -> set[str]:
    """Ids of every run that trained MODEL, in any experiment of the shared server."""
    experiments = [e.experiment_id for e in loop.client.search_experiments()]
    found = loop.client.search_runs(experiments, f"tags.`{MODEL_TAG}` = '{MODEL}'")
    return {run.info.run_id for run in found if run.data.tags.get(TRAIN_STAGE_TAG)}


def test_the_gitops_loop_from_pull_request_to_retraining(loop: Loop) -> None:
    copy = loop.copy
    root = copy.root
    first = str(_workflow(root, "main.yml")["jobs"]["promote"]["with"]["environment"])
    champion_env = _champion_environment(root)
    stacks = [
        str(s)
        for s in _workflow(root, "main.yml")["jobs"]["infra-up"]["strategy"]["matrix"]["stack"]
    ]

    # 0. Where the story starts: a champion trained, gated and promoted along the chain to the
    # champion's environment, its pins merged on main, and the stacks running a released image.
    # Served by SageMaker, so each stack runs its scheduled monitor, which reads a baseline.
    copy.edit(f"models/{MODEL}/model.yaml", "target: local", "target: sagemaker")
    # A fleet that can shrink to one instance cannot shift a canary on SageMaker: the program
    # (and the deploy's scaling check, which reads its plan) would refuse the example's canary.
    copy.edit(f"models/{MODEL}/model.yaml", "type: canary, canary_percent: 10", "type: all_at_once")
    trained = loop.mlops("run", MODEL, "--promote", _upstream(root, champion_env)[0])
    assert trained.returncode == 0, trained.stderr[-3000:]
    for environment in _upstream(root, champion_env)[1:]:
        promoted = loop.mlops("promote", MODEL, "--to", environment)
        assert promoted.returncode == 0, promoted.stderr[-3000:]
    main_before = copy.commit("release version 1")
    loop.pulumi_state.mkdir()
    bucket = loop.stack.settings.bucket  # every stack's bucket is the local stack's, on moto
    for stack in stacks:
        (loop.pulumi_state / f"{stack}.json").write_text(
            json.dumps({"image": RELEASED_IMAGE, "endpoints": {}, "bucket": bucket}),
            encoding="utf-8",
        )
    released = aliases_of(loop.client, MODEL)
    released_pins = loop.pins()
    assert released_pins[champion_env] == "1" and released_pins.get(first) in (None, "1")
    assert released[champion_env] == "1" and loop.versions() == ["1"]
    assert loop.mlops("sync", "--check").returncode == 0, "git and the registry agree"

    # 1. A pull request that changes the model: trained and gated against the real champion,
    # one report comment, nothing registered.
    git(root, "checkout", "-q", "-b", "more-trees")
    copy.edit(f"models/{MODEL}/model.yaml", "n_estimators: 100", "n_estimators: 120")
    pr_head = copy.commit("more trees")
    runs_before = _training_runs(loop)
    done = loop.run(
        "pr-better", "pull_request", _pull_request(copy, 7, main_before), "pull-request.yml"
    )
    assert done.returncode == 0, _log(done)
    assert len(loop.github.comments) == 1, loop.github.comments
    comment = loop.github.comments[0]["body"]
    assert f"`{MODEL}`: passed" in comment
    assert "not compared with a champion" not in comment.lower(), comment
    assert "champion (v1)" in comment, "compared with the released champion"
    pr_runs = _training_runs(loop) - runs_before
    assert len(pr_runs) == 1, "the pull request trained once"
    (pr_run,) = pr_runs
    assert loop.client.get_run(pr_run).data.tags[GIT_COMMIT_TAG] == pr_head
    assert loop.versions() == ["1"] and aliases_of(loop.client, MODEL) == released

    # 2. The merge: the run the pull request gated is registered (no training on main) and the
    # pins pull request to the chain's first environment is opened; no alias moves yet.
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge pull request #7", "more-trees")
    merged = git(root, "rev-parse", "HEAD")
    done = loop.run("merge", "push", _push(main_before, merged), "main.yml")
    assert done.returncode == 0, _log(done)
    assert _training_runs(loop) - runs_before == {pr_run}, "main must not train again"
    assert loop.versions() == ["1", "2"]
    assert loop.client.get_model_version(MODEL, "2").run_id == pr_run, "the gated run, registered"
    assert _pinned_by(loop.pins_pull_request("merge", first), first) == "2"
    body = loop.pins_pull_request("merge", first).with_suffix(".body.md").read_text("utf-8")
    assert f"Source: registered from PR run {pr_run}" in body, body
    # Registration marks the candidate (`challenger`); no environment's alias moves before the
    # pins pull request is reviewed and merged.
    assert aliases_of(loop.client, MODEL) == {**released, CHALLENGER: "2"}
    assert loop.pins() == released_pins, "main's pins change only through the pins PR"
    assert not [c for c in loop.pulumi_calls() if c["command"] == "up"], "no deploy yet"

    # 3. The pins pull request closed unmerged: git and the registry still agree.
    assert loop.mlops("sync", "--check").returncode == 0

    # 4. A change to the serving image merged: built and scanned without credentials, pushed
    # tagged by commit by the job holding the publish role, and every stack's `up` applies it.
    (root / "serving").mkdir(exist_ok=True)
    (root / "serving" / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    served = copy.commit("a new serving image")
    done = loop.run("image", "push", _push(merged, served), "main.yml")
    assert done.returncode == 0, _log(done)
    built = f"{ECR_REGISTRY}/mlops-serving:{served}"
    docker = (loop.work / "image" / "docker.log").read_text("utf-8").splitlines()
    assert docker[0] == f"docker build --file serving/Dockerfile --tag mlops-serving:{served} ."
    assert docker[1] == f"trivy mlops-serving:{served} severity=CRITICAL,HIGH exit-code=1"
    order = [line.split()[1] for line in docker]
    assert order == ["build", "mlops-serving:" + served, "save", "load", "tag", "push"], docker
    assert docker[-1] == f"docker push {built}"
    assumed = (loop.work / "image" / "aws-credentials.jsonl").read_text("utf-8")
    roles = {json.loads(line)["job"]: json.loads(line)["role"] for line in assumed.splitlines()}
    assert roles["push"] == PUBLISH_ROLE and "build" not in roles, "the build holds no role"
    ups = [c for c in loop.pulumi_calls() if c["command"] == "up"]
    assert [c["stack"] for c in ups] == stacks
    assert all(c["config"] == {"image": built} and c["sha"] == served for c in ups), ups
    # The deploys froze (with the registry role) and published (with the deploy role) the
    # baseline of the version their pins run, which the scheduled monitor reads.
    assert _baselines(loop, bucket) == {"1"}
    assert loop.versions() == ["1", "2"] and _training_runs(loop) - runs_before == {pr_run}
    deployed = len(ups)

    # 5. The pins pull request merged: `mlops sync` moves the alias, and each stack's `up`, one
    # at a time in the chain's order, applies the image the stack runs (none was built).
    git(root, "apply", str(loop.pins_pull_request("merge", first)))
    pinned = copy.commit(f"Promote {MODEL} to {first}")
    done = loop.run("pins-merge", "push", _push(served, pinned), "main.yml")
    assert done.returncode == 0, _log(done)
    assert aliases_of(loop.client, MODEL) == {**released, CHALLENGER: "2", first: "2"}
    assert loop.pins() == {**released_pins, first: "2"}
    assert loop.mlops("sync", "--check").returncode == 0
    ups = [c for c in loop.pulumi_calls() if c["command"] == "up"][deployed:]
    assert [c["stack"] for c in ups] == stacks
    for call in ups:
        assert call["config"] == {"image": built}, call
        assert call["sha"] == pinned and call["policy_packs"] == "infra/policy", call
        # The scaling check ran with the deploy role; no endpoint is live yet, nothing changed.
        assert call["refresh"] == "false", call
    assert "not live yet; `pulumi up` creates it" in done.stdout, _log(done)
    assert loop.versions() == ["1", "2"], "a pins merge registers nothing"
    assumed = (loop.work / "pins-merge" / "aws-credentials.jsonl").read_text("utf-8")
    roles = [json.loads(line) for line in assumed.splitlines()]
    assert [r["role"] for r in roles if r["job"] == "up"] == [REGISTRY_ROLE, DEPLOY_ROLE] * len(
        stacks
    ), "each up freezes with the registry role, then deploys and publishes with its own"
    assert _baselines(loop, bucket) == {"1", "2"}, "the newly pinned version's baseline"

    # 6. A worse pull request: rejected at the gate, its report says so, the registry unchanged.
    loop.github.comments.clear()
    git(root, "checkout", "-q", "-b", "stump")
    copy.edit(f"models/{MODEL}/model.yaml", "max_depth: 6", "max_depth: 1")
    copy.commit("a stump")
    done = loop.run("pr-worse", "pull_request", _pull_request(copy, 8, pinned), "pull-request.yml")
    assert done.returncode != 0, _log(done)
    assert "Success - Main Train" in done.stdout and "Failure - Main Gate" in done.stdout
    # act stops at the first failed job; GitHub goes on to the report job (`!cancelled()`), so
    # its two commands run here, on the parts the gate job uploaded.
    parts = loop.work / "pr-worse" / "artifacts"
    composed = loop.mlops("report", "--section", str(parts), "--infra-preview", str(parts),
                          "--output", str(parts / "comment.md"))  # fmt: skip
    assert composed.returncode == 0, composed.stderr[-3000:]
    posted = loop.mlops("comment", "--pr", "8", "--body", str(parts / "comment.md"),
                        env={"GITHUB_API_URL": loop.github.url, "GH_TOKEN": "a-fake-token",
                             "GITHUB_REPOSITORY": REPOSITORY})  # fmt: skip
    assert posted.returncode == 0, posted.stderr[-3000:]
    assert len(loop.github.comments) == 1, loop.github.comments
    assert f"`{MODEL}`: **rejected**" in loop.github.comments[0]["body"]
    assert loop.versions() == ["1", "2"]
    assert aliases_of(loop.client, MODEL) == {**released, CHALLENGER: "2", first: "2"}
    assert loop.pins() == {**released_pins, first: "2"}
    git(root, "checkout", "-q", "main")

    # 7. Drift reported by the monitor: retrained on main, gated against the champion, and a pins
    # pull request for the chain's first environment; no alias moves.
    drift = {"action": "drift-detected", "client_payload": {"model": MODEL}}
    done = loop.run("drift", "repository_dispatch", drift, "retrain.yml")
    assert done.returncode == 0, _log(done)
    assert loop.versions() == ["1", "2", "3"]
    assert _pinned_by(loop.pins_pull_request("drift", first), first) == "3"
    assert aliases_of(loop.client, MODEL) == {**released, CHALLENGER: "3", first: "2"}
    assert loop.pins() == {**released_pins, first: "2"}

    # 8. The model's cron: the same, for the schedule event GitHub sends.
    definition = yaml.safe_load((root / "models" / MODEL / "model.yaml").read_text("utf-8"))
    cron = {"schedule": definition["retraining"]["schedule"]}
    done = loop.run("cron", "schedule", cron, "retrain.yml")
    assert done.returncode == 0, _log(done)
    assert loop.versions() == ["1", "2", "3", "4"]
    assert _pinned_by(loop.pins_pull_request("cron", first), first) == "4"
    assert aliases_of(loop.client, MODEL) == {**released, CHALLENGER: "4", first: "2"}
    assert loop.pins() == {**released_pins, first: "2"}

    # 9. A retraining that loses (a change that reached main past the gates): rejected at the
    # gate against the champion; nothing registered, no pins pull request, no alias moved.
    copy.edit(f"models/{MODEL}/model.yaml", "max_depth: 6", "max_depth: 1")
    copy.commit("a stump, pushed to main")
    done = loop.run("drift-worse", "repository_dispatch", drift, "retrain.yml")
    assert done.returncode != 0, _log(done)
    assert "Failure - Main Train, gate, register and promote" in done.stdout, _log(done)
    assert "rejected" in done.stdout
    assert loop.versions() == ["1", "2", "3", "4"]
    assert not loop.pins_pull_request("drift-worse", first).exists(), "no pins pull request"
    assert aliases_of(loop.client, MODEL) == {**released, CHALLENGER: "4", first: "2"}
    assert loop.pins() == {**released_pins, first: "2"}
