"""Load the field mapping files and report every problem with its file, line and field.

:func:`validate_file` returns all problems of a file at once (shape errors from pydantic and the
checks of :mod:`donor_sync.delivery.mapping.checks`), for ``donor-sync mapping validate``;
:func:`load_mapping` raises a :class:`~donor_sync.errors.ConfigError` listing them, for code that
needs a usable mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.delivery.mapping.checks import PartialObject, check_document
from donor_sync.delivery.mapping.model import DestinationMapping, FieldMapping, ObjectMapping, key_text
from donor_sync.delivery.mapping.problems import Problem, problem_at
from donor_sync.errors import ConfigError
from donor_sync.paths import include_dir
from donor_sync.yaml_source import duplicate_keys


def mappings_dir() -> Path:
    """Return the folder of the shipped destination mappings."""
    return include_dir() / "mappings" / "destinations"


def shipped_mapping_paths() -> list[Path]:
    """Return the shipped mapping files, by name."""
    return sorted(mappings_dir().glob("*.yaml"))


def mapping_path(destination: str) -> Path:
    """Return the shipped mapping file of ``destination``."""
    return mappings_dir() / f"{destination}.yaml"


def _loc(err: Any) -> tuple[int | str, ...]:
    return tuple(p for p in err["loc"] if isinstance(p, int | str))


def _message(err: Any) -> str:
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


def validate_text(text: str, path: Path | str) -> tuple[DestinationMapping | None, list[Problem]]:
    """Validate a mapping file's text; return the mapping (None when it has problems) and problems."""
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, [Problem(str(path), line, "(yaml)", f"not valid YAML: {exc}")]
    data = {} if data is None else data
    problems = [Problem(str(path), line, key, "written twice") for line, key in duplicate_keys(node)]
    mapping: DestinationMapping | None = None
    try:
        mapping = DestinationMapping.model_validate(data)
    except ValidationError as exc:
        problems += [problem_at(path, node, data, _loc(e), _message(e)) for e in exc.errors()]
    objects, tables, partials = _valid_parts(data, mapping)
    for loc, message in check_document(data, objects, tables, partials):
        problems.append(problem_at(path, node, data, loc, message))
    problems = list(dict.fromkeys(problems))
    problems.sort(key=lambda p: (p.line or 0, p.field))
    if problems:
        return None, problems
    assert mapping is not None
    mapping._path = Path(path)
    mapping._node = node
    return mapping, []


def _valid_parts(
    data: Any, mapping: DestinationMapping | None
) -> tuple[list[tuple[int, ObjectMapping]], dict[str, Any], list[PartialObject]]:
    """Return the objects valid by themselves (with their index), the tables, and the valid fields
    of the other objects, so their own checks run even when the file as a whole is not valid."""
    if mapping is not None:
        return list(enumerate(mapping.objects)), dict(mapping.tables), []
    if not isinstance(data, dict):
        return [], {}, []
    objects: list[tuple[int, ObjectMapping]] = []
    partials: list[PartialObject] = []
    raw = data.get("objects")
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            objects.append((i, ObjectMapping.model_validate(item)))
        except ValidationError:
            partial = _partial(i, item)
            if partial is not None:
                partials.append(partial)
    tables = data.get("tables")
    valid_tables = {
        str(name): {key_text(k): v for k, v in table.items()}
        for name, table in (tables.items() if isinstance(tables, dict) else [])
        if isinstance(table, dict)
    }
    return objects, valid_tables, partials


def _partial(index: int, item: Any) -> PartialObject | None:
    """Return the valid fields of an invalid object whose source kind is valid."""
    if not isinstance(item, dict) or item.get("source") not in SOURCE_FIELDS:
        return None
    fields: list[tuple[int, FieldMapping]] = []
    raw_fields = item.get("fields")
    for j, raw_field in enumerate(raw_fields if isinstance(raw_fields, list) else []):
        try:
            fields.append((j, FieldMapping.model_validate(raw_field)))
        except ValidationError:
            continue
    external_id = item.get("external_id")
    shell = ObjectMapping.model_construct(
        name=str(item.get("name")),
        source=item["source"],
        key=str(item.get("key")),
        external_id=external_id if isinstance(external_id, str) else None,
    )
    return PartialObject(index, shell, fields)


def validate_file(path: Path) -> tuple[DestinationMapping | None, list[Problem]]:
    """Validate the mapping file at ``path``; return the mapping (None on problems) and the problems."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(str(path), None, "(file)", f"cannot read: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        return None, [Problem(str(path), line, "(file)", "not UTF-8 text; save the file as UTF-8")]
    return validate_text(text, path)


def load_mapping(path: Path) -> DestinationMapping:
    """Load and validate the mapping file at ``path``.

    :raises ConfigError: listing every problem as ``file:line: field: message``.
    """
    mapping, problems = validate_file(path)
    if mapping is None:
        raise ConfigError("; ".join(str(p) for p in problems))
    return mapping


def load_destination(destination: str) -> DestinationMapping:
    """Load the shipped mapping of ``destination`` (``include/mappings/destinations/<name>.yaml``)."""
    path = mapping_path(destination)
    if not path.exists():
        known = ", ".join(p.stem for p in shipped_mapping_paths()) or "none"
        raise ConfigError(f"no mapping file for destination {destination!r} ({path}); known: {known}")
    mapping = load_mapping(path)
    if mapping.destination != destination:
        raise ConfigError(f"{path}: destination is {mapping.destination!r}, expected {destination!r}")
    return mapping
