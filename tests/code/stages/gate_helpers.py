"""Labels and predictions for the gate and statistics tests: a known truth, and predictions
wrong on chosen rows, so that a test controls exactly where two models disagree."""

from __future__ import annotations

import numpy as np

from pipelines.core.scoring import Predictions

ROWS = 300
CLASSES = np.array(["Adelie", "Chinstrap", "Gentoo"])


def truth(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(CLASSES, size=ROWS)


def wrong_on(y_true: np.ndarray, rows: np.ndarray) -> Predictions:
    """Predictions that are right everywhere except on ``rows``."""
    y_pred = y_true.copy()
    for row in rows:
        position = list(CLASSES).index(y_true[row])
        y_pred[row] = CLASSES[(position + 1) % len(CLASSES)]
    return Predictions(y_pred)


def random_rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(ROWS, size=count, replace=False)
