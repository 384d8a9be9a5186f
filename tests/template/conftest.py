"""Fixtures of the template tests: one template repository per session, clones per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from template_helpers import git, make_template


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template repository (this working tree as commit A); tests must not change it."""
    return make_template(tmp_path_factory.mktemp("template") / "mlops-template")


@pytest.fixture
def clone(template: Path, tmp_path: Path) -> Path:
    """A team's fresh clone of the template, as `git clone` would make it."""
    target = tmp_path / "team"
    git(tmp_path, "clone", "--quiet", template.as_uri(), str(target))
    return target
