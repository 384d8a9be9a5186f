"""Reproducible train/test splits: random (optionally stratified) or by time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.core.errors import Rejected

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pipelines.core.definitions import ModelDefinition


def split_indices(
    definition: ModelDefinition, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and held-out rows; the same inputs give the same split."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    spec = definition.split
    n = len(frame)
    n_test = int(np.ceil(n * spec.test_fraction))
    if n_test < 1 or n - n_test < 2:
        raise Rejected(
            f"{n} rows cannot be split into training and test rows with "
            f"test_fraction {spec.test_fraction}"
        )
    positions = np.arange(n)
    if spec.time_column:
        # Stable sort so rows sharing a timestamp keep their file order: reproducible.
        order = np.argsort(frame[spec.time_column].to_numpy(), kind="stable")
        return np.sort(order[: n - n_test]), np.sort(order[n - n_test :])
    stratify = None
    if definition.task.value == "classification" and spec.stratify:
        target = frame[definition.target]
        counts = target.value_counts()
        if (counts < 2).any():
            rare = ", ".join(map(str, counts[counts < 2].index))
            raise Rejected(
                f"cannot stratify the split: class(es) {rare} of {definition.target!r} have a "
                "single row; add data or set split.stratify: false"
            )
        stratify = target.to_numpy()
    try:
        train, test = train_test_split(
            positions, test_size=n_test, random_state=spec.seed, stratify=stratify
        )
    except ValueError as exc:
        raise Rejected(f"cannot split the data: {exc}") from exc
    return np.sort(train), np.sort(test)
