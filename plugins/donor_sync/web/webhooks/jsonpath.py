"""Dotted paths into parsed JSON (``data.id``, ``items.0.id``, ``$.id``) and event timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["MISSING", "lookup", "to_datetime"]


class _Missing:
    """The value at a path that does not exist (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def lookup(doc: Any, path: str) -> Any:
    """Return the value at ``path`` in ``doc`` ('' or '$' is the document), or :data:`MISSING`."""
    path = path.removeprefix("$").removeprefix(".")
    if not path:
        return doc
    value = doc
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def to_datetime(value: Any) -> datetime | None:
    """Return an aware UTC time for unix seconds or an ISO-8601 string; None when it is neither."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
