"""Safe pieces of SOQL: checked identifiers and quoted literals.

The REST query resource takes SOQL text with no bind parameters, so every value that reaches a
query goes through :func:`literal` and every field or object name through :func:`ident`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
#: Values per ``IN (...)`` list: keeps the query URL well under Salesforce's 16,000-character cap.
IN_CHUNK = 200
T = TypeVar("T")


def ident(name: str) -> str:
    """Return ``name`` if it is a field, relationship path or object API name; raise ValueError."""
    if not _IDENT.match(name):
        raise ValueError(f"not a Salesforce API name: {name!r}")
    return name


def literal(value: Any) -> str:
    """Return ``value`` as a SOQL literal (strings quoted and escaped, datetimes in UTC)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{text}'"


def in_list(values: Iterable[Any]) -> str:
    """Return ``(v1, v2, ...)`` of quoted literals."""
    return "(" + ", ".join(literal(v) for v in values) + ")"


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """Yield ``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
