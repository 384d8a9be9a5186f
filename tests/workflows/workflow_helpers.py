"""Helpers for the workflow tests: the workflow files, throwaway git copies, and `act`.

A throwaway copy is a fresh git repository under tmp_path holding the files the workflows and
the CLI read, committed on ``main``; a test then changes it on a branch. Nothing in the real
checkout changes, and no real pin moves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from examples_root import EXAMPLES, EXAMPLES_DROPPED

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
STAND_INS = Path(__file__).resolve().parent / "stand_ins"
BIN = Path(sys.executable).parent
# What a copy needs: the CLI's inputs, the workflows and the files `make install` would read.
COPIED = (
    "models",
    "data",
    "environments",
    "pipelines",
    "schemas",
    ".github",
    "pyproject.toml",
    "requirements.lock",
    "Makefile",
    "README.md",
)
REPOSITORY = "example/mlops"
USES = re.compile(r"uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})")
# Pinned action -> stand-in folder; every other pinned action maps to the no-op stand-in.
STAND_IN_FOR = {
    "actions/checkout": "checkout",
    "actions/setup-python": "setup-python",
    "actions/cache": "cache",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "peter-evans/create-pull-request": "create-pull-request",
    "pulumi/actions": "pulumi",
    "aws-actions/configure-aws-credentials": "aws-credentials",
    "aws-actions/amazon-ecr-login": "ecr-login",
    "aquasecurity/trivy-action": "trivy",
}


def load_workflows() -> dict[str, dict[str, Any]]:
    """Every workflow file, parsed; PyYAML reads the ``on:`` key as True, so it is renamed."""
    docs = {}
    for path in sorted(WORKFLOWS.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if True in doc:
            doc["on"] = doc.pop(True)
        docs[path.name] = doc
    return docs


def pinned_actions() -> set[tuple[str, str]]:
    """(owner/repo[/path], sha) of every SHA-pinned ``uses:`` in workflows and actions."""
    files = [*WORKFLOWS.glob("*.yml"), *(REPO_ROOT / ".github" / "actions").rglob("action.yml")]
    return {m.groups() for f in files for m in USES.finditer(f.read_text(encoding="utf-8"))}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class Copy:
    """A throwaway git repository: ``base`` is the commit on main a change is compared with."""

    root: Path
    base: str

    def commit(self, message: str) -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message)
        return git(self.root, "rev-parse", "HEAD")

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{relative} no longer contains {old!r}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


def make_copy(tmp_path: Path, *, pulumi_project: bool = False) -> Copy:
    """A throwaway repository: the copied files committed on main, then a branch `change`.

    The example models and datasets join the repository's own in models/ and data/ wherever
    they live (``examples_root``): the tests change, plan and train them. ``pulumi_project``
    adds Pulumi.yaml and the stack files, which a deploy's steps read its stack's settings from.
    """
    root = tmp_path / "repo"
    root.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules")
    stack_files = [p.name for p in sorted(REPO_ROOT.glob("Pulumi*.yaml"))] if pulumi_project else []
    for name in (*COPIED, *stack_files):
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, root / name)
    if EXAMPLES_DROPPED:
        for kind in ("models", "data"):
            shutil.copytree(EXAMPLES / kind, root / kind, ignore=ignore, dirs_exist_ok=True)
    (root / ".gitignore").write_text(".mlops/\n__pycache__/\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    # act names the repository (github.repository) after the origin remote; nothing is fetched.
    git(root, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
    copy = Copy(root, "")
    copy.base = copy.commit("base")
    git(root, "checkout", "-q", "-b", "change")
    return copy


def mlops(root: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a workflow runs it, in ``root``, with the checkout's own code first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env["PYTHONPATH"] = str(root)
    if home is not None:
        env["MLOPS_HOME"] = str(home)
    return subprocess.run(
        [str(BIN / "mlops"), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def act(
    copy: Copy,
    event_name: str,
    event: dict[str, Any],
    job: str | None,
    tmp_path: Path,
    github_api: str = "http://127.0.0.1:9",  # nothing listens: no job may reach GitHub
    *,
    workflow: str | None = None,
    secrets: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run one job (and the jobs it needs) of the copy's workflows with act on the host,
    offline, with stand-ins; GitHub's API is ``github_api`` (a FakeGitHub in the tests).

    ``workflow`` (a file name under .github/workflows) with no ``job`` runs that whole workflow,
    as GitHub would for the event; ``secrets`` and ``env`` reach every job (``env`` also
    replaces this process's variables, such as PATH, for act itself).
    """
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event), encoding="utf-8")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(exist_ok=True)
    command = [
        str(BIN / "act"),
        event_name,
        *(["-j", job] if job else []),
        *(["-W", f".github/workflows/{workflow}"] if workflow else []),
        "--eventpath",
        str(event_file),
        "-P",
        "ubuntu-latest=-self-hosted",
        "--action-cache-path",
        str(tmp_path / "act-cache"),
        "--no-cache-server",
        "--action-offline-mode",
        "--env",
        f"MLOPS_VENV={sys.prefix}",
        "--env",
        f"MLOPS_HOME={copy.root / '.mlops'}",
        "--env",
        f"ACT_ARTIFACTS={artifacts}",
        "--env",
        f"GITHUB_API_URL={github_api}",
        "--secret",
        "GITHUB_TOKEN=a-fake-token",
    ]
    for name, value in (env or {}).items():
        command += ["--env", f"{name}={value}"]
    for name, value in (secrets or {}).items():
        command += ["--secret", f"{name}={value}"]
    for action, sha in sorted(pinned_actions()):
        stand_in = STAND_INS / STAND_IN_FOR.get(action, "noop")
        command += ["--local-repository", f"{action}@{sha}={stand_in}"]
    process_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "AWS_"))
    }
    process_env["GIT_PAGER"] = "cat"  # act gives steps a terminal; a pager would wait for a key
    process_env["HOME"] = str(tmp_path / "home")  # act keeps its settings file (~/.actrc) there
    process_env.update(env or {})
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / ".actrc").write_text("", encoding="utf-8")
    return subprocess.run(
        command,
        cwd=copy.root,
        env=process_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class LocalServer:
    """An HTTP handler served on a free port of 127.0.0.1 in a thread; stop() ends it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class FakeGitHub:
    """GitHub's issue-comment REST endpoints on 127.0.0.1, backed by a list, and the
    repository_dispatch endpoint, which records what it accepts in ``dispatches``; stop() ends it.

    A dispatch is refused (422) as GitHub's REST description refuses it
    (github/rest-api-description, "Create a repository dispatch event"): ``event_type`` a string
    of 1 to 100 characters, ``client_payload`` (optional) an object of at most 10 top-level
    properties. Accepted: 204, no content.
    """

    def __init__(self, comments: list[dict[str, Any]]) -> None:
        import urllib.parse

        self.comments = comments
        self.requests: list[tuple[str, str, str]] = []
        self.dispatches: list[dict[str, Any]] = []  # path, headers and body of each accepted
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                fake.requests.append((method, self.path, self.headers.get("Authorization", "")))
                path = self.path.split("?")[0]
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                page = int(query.get("page", ["1"])[0])
                if method == "POST" and re.fullmatch(r"/repos/[^/]+/[^/]+/dispatches", path):
                    event_type, payload = body.get("event_type"), body.get("client_payload", {})
                    if not (isinstance(event_type, str) and 0 < len(event_type) <= 100) or not (
                        isinstance(payload, dict) and len(payload) <= 10
                    ):
                        self._reply(422, {"message": "Invalid request."})
                        return
                    headers = dict(self.headers.items())
                    fake.dispatches.append({"path": path, "headers": headers, "body": body})
                    self.send_response(204)
                    self.end_headers()
                elif method == "GET" and path.endswith("/comments"):
                    self._reply(200, fake.comments[(page - 1) * 100 : page * 100])
                elif method == "POST" and path.endswith("/comments"):
                    comment = {"id": 1000 + len(fake.comments), "body": body["body"]}
                    comment["user"] = {"login": "github-actions[bot]"}
                    fake.comments.append(comment)
                    self._reply(201, comment)
                elif method == "PATCH" and "/issues/comments/" in path:
                    target = int(path.rsplit("/", 1)[1])
                    for comment in fake.comments:
                        if comment["id"] == target:
                            comment["body"] = body["body"]
                            self._reply(200, comment)
                            return
                    self._reply(404, {"message": "Not Found"})
                else:
                    self._reply(404, {"message": "Not Found"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def log_message(self, *args: Any) -> None:
                pass

        self.local = LocalServer(Handler)
        self.url = self.local.url

    def stop(self) -> None:
        self.local.stop()
