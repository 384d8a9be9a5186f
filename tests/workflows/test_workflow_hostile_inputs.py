"""Changes and inputs the plan and the pull-request report must not get wrong (review findings)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import BIN, Copy, LocalServer, git, mlops

from pipelines.gitops.plan import plan_change
from pipelines.gitops.pr_report import MARKER, ModelResult, compose, render_model

pytestmark = pytest.mark.workflows


def _model_plan(copy: Copy) -> dict[str, tuple[bool, list[str]]]:
    result = plan_change(copy.root, copy.base)
    return {m.model: (m.affected, m.reasons) for m in result.models}


def test_deployment_change_is_infra_and_retrains_nothing(copy: Copy) -> None:
    # infra/model_plan.py builds endpoints from deployment: pulumi must run, training need not.
    copy.edit("models/seattle_weather/model.yaml", "target: sagemaker", "target: kubernetes")
    copy.commit("move to kubernetes")
    result = plan_change(copy.root, copy.base)
    assert result.infra is True
    assert result.affected == []
    reasons = {m.model: m.reasons for m in result.models}
    assert "infrastructure only" in reasons["seattle_weather"][0]


def test_monitoring_change_is_infra(copy: Copy) -> None:
    copy.edit(
        "models/seattle_weather/model.yaml", 'schedule: "30 * * * *"', 'schedule: "0 * * * *"'
    )
    copy.commit("monitor hourly on the hour")
    result = plan_change(copy.root, copy.base)
    assert (result.infra, result.affected) == (True, [])


def test_training_change_alone_is_not_infra(copy: Copy) -> None:
    copy.edit("models/seattle_weather/model.yaml", "max_iter: 200", "max_iter: 100")
    copy.commit("fewer iterations")
    result = plan_change(copy.root, copy.base)
    assert (result.infra, result.affected) == (False, ["seattle_weather"])


def test_deleted_model_is_infra(copy: Copy) -> None:
    shutil.rmtree(copy.root / "models" / "seattle_weather")
    copy.commit("drop a model")
    result = plan_change(copy.root, copy.base)
    assert result.infra is True
    assert result.removed_models == ["seattle_weather"]


def test_renamed_model_is_infra_and_new(copy: Copy) -> None:
    git(copy.root, "mv", "models/penguins", "models/penguins_v2")
    copy.edit("models/penguins_v2/model.yaml", "name: penguins", "name: penguins_v2")
    copy.commit("rename")
    result = plan_change(copy.root, copy.base)
    assert result.infra is True
    assert result.removed_models == ["penguins"]
    assert _model_plan(copy)["penguins_v2"] == (True, ["new model"])


def test_new_model_is_infra(copy: Copy) -> None:
    shutil.copytree(copy.root / "models" / "penguins", copy.root / "models" / "penguins_b")
    copy.edit("models/penguins_b/model.yaml", "name: penguins", "name: penguins_b")
    copy.commit("another model")
    assert plan_change(copy.root, copy.base).infra is True


def test_deleting_a_pinned_model_fails_the_plan(copy: Copy) -> None:
    # The repository's first pins file (dev.yaml in the template; init may have renamed it).
    dev = sorted((copy.root / "environments").glob("*.yaml"))[0]
    pin = {
        "version": "1",
        "run_id": "r",
        "model_uri": "models:/seattle_weather/1",
        "fingerprint": "sha256:x",
        "data_fingerprint": "sha256:y",
        "git_commit": "abc",
        "promoted_at": "2026-01-01T00:00:00+00:00",
    }
    text = dev.read_text(encoding="utf-8").replace(
        "models: {}", "models:\n  seattle_weather: " + json.dumps(pin)
    )
    dev.write_text(text, encoding="utf-8")
    copy.commit("pin")
    base = git(copy.root, "rev-parse", "HEAD")
    shutil.rmtree(copy.root / "models" / "seattle_weather")
    copy.commit("drop a pinned model")
    done = mlops(copy.root, "plan", "--base", base, "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert dev.name in done.stderr and "seattle_weather" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_base_says_why(copy: Copy) -> None:
    done = mlops(copy.root, "plan", "--base", "nosuchref")
    assert done.returncode == 2
    assert "no such commit or ref" in done.stderr


# --- the pull-request report ---------------------------------------------------------------

HOSTILE = (
    "</details>\n# Injected heading\n<img src=x onerror=alert(1)> <!-- mlops-report --> "
    "[click](https://evil.example) | col"
)


def _result(tmp_path: Path, **overrides: Any) -> ModelResult:
    card = tmp_path / "model_card.md"
    card.write_text(f"# Model card: penguins\n\n{HOSTILE}\n\n## Metrics\n", encoding="utf-8")
    values: dict[str, Any] = {
        "model": "penguins",
        "run_id": "abc",
        "passed": False,
        "metrics": {"accuracy": 0.9},
        "champion": None,
        "champion_metrics": {},
        "gates": [
            {"gate": "champion", "passed": False, "measured": "<b>x</b>", "detail": HOSTILE},
            {"gate": "size", "passed": True, "measured": 1.0, "threshold": HOSTILE},
        ],
        "primary_metric": "accuracy",
        "card": card,
        "plots": [],
    }
    values.update(overrides)
    return ModelResult(**values)


def test_user_text_cannot_break_the_report(tmp_path: Path) -> None:
    text = compose([render_model(_result(tmp_path))], [])
    assert text.startswith(MARKER)
    assert text.count(MARKER) == 1  # the description cannot plant a second marker
    assert text.count("</details>") == 1  # only the card's own fold closes
    assert "<img" not in text and "<b>" not in text
    assert "\n# Injected" not in text  # no heading from user text
    for line in text.splitlines():
        if line.startswith("| champion") or line.startswith("| size"):
            assert line.count(" | ") == 4, line  # a pipe in user text does not add a column
            assert "[click](" not in line  # no live link from a gate's text


def test_preview_cannot_close_its_fence(tmp_path: Path) -> None:
    preview = tmp_path / "dev<img>.txt"
    preview.write_text("````\n</details>\n# heading\n", encoding="utf-8")
    text = compose([], [preview])
    assert "`````" in text  # a fence longer than any backtick run in the preview
    assert "<code>dev&lt;img&gt;</code>" in text


def test_report_stays_under_githubs_limit(tmp_path: Path) -> None:
    big_card = tmp_path / "big_card.md"
    big_card.write_text("x" * 50_000, encoding="utf-8")
    sections = [render_model(_result(tmp_path, card=big_card)) for _ in range(3)]
    previews = []
    for env in ("dev", "staging", "prod"):
        path = tmp_path / f"{env}.txt"
        path.write_text("+ resource\n" * 8_000, encoding="utf-8")
        previews.append(path)
    text = compose(sections, previews)
    assert len(text) < 65_536
    assert "cut to fit GitHub's comment size limit" in text
    assert text.count("<details>") == text.count("</details>")  # no fold left open
    assert all(f"<code>{env}</code>" in text for env in ("dev", "staging", "prod"))


# --- posting the comment -------------------------------------------------------------------


class _Server:
    """127.0.0.1 answering every request with one status and body; stop() ends it."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.local = LocalServer(Handler)
        self.url = self.local.url

    def stop(self) -> None:
        self.local.stop()


