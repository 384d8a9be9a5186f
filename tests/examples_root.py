"""Where every suite finds the example models and datasets (penguins, seattle_weather).

In the template they live at the repository root (``models/``, ``data/``). ``mlops init
--drop-examples`` moves them to ``tests/examples/`` so that a team's repository deploys,
retrains and offers only its own models while its tests keep their fixtures. Tests that train,
serve, plan or read the examples take them from ``EXAMPLES`` and never from the root directly.

Scratch repositories (``copy_examples``) get the template's own chain, dev -> staging -> prod,
with nothing pinned, whatever chain the team chose: they test promotion mechanics, which do not
depend on the names. Tests of the team's own pins and stacks (tests/infra) ask for the root's
pins with ``team_pins=True``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.core.examples import EXAMPLES_FIXTURES, demo_repository

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / EXAMPLES_FIXTURES  # where `mlops init --drop-examples` moves them
# The fixture folder wins when it exists: after --drop-examples the root holds the team's models.
EXAMPLES = FIXTURES if (FIXTURES / "models").is_dir() else REPO_ROOT
EXAMPLE_MODELS = EXAMPLES / "models"
EXAMPLE_DATA = EXAMPLES / "data"
EXAMPLES_DROPPED = EXAMPLES != REPO_ROOT


def copy_examples(root: Path, *, team_pins: bool = False) -> Path:
    """A repository at ``root`` with the examples' models/ and data/, and either fresh
    dev/staging/prod pins or (``team_pins``) a copy of the root's own."""
    demo_repository(EXAMPLES, root)
    if team_pins:
        shutil.rmtree(root / "environments")
        shutil.copytree(REPO_ROOT / "environments", root / "environments")
    return root
