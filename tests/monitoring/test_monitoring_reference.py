"""The reference is the monitored version's training rows, or a declared fallback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from monitoring_helpers import Champion

from monitoring.reference import load_reference
from pipelines.core.settings import Settings

pytestmark = pytest.mark.monitoring


def test_the_champions_exact_training_rows(champion: Champion) -> None:
    """With unchanged data, the reference is the rows listed in the run's split.json."""
    from pipelines.core.registry import connect
    from pipelines.core.tags import SPLIT_ARTIFACT

    client = connect(champion.settings)
    reference = load_reference(champion.settings, "penguins", client=client, env="prod")
    assert reference.version == champion.version
    run_id = client.get_model_version("penguins", champion.version).run_id
    rows = json.loads(Path(client.download_artifacts(run_id, SPLIT_ARTIFACT)).read_text())
    assert list(reference.frame.index) == rows["train"]
    assert "training rows of version 1 pinned in prod" in reference.source
    assert reference.metrics and "f1_macro" in reference.metrics


def test_no_registered_version_falls_back_to_the_dataset_split(settings: Settings) -> None:
    """An empty registry: the dataset's training split, and the source says why."""
    from pipelines.core.registry import connect

    reference = load_reference(settings, "penguins", client=connect(settings))
    assert reference.version is None
    assert len(reference.frame) == 233  # 333 rows, 30% held out
    assert reference.source.startswith("training split of the dataset (no champion")


def test_changed_data_falls_back_and_says_so(champion: Champion, tmp_path: Path) -> None:
    """Data changed since the version was trained: the current split, naming both fingerprints."""
    from pipelines.core.datasets import load_dataset_by_name, update_fingerprint
    from pipelines.core.registry import connect

    root = tmp_path / "repo"
    for folder in ("models", "data", "environments"):
        shutil.copytree(champion.settings.root / folder, root / folder)
    # Same registry (read only), another checkout whose data has grown.
    settings = Settings(root=root, home=champion.settings.state_dir, tracking_uri=None)
    dataset = load_dataset_by_name(settings.data_dir, "penguins")
    frame = pd.read_csv(dataset.source)
    pd.concat([frame, frame.head(30)]).to_csv(dataset.source, index=False)
    old, new = update_fingerprint(dataset)
    reference = load_reference(settings, "penguins", client=connect(settings), env="prod")
    assert reference.version == champion.version
    assert old in reference.source and new in reference.source
    assert len(reference.frame) == 363 - 109  # the current data's training split
