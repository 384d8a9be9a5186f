"""`mlops check`: every definition at once, before any data is read or any cloud name is made."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def _copy_model(workspace: Any, source: str, name: str) -> None:
    folder = workspace.root / "models" / name
    shutil.copytree(workspace.root / "models" / source, folder)
    path = folder / "model.yaml"
    path.write_text(path.read_text().replace(f"name: {source}", f"name: {name}", 1))


def test_models_whose_cloud_names_collide_are_refused(workspace: Any) -> None:
    first = sorted(p.name for p in (workspace.root / "models").iterdir())[0]
    _copy_model(workspace, first, "twin-model")
    assert workspace.mlops("check").exit_code == 0
    _copy_model(workspace, first, "twin_model")

    result = workspace.mlops("check")

    assert result.exit_code == 2
    assert "twin-model and twin_model" in result.output
    assert "'twin-model'" in result.output
