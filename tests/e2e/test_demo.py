"""`make demo`, the README's first promise: the whole story runs and never touches real pins."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_tells_the_whole_story_in_a_scratch_copy(make_workspace: Any) -> None:
    workspace = make_workspace("demo")
    pins_before = workspace.pins_files()

    result = workspace.mlops("demo")

    assert result.exit_code == 0, result.output
    out = result.output
    # Both examples pass every gate, the worse candidate is rejected without a trace, and
    # production is promoted and rolled back.
    assert "penguins: promote:prod done" in out
    assert "seattle_weather: promote:prod done" in out
    assert "rejected: candidate for 'penguins' rejected" in out
    assert "registry unchanged: True" in out
    assert "rollback prod" in out
    # The demo works in its own copy under the state folder, never on the checkout's pins.
    assert workspace.pins_files() == pins_before
    assert (workspace.home / "demo" / "repo" / "environments" / "prod.yaml").is_file()
