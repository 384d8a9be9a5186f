"""A dataset definition reads data from the repository or S3, and never echoes much of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.datasets import load_dataset
from pipelines.core.errors import DataError
from pipelines.stages.validate import SHOWN_CHARACTERS, Violation

pytestmark = pytest.mark.data


def _dataset_with_source(repo: Path, source: str) -> Path:
    path = repo / "data" / "penguins" / "dataset.yaml"
    text = path.read_text()
    line = next(line for line in text.splitlines() if line.startswith("source:"))
    path.write_text(text.replace(line, f"source: {source}"))
    return path


@pytest.mark.parametrize("source", ["/proc/self/environ", "../../../outside.csv"])
def test_a_source_outside_the_repository_is_refused_naming_the_field(
    repo: Path, source: str
) -> None:
    dataset = load_dataset(_dataset_with_source(repo, source))
    with pytest.raises(DataError, match="outside the repository") as caught:
        dataset.read_bytes()
    assert caught.value.field == "source"


def test_a_symlink_that_leads_outside_the_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text("token\nghp_secret\n")
    (repo / "data" / "penguins" / "linked.csv").symlink_to(outside)
    dataset = load_dataset(_dataset_with_source(repo, "linked.csv"))
    with pytest.raises(DataError, match="outside the repository"):
        dataset.read_bytes()


def test_data_echoed_in_a_violation_is_cut_short() -> None:
    long_name = "x" * 500
    text = Violation(long_name, "unexpected_column", 3, "not declared", ["y" * 500]).render()
    assert long_name not in text and "y" * 500 not in text
    assert "x" * SHOWN_CHARACTERS in text
