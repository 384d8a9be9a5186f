"""Definition files are read strictly: a hostile YAML file is an error, never a hang or a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.definitions import load_model
from pipelines.core.errors import DefinitionError

pytestmark = pytest.mark.code

# Nine levels of nine aliases: about 387 million list items once expanded.
BOMB = "\n".join(
    ["  class_weight:", "    a0: &a0 [l, l, l, l, l, l, l, l, l]"]
    + [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)


def test_an_alias_bomb_is_refused_naming_the_file_and_line(repo: Path) -> None:
    path = repo / "models" / "penguins" / "model.yaml"
    text = path.read_text()
    path.write_text(text.replace("  params: {", BOMB + "\n  params_unused: {", 1))
    with pytest.raises(DefinitionError, match=r"aliases \(\*a0\) are not allowed") as caught:
        load_model(repo / "models", repo / "data", "penguins")
    assert "model.yaml" in caught.value.render()
    assert "line" in caught.value.render()
