"""The workflows executed with `act` on the host, on a throwaway copy of the repository.

act runs jobs on this machine (`-P ubuntu-latest=-self-hosted`), copies the working tree in
place of actions/checkout, and resolves every pinned action to a stand-in under stand_ins/
(one --local-repository per exact ref). The setup action reuses this virtualenv (MLOPS_VENV),
so a run costs what the CLI costs: about 20 s for the penguins model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import REPOSITORY, Copy, act, git

pytestmark = pytest.mark.workflows


def pull_request(copy: Copy) -> dict[str, Any]:
    head = git(copy.root, "rev-parse", "HEAD")
    return {
        "pull_request": {
            "number": 7,
            "base": {"sha": copy.base, "ref": "main"},
            "head": {"sha": head, "ref": "change", "repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY},
    }


def test_pull_request_train_and_gate_passes_for_a_good_change(copy: Copy, tmp_path: Path) -> None:
    copy.edit("models/penguins/model.yaml", "n_estimators: 100", "n_estimators: 50")
    copy.commit("a smaller forest")
    done = act(copy, "pull_request", pull_request(copy), "train-and-gate", tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "penguins: retrain: model definition changed" in log
    assert "gate (penguins)" in log
    assert "gate (seattle_weather)" not in log, "an unchanged model must not be retrained"
    section = tmp_path / "artifacts" / "report-penguins" / "report" / "penguins.section.md"
    text = section.read_text(encoding="utf-8")
    assert "`penguins`: passed" in text
    assert "| threshold:accuracy | pass |" in text
    assert (section.parent / "penguins-card" / "model_card.md").is_file()
    assert not (Path(__file__).resolve().parents[2] / ".mlops" / "act").exists()


def test_pull_request_train_and_gate_fails_at_the_gate_for_a_worse_change(
    copy: Copy, tmp_path: Path
) -> None:
    copy.edit("models/penguins/model.yaml", "max_depth: 6", "max_depth: 1")
    copy.commit("a stump")
    done = act(copy, "pull_request", pull_request(copy), "train-and-gate", tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-4000:]
    assert "Success - Main Train" in log, "it must fail at the gate, not before"
    assert "Failure - Main Gate" in log
    assert "rejected" in log
    section = tmp_path / "artifacts" / "report-penguins" / "report" / "penguins.section.md"
    text = section.read_text(encoding="utf-8")
    assert "`penguins`: **rejected**" in text, "the report still describes the rejection"
    assert "**FAIL**" in text


def test_drift_dispatch_retrains_gates_and_proposes_the_pins(copy: Copy, tmp_path: Path) -> None:
    event = {"action": "drift-detected", "client_payload": {"model": "penguins"}}
    done = act(copy, "repository_dispatch", event, "retrain", tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "gate (seattle_weather)" not in log
    assert "promote (penguins to staging)" in log
    diff = tmp_path / "artifacts" / "pull-requests" / "promote_staging_penguins.diff"
    assert "penguins" in diff.read_text(encoding="utf-8"), "the promotion PR moves the pin"
    # The real checkout's pins are untouched: act worked on its own copy of the copy.
    assert git(copy.root, "status", "--porcelain", "--", "environments") == ""


def test_retraining_that_loses_at_the_gate_proposes_nothing(copy: Copy, tmp_path: Path) -> None:
    copy.edit("models/penguins/model.yaml", "max_depth: 6", "max_depth: 1")
    copy.commit("a stump")
    event = {"action": "drift-detected", "client_payload": {"model": "penguins"}}
    done = act(copy, "repository_dispatch", event, "retrain", tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-4000:]
    assert "Failure - Main Train, gate, register and promote" in log
    assert "rejected" in log
    assert not (tmp_path / "artifacts" / "pull-requests").exists(), "no promotion PR"
