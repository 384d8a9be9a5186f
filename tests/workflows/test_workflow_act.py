"""The workflows executed with `act` on the host, on a throwaway copy of the repository.

act runs jobs on this machine (`-P ubuntu-latest=-self-hosted`), copies the working tree in
place of actions/checkout, and resolves every pinned action to a stand-in under stand_ins/
(one --local-repository per exact ref). The setup action reuses this virtualenv (MLOPS_VENV),
so a run costs what the CLI costs: about 20 s for the penguins model.

The whole loop (pull requests, merges, pins, drift and cron) runs in sequence against one shared
registry in test_workflow_lifecycle.py; this file keeps what that story does not pass through.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_helpers import Copy, act

pytestmark = pytest.mark.workflows


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
