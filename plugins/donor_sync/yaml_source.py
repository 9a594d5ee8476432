"""Read a YAML file keeping where each value was written, so validation errors can name the line.

Shared by every configuration loader (standardize rules, CSV formats, webhook endpoints, UTM).

Pydantic reports an error by its location in the data (``("issue_actions", "invalid_email")``);
:func:`line_of` walks the composed YAML node tree along that location to the line it came from.
Two things YAML itself lets pass are refused with the file and line too: bytes that are not UTF-8
(:func:`read_config_text`) and a key written twice in one mapping (:func:`duplicate_keys`; YAML
would silently keep the last one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from donor_sync.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """Return the 1-based line of the value at ``loc`` in ``node`` (the deepest one found)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(key):
                    node = value_node
                    line = key_node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def read_config_text(path: Path) -> str:
    """Return the text of a UTF-8 configuration file.

    :raises ConfigError: the file cannot be read, or holds bytes that are not UTF-8 (naming the line).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def duplicate_keys(node: yaml.Node | None, path: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """Return (line, dotted key) of every key written twice in one mapping (YAML keeps the last)."""
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                found.append((key_node.start_mark.line + 1, ".".join((*path, key))))
            seen.add(key)
            found.extend(duplicate_keys(value_node, (*path, key)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(duplicate_keys(item, (*path, str(index))))
    return found


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Load ``path`` and validate it as ``model``.

    :raises ConfigError: naming the file, the line and the field of every problem.
    """
    text = read_config_text(path)
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    twice = duplicate_keys(node)
    if twice:
        raise ConfigError("; ".join(f"{path}: line {line}, {key}: written twice" for line, key in twice))
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if isinstance(p, int | str)]
            field = ".".join(str(p) for p in loc) or "(top level)"
            line = line_of(node, loc)
            where = f"line {line}, " if line else ""
            problems.append(f"{path}: {where}{field}: {err['msg']}")
        raise ConfigError("; ".join(problems)) from exc
