"""Helpers shared by the monitoring tests; a module of its own, as tests cannot import conftest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]
Writer = Callable[..., Path]


@dataclass
class Champion:
    settings: Settings
    version: str

    @property
    def env(self) -> dict[str, str | None]:
        return {
            "MLOPS_ROOT": str(self.settings.root),
            "MLOPS_HOME": str(self.settings.state_dir),
            "MLFLOW_TRACKING_URI": None,
            "MLOPS_TRACKING_URI": None,
            "MLOPS_MONITOR_CAPTURES": None,
            "GITHUB_TOKEN": None,
            "GITHUB_REPOSITORY": None,
            "COLUMNS": "250",
        }


def grown(frame: pd.DataFrame) -> pd.DataFrame:
    """A new colony: longer bills and flippers, heavier birds (inside the declared ranges)."""
    out = frame.copy()
    out["bill_length_mm"] = (out["bill_length_mm"] + 6).clip(upper=70)
    out["flipper_length_mm"] = (out["flipper_length_mm"] + 8).clip(upper=240)
    out["body_mass_g"] = (out["body_mass_g"] + 500).clip(upper=7000)
    return out
