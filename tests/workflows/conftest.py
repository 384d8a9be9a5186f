"""Fixtures of the workflow tests (helpers live in workflow_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_helpers import Copy, make_copy


@pytest.fixture
def copy(tmp_path: Path) -> Copy:
    """A throwaway git repository with the project's files on main and a branch to change."""
    return make_copy(tmp_path)
