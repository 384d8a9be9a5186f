"""The workflows executed with `act` on the host, on a throwaway copy of the repository.

act runs jobs on this machine (`-P ubuntu-latest=-self-hosted`), copies the working tree in
place of actions/checkout, and resolves every pinned action to a stand-in under stand_ins/
(one --local-repository per exact ref). The setup action reuses this virtualenv (MLOPS_VENV),
so a run costs what the CLI costs: about 20 s for the penguins model.

The whole loop (pull requests, merges, pins, drift, cron and a retraining that loses) runs in
sequence against one shared registry in test_workflow_lifecycle.py; this file keeps what that
story does not pass through: a repository without the shared registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_helpers import Copy, act

pytestmark = pytest.mark.workflows


def test_without_the_shared_registry_retraining_fails_loudly_and_proposes_nothing(
    copy: Copy, tmp_path: Path
) -> None:
    """Item 9: no MLFLOW_TRACKING_URI secret, so a version would be registered in the runner's
    own registry and thrown away with it: the promotion job fails before training."""
    event = {"action": "drift-detected", "client_payload": {"model": "penguins"}}
    done = act(copy, "repository_dispatch", event, "retrain", tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-4000:]
    assert "Failure - Main A promotion needs the shared registry" in log
    assert "No MLFLOW_TRACKING_URI secret" in log
    assert "Train, gate, register and promote" not in log.split("A promotion needs")[1]
    assert not (tmp_path / "artifacts" / "pull-requests").exists(), "no promotion PR"
    assert not (copy.root / ".mlops" / "mlflow.db").exists(), "nothing trained or registered"
