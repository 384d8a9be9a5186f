"""Reading the repository's YAML files strictly, and turning schema errors into messages.

Every declarative file (model, dataset, pins) enters through ``load_yaml_model`` so that a
typo is reported the same way everywhere: the file, the dotted field and what was expected.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.core.errors import DefinitionError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """The base of every definition file's models: an unknown key is an error (a typo would
    otherwise be ignored silently), and a loaded definition cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently let win, and aliases.

    Aliases (``*name``) let a few lines expand into billions of nodes (a "billion laughs"
    file exhausts memory when the document is validated); definitions are small enough to
    spell out.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed here", event.start_mark
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise DefinitionError("file not found", file=path)
    try:
        # A SafeLoader subclass: no arbitrary Python objects.
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"not UTF-8 text ({exc.reason})", file=path) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"malformed YAML: {_one_line(str(exc))}", file=path) from exc


def describe_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    """(dotted field, message) pairs, with the rejected value where it helps."""
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "value_error":
            # Our own cross-field checks say "dotted.field: what is wrong"; lift the field out.
            message = message.removeprefix("Value error, ")
            named, sep, rest = message.partition(": ")
            if sep and field == "(top level)" and " " not in named:
                field, message = named, rest
        if error["type"] == "extra_forbidden":
            message = "unknown key (not part of the schema; check the spelling)"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif "input" in error and not isinstance(error["input"], dict | list):
            message = f"{message} (got {error['input']!r})"
        problems.append((field, message))
    return problems


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise DefinitionError(
            f"expected a mapping of keys at the top level, found {type(data).__name__}", file=path
        )
    return data


def validate_document(data: dict[str, Any], model: type[M], file: str) -> M:
    """Validate parsed YAML, reporting every problem with its dotted field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        if len(problems) == 1:
            field, message = problems[0]
            raise DefinitionError(message, file=file, field=field) from None
        listing = "\n".join(f"  {field}: {message}" for field, message in problems)
        raise DefinitionError(f"{len(problems)} problems:\n{listing}", file=file) from None


def load_yaml_model(path: Path, model: type[M]) -> M:
    return validate_document(read_yaml_mapping(path), model, str(path))


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step so a crash never leaves a half-written file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp makes the file owner-only; keep the mode the file had (or a normal one).
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _one_line(text: str) -> str:
    return " ".join(text.split())
