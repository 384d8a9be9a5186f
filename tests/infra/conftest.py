"""Fixtures of the infra suite; the mock runtime itself is in ``pulumi_mocks.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi_mocks import make_repo


@pytest.fixture(scope="session")
def repo_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Path]]:
    """Scratch repositories with chosen targets, strategies and pins, one folder each."""
    counter = iter(range(1000))

    def factory(**kwargs: Any) -> Path:
        return make_repo(tmp_path_factory.mktemp(f"repo{next(counter)}"), **kwargs)

    yield factory
