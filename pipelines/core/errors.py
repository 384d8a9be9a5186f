"""Exit codes and the errors that map onto them.

The exit codes are a contract: workflows branch on them (see ../shared/PRODUCT.md), so they are
defined once here and every command reports failure by raising one of these errors.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    REJECTED = 1  # a gate or data validation rejected the candidate
    BAD_INPUT = 2  # bad input or configuration; nothing was changed
    DRIFT = 3  # the monitor found drift


class MlopsError(Exception):
    """An expected failure with a message meant for the user, never a traceback."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(
        self, message: str, *, file: Path | str | None = None, field: str | None = None
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        where = ": ".join(part for part in (self.file, self.field) if part)
        return f"{where}: {self.message}" if where else self.message


class DefinitionError(MlopsError):
    """A model, dataset or pins file is malformed or inconsistent."""


class DataError(MlopsError):
    """The data a dataset definition points at cannot be read."""


class RegistryError(MlopsError):
    """The MLflow tracking server or registry is unreachable or refused a change."""


class Rejected(MlopsError):
    """A gate or data validation rejected the candidate; every reason is in the message."""

    exit_code = ExitCode.REJECTED


class PromotionError(MlopsError):
    """A promotion or rollback was refused before anything was changed."""
