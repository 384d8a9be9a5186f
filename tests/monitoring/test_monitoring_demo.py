"""`mlops demo-drift` end to end: a real server on 127.0.0.1, capture, drift, retrain, promote."""

from __future__ import annotations

from pathlib import Path

import pytest
from examples_root import EXAMPLE_DATA, copy_examples

from monitoring.demo_loop import run_drift_demo
from pipelines.core.pins import load_environment, pinned
from pipelines.core.settings import Settings

pytestmark = pytest.mark.monitoring


def test_the_loop_detects_drift_and_promotes_a_retrained_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Normal traffic shows no drift, shifted traffic does, and the retrained v2 reaches prod."""
    root = copy_examples(tmp_path / "repo")
    settings = Settings(root=root, home=tmp_path / "state", tracking_uri=None)
    promoted = run_drift_demo(settings, overrides={"gates.latency.p99_ms": 60000})
    out = capsys.readouterr().out
    assert promoted
    steps = ["3. Monitor the normal window", "4. Monitor the shifted window", "5. Trigger"]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions)
    normal = out[positions[0] : positions[1]]
    shifted = out[positions[1] : positions[2]]
    assert "no drift" in normal and "drift detected" not in normal
    assert "drift detected" in shifted
    assert '"event_type": "drift-detected"' in out and "dry run, not sent" in out
    assert "registered penguins v2" in out
    # The story ends on what retraining achieved, not on "drift detected".
    achieved = out[out.index("8. What retraining achieved") :]
    assert "old champion v1:" in achieved and "new champion v2:" in achieved
    assert "labelled birds of the new colony that no model trained on" in achieved
    assert "still drifts from the new" in achieved or "no drift." in achieved
    workspace = settings.state_dir / "demo-drift" / "repo"
    prod = pinned(load_environment(workspace / "environments", "prod"), "penguins")
    assert prod is not None and prod.version == "2"
    # The checkout handed to the demo is untouched: it works on its own scratch copy.
    assert (root / "data" / "penguins" / "penguins.csv").read_bytes() == (
        EXAMPLE_DATA / "penguins" / "penguins.csv"
    ).read_bytes()
