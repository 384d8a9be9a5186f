"""Dataset definitions: the schema of a table and the fingerprint of the data it points at.

A dataset lives in ``data/<name>/dataset.yaml``. Its ``fingerprint`` is the SHA-256 of the bytes
of its source, so changing the data without updating the definition fails validation, and
updating it is a visible change in git.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from pipelines.core.errors import DataError, DefinitionError
from pipelines.core.yamlfile import Strict, load_yaml_model, read_yaml, write_text_atomically

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
FINGERPRINT_PATTERN = r"^sha256:[0-9a-f]{64}$"
DATASET_FILE = "dataset.yaml"
# How a bool column may spell its values in a file (case-insensitive); the monitor reads
# captured values with the same spellings.
BOOL_TRUE = frozenset({"true", "1", "yes", "y", "t"})
BOOL_FALSE = frozenset({"false", "0", "no", "n", "f"})


class ColumnType(StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    CATEGORY = "category"
    DATETIME = "datetime"

    @property
    def is_numeric(self) -> bool:
        return self in (ColumnType.INT, ColumnType.FLOAT)


class ColumnSpec(Strict):
    type: ColumnType
    description: str = ""
    nullable: bool = False
    min: float | None = Field(default=None, description="Smallest allowed value (numeric).")
    max: float | None = Field(default=None, description="Largest allowed value (numeric).")
    categories: list[str] | None = Field(
        default=None, description="Allowed values (category columns).", min_length=1
    )

    @model_validator(mode="after")
    def _rules_fit_the_type(self) -> ColumnSpec:
        if (self.min is not None or self.max is not None) and not self.type.is_numeric:
            raise ValueError(f"min/max apply to int and float columns, not {self.type.value}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.type is ColumnType.CATEGORY and not self.categories:
            raise ValueError("a category column must list its categories")
        if self.categories is not None and self.type is not ColumnType.CATEGORY:
            raise ValueError("categories apply only to columns of type category")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError("categories contain duplicates")
        return self


class RowBounds(Strict):
    min: Annotated[int, Field(ge=1)] = 1
    max: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RowBounds:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is smaller than min ({self.min})")
        return self


class DatasetDefinition(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    source: Annotated[
        str,
        Field(
            min_length=1,
            description="Path relative to dataset.yaml, or an s3://bucket/key URI.",
        ),
    ]
    format: Annotated[str, Field(pattern=r"^(csv|parquet)$")] | None = None
    fingerprint: Annotated[str, Field(pattern=FINGERPRINT_PATTERN)]
    rows: RowBounds = RowBounds()
    allow_extra_columns: bool = False
    columns: Annotated[dict[str, ColumnSpec], Field(min_length=1)]

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        return "parquet" if self.source.lower().endswith((".parquet", ".pq")) else "csv"


class Dataset:
    """A validated definition together with where it was read from."""

    def __init__(self, definition: DatasetDefinition, path: Path) -> None:
        self.definition = definition
        self.path = path

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def source(self) -> str:
        """The local path (resolved against the definition's folder) or the s3:// URI.

        A local source must lie inside the repository: a definition in a pull request must not
        make CI read (and print, in validation errors) files such as /proc/self/environ.
        """
        source = self.definition.source
        if source.startswith("s3://"):
            return source
        resolved = (self.path.parent / source).resolve()
        root = self.repository_root
        if not resolved.is_relative_to(root):
            raise DataError(
                f"{source!r} resolves to {resolved}, outside the repository ({root}); keep data "
                "under data/ or use s3://",
                file=self.path,
                field="source",
            )
        return str(resolved)

    @property
    def repository_root(self) -> Path:
        """The folder holding data/<name>/dataset.yaml (or the definition's folder elsewhere)."""
        folder = self.path.resolve().parent
        return folder.parent.parent if folder.parent.name == "data" else folder

    def read_bytes(self) -> bytes:
        return read_source_bytes(self.source, definition=self.path)

    def content_fingerprint(self) -> str:
        return fingerprint_bytes(self.read_bytes())


def fingerprint_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_source_bytes(source: str, *, definition: Path) -> bytes:
    if source.startswith("s3://"):
        return _read_s3(source, definition=definition)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"data source {source} does not exist", file=definition, field="source")
    return path.read_bytes()


def _read_s3(uri: str, *, definition: Path) -> bytes:
    import boto3
    import botocore.exceptions

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise DataError(f"{uri} is not an s3://bucket/key URI", file=definition, field="source")
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        data: bytes = body.read()
        return data
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise DataError(f"cannot read {uri}: {exc}", file=definition, field="source") from exc


def dataset_path(data_dir: Path, name: str) -> Path:
    return data_dir / name / DATASET_FILE


def load_dataset(path: Path) -> Dataset:
    definition = load_yaml_model(path, DatasetDefinition)
    if path.parent.name != definition.name:
        raise DefinitionError(
            f"name {definition.name!r} must match its folder name {path.parent.name!r}",
            file=path,
            field="name",
        )
    return Dataset(definition, path)


def s3_object_arns(data_dir: Path) -> list[str]:
    """The S3 objects the datasets under ``data_dir`` are read from, as IAM resource ARNs,
    sorted: what a CI role that trains must be allowed to get (and nothing more)."""
    arns = set()
    for path in sorted(data_dir.glob(f"*/{DATASET_FILE}")):
        source = load_dataset(path).definition.source
        bucket, _, key = source.removeprefix("s3://").partition("/")
        if source.startswith("s3://") and bucket and key:
            arns.add(f"arn:aws:s3:::{bucket}/{key}")
    return sorted(arns)


def load_dataset_by_name(data_dir: Path, name: str) -> Dataset:
    if not re.fullmatch(NAME_PATTERN, name):
        raise DefinitionError(f"{name!r} is not a valid dataset name")
    path = dataset_path(data_dir, name)
    if not path.is_file():
        known = sorted(p.parent.name for p in data_dir.glob(f"*/{DATASET_FILE}"))
        raise DefinitionError(
            f"dataset {name!r} not found (no {path}); known datasets: {', '.join(known) or 'none'}"
        )
    return load_dataset(path)


UNSET_FINGERPRINT = "sha256:" + "0" * 64


def add_fingerprint_line(path: Path) -> bool:
    """Give a new dataset.yaml without ``fingerprint:`` a placeholder line for --write to fill.

    Returns whether the file changed. A file that cannot be read as a mapping is left alone,
    so that loading it reports the real problem.
    """

    if not path.is_file():
        return False
    try:
        data = read_yaml(path)
    except DefinitionError:
        return False
    if not isinstance(data, dict) or "fingerprint" in data:
        return False
    text = path.read_text(encoding="utf-8")
    write_text_atomically(
        path, text.rstrip("\n") + f"\nfingerprint: {UNSET_FINGERPRINT}  # set by --write\n"
    )
    return True


def update_fingerprint(dataset: Dataset) -> tuple[str, str]:
    """Rewrite the ``fingerprint:`` line of dataset.yaml in place, keeping comments and layout."""

    old = dataset.definition.fingerprint
    new = dataset.content_fingerprint()
    text = dataset.path.read_text(encoding="utf-8")
    if old != new:
        if text.count(old) != 1:
            raise DefinitionError(
                "cannot find a single fingerprint line to update", file=dataset.path
            )
        write_text_atomically(dataset.path, text.replace(old, new))
    return old, new


def schema_summary(definition: DatasetDefinition) -> dict[str, Any]:
    """The column schema as plain data, for lineage tags and the model card."""
    return {
        name: spec.model_dump(exclude_defaults=True) for name, spec in definition.columns.items()
    }
