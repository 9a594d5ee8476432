"""Problems found in a mapping file, each naming the file, the line and the field.

Checks report a problem at a location in the file's data (``("objects", 2, "fields", 5, "from")``);
the line comes from the composed YAML node tree (:func:`donor_sync.yaml_source.line_of`) and the
field is spelled the way a reader finds it in the file: ``opportunity.StageName.from`` (object
name, destination field, then the key inside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from donor_sync.yaml_source import line_of

if TYPE_CHECKING:
    import yaml

    from donor_sync.delivery.mapping.model import DestinationMapping

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class Problem:
    """One problem of a mapping file; ``str()`` gives ``file:line: field: message``."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line if self.line is not None else '?'}: {self.field}: {self.message}"


def field_label(data: Any, loc: Sequence[int | str]) -> str:
    """Return a reader's name for ``loc``: object names and destination fields instead of indexes."""
    parts: list[str] = []
    node = data
    container = ""
    for i, key in enumerate(loc):
        label = str(key)
        child: Any = None
        if isinstance(node, dict) and isinstance(key, str):
            child = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            child = node[key]
            named = child.get("name" if container == "objects" else "to") if isinstance(child, dict) else None
            if container in ("objects", "fields") and isinstance(named, str) and named:
                label = named
        indexed = i + 1 < len(loc) and isinstance(loc[i + 1], int)
        if not (label in ("objects", "fields") and indexed) and (not parts or parts[-1] != label):
            parts.append(label)
        container = str(key)
        node = child
    return ".".join(parts) or "(top level)"


def problem_at(
    path: Path | str | None, node: yaml.Node | None, data: Any, loc: Sequence[int | str], message: str
) -> Problem:
    """Return the problem at ``loc`` of a file's data."""
    return Problem(
        file=str(path) if path is not None else "<mapping>",
        line=line_of(node, list(loc)) if node is not None else None,
        field=field_label(data, loc),
        message=message,
    )


def mapping_problem(mapping: DestinationMapping, loc: Sequence[int | str], message: str) -> Problem:
    """Return the problem at ``loc`` of a loaded mapping (its file and lines when it has them)."""
    data = mapping.model_dump(by_alias=True, mode="json", exclude_none=True)
    return problem_at(mapping.path, mapping._node, data, loc, message)