def _comment(tmp_path: Path, api_url: str) -> subprocess.CompletedProcess[str]:
    body = tmp_path / "report.md"
    body.write_text(f"{MARKER}\nhello\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env["GH_TOKEN"] = TOKEN
    command = ["comment", "--pr", "1", "--body", str(body), "--repository", "o/r"]
    return subprocess.run(
        [str(BIN / "mlops"), *command, "--api-url", api_url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


TOKEN = "ghs_secret_token_value"


@pytest.mark.parametrize("url", ["not a url", "http://[::1", "ftp://example.com", "http://h:x"])
def test_bad_api_url_is_bad_input(tmp_path: Path, url: str) -> None:
    done = _comment(tmp_path, url)
    assert done.returncode == 2, done.stderr
    assert "--api-url" in done.stderr
    assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr


def test_html_answer_is_bad_input(tmp_path: Path) -> None:
    server = _Server(200, b"<html>login</html>", "text/html")
    try:
        done = _comment(tmp_path, server.url)
    finally:
        server.stop()
    assert done.returncode == 2, done.stderr
    assert "not JSON" in done.stderr
    assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr


def test_refusal_carries_githubs_reason(tmp_path: Path) -> None:
    refusal = {"message": "Validation Failed", "errors": [{"message": "body is too long"}]}
    server = _Server(422, json.dumps(refusal).encode(), "application/json")
    try:
        done = _comment(tmp_path, server.url)
    finally:
        server.stop()
    assert done.returncode == 2, done.stderr
    assert "HTTP 422" in done.stderr and "body is too long" in done.stderr
    assert TOKEN not in done.stdout + done.stderr
