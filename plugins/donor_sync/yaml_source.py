"""Read a YAML file keeping where each value was written, so validation errors can name the line.

Shared by every configuration loader (standardize rules, CSV formats, webhook endpoints, UTM).

Pydantic reports an error by its location in the data (``("issue_actions", "invalid_email")``);
:func:`line_of` walks the composed YAML node tree along that location to the line it came from.
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


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Load ``path`` and validate it as ``model``.

    :raises ConfigError: naming the file, the line and the field of every problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
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
