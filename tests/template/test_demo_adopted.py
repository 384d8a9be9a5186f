"""`mlops demo` in an adopted repository: it finds the examples wherever adoption left them and
brings its own environments, so neither dropped examples nor other environments stop it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from template_helpers import flags, mlops, snapshot

pytestmark = pytest.mark.code


def test_the_demo_runs_on_the_examples_moved_to_the_test_fixtures(clone: Path) -> None:
    """Dropped examples and two environments of the team's own (no staging): the demo still
    trains, promotes to its own staging and prod and rolls back, in its scratch copy only."""
    adopted = mlops(clone, "init", *flags(environments="dev,live"), "--drop-examples")
    assert adopted.exit_code == 0, adopted.output
    pins = snapshot(clone / "environments")

    result = mlops(clone, "demo", timeout=180)

    assert result.exit_code == 0, result.output
    assert "rollback prod" in result.stdout, result.stdout[-2000:]
    workspace = clone / ".mlops/demo/repo"
    assert sorted(p.name for p in (workspace / "models").iterdir()) == [
        "penguins",
        "seattle_weather",
    ]
    assert sorted(p.stem for p in (workspace / "environments").glob("*.yaml")) == [
        "dev",
        "prod",
        "staging",
    ]
    assert snapshot(clone / "environments") == pins, "the repository's own pins never move"


@pytest.mark.parametrize("command", [["demo"], ["demo", "--drift"]], ids=["demo", "drift"])
def test_without_the_examples_anywhere_the_demos_say_where_they_looked(
    clone: Path, command: list[str]
) -> None:
    assert mlops(clone, "init", *flags(), "--drop-examples").exit_code == 0
    shutil.rmtree(clone / "tests/examples")

    result = mlops(clone, *command)

    assert result.exit_code == 2, result.output
    assert "penguins" in result.stderr and "tests/examples" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (clone / ".mlops/demo").exists() and not (clone / ".mlops/demo-drift").exists()
