"""The fingerprint contract: how a model's definition, dataset and training code are hashed.

``mlops plan`` compares these to decide what to retrain, and ``register`` writes the same values
as lineage tags, so both must come from here. Definitions are hashed after validation, as
canonical JSON, so reformatting a YAML file or reordering its keys changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from pipelines.core.tags import (
    CODE_FINGERPRINT_TAG,
    DATA_FINGERPRINT_TAG,
    DATASET_DEFINITION_FINGERPRINT_TAG,
    DEFINITION_FINGERPRINT_TAG,
    FINGERPRINT_TAG,
)

if TYPE_CHECKING:
    from pipelines.core.definitions import Model

# The whole pipelines package (not just core/): what `mlops plan` hashes in a checkout, so a run's
# code fingerprint and the plan's agree and a gated run can be found again on main.
PIPELINE_DIR = Path(__file__).resolve().parents[1]


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_fingerprint(document: BaseModel | dict[str, Any]) -> str:
    data = document.model_dump(mode="json") if isinstance(document, BaseModel) else document
    return _sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


def code_fingerprint(package_dir: Path = PIPELINE_DIR) -> str:
    """Hash of the training code: every Python file of the pipelines package, by relative path."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class Fingerprints:
    definition: str
    dataset_definition: str
    data: str
    code: str

    @property
    def combined(self) -> str:
        parts = (self.definition, self.dataset_definition, self.data, self.code)
        return _sha256("|".join(parts).encode())

    def as_tags(self) -> dict[str, str]:
        return {
            DEFINITION_FINGERPRINT_TAG: self.definition,
            DATASET_DEFINITION_FINGERPRINT_TAG: self.dataset_definition,
            DATA_FINGERPRINT_TAG: self.data,
            CODE_FINGERPRINT_TAG: self.code,
            FINGERPRINT_TAG: self.combined,
        }


def model_fingerprints(model: Model, data_fingerprint: str | None = None) -> Fingerprints:
    """Fingerprints of a model; ``data_fingerprint`` is the measured one when data was read."""
    dataset = model.dataset.definition
    return Fingerprints(
        definition=canonical_fingerprint(model.definition),
        dataset_definition=canonical_fingerprint(dataset),
        data=data_fingerprint or dataset.fingerprint,
        code=code_fingerprint(),
    )


def git_commit(root: Path) -> str:
    """The commit being built: CI's GITHUB_SHA, else HEAD with a -dirty mark, else unknown."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
