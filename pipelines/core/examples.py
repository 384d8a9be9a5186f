"""Where the template's example models live, and a scratch repository built from them.

The examples (two models and their datasets) sit in models/ and data/ of the template, or in
tests/examples/ once ``mlops init --drop-examples`` moved them out of the folders the CLI, CI
and infra read. Adoption, both demos and the test suites find them here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.core.environment_chain import STANDARD_ENVIRONMENTS, Chain, write_fresh_environments
from pipelines.core.errors import DefinitionError

EXAMPLE_MODELS = ("penguins", "seattle_weather")
EXAMPLE_DATASETS = ("penguins", "seattle_weather")
# Where declined examples go: test fixtures, outside the folders the CLI, CI and infra read.
EXAMPLES_FIXTURES = Path("tests") / "examples"


def examples_root(root: Path) -> Path:
    """The folder holding the example models/ and data/: the checkout, or its test fixtures."""
    for candidate in (root, root / EXAMPLES_FIXTURES):
        models = all((candidate / "models" / m / "model.yaml").is_file() for m in EXAMPLE_MODELS)
        if models and all((candidate / "data" / d).is_dir() for d in EXAMPLE_DATASETS):
            return candidate
    raise DefinitionError(
        f"the demos need the example models {' and '.join(EXAMPLE_MODELS)} and their data, "
        f"in models/ and data/ or in {EXAMPLES_FIXTURES}/; found neither (restore them from "
        "the template, or adopt it with --keep-examples)",
        file=root,
    )


def demo_repository(source: Path, repo: Path) -> Path:
    """A scratch repository at ``repo``: the examples under ``source`` (``examples_root``) and
    the standard environments with nothing pinned. The demos and the test suites use it."""
    for folder in ("models", "data"):
        shutil.copytree(source / folder, repo / folder, dirs_exist_ok=True)
    write_fresh_environments(repo / "environments", Chain(STANDARD_ENVIRONMENTS))
    return repo
