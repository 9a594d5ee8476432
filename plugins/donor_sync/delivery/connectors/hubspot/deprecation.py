"""Spot the vendor telling us an endpoint is going away, so a person hears before it breaks.

Signals looked for on every response: the ``Deprecation`` (RFC 9745) and ``Sunset`` (RFC 8594)
headers, a ``Warning`` header that mentions deprecation or sunset, any header whose name says
"deprecat", and a deprecation note in a JSON body (a key naming it, or ``warnings``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MENTIONS = re.compile(r"deprecat|sunset", re.IGNORECASE)
_MAX_VALUE = 200


@dataclass(frozen=True)
class DeprecationNotice:
    """One deprecation signal: where it was seen, which signal and what it said (trimmed)."""

    method: str
    path: str
    signal: str
    value: str


def _trim(value: Any) -> str:
    return " ".join(str(value).split())[:_MAX_VALUE]


def _body_notes(body: Any) -> list[tuple[str, str]]:
    if not isinstance(body, Mapping):
        return []
    notes = [(f"body.{key}", _trim(value)) for key, value in body.items() if _MENTIONS.search(str(key))]
    warnings = body.get("warnings")
    for item in warnings if isinstance(warnings, list) else []:
        text = item.get("message", item) if isinstance(item, Mapping) else item
        if _MENTIONS.search(str(text)):
            notes.append(("body.warnings", _trim(text)))
    return notes


def deprecation_signals(
    method: str, path: str, headers: Mapping[str, str], body: Any
) -> list[DeprecationNotice]:
    """Return the deprecation signals of one response (none for most)."""
    found: list[tuple[str, str]] = []
    for name, value in headers.items():
        lowered = name.lower()
        named = lowered in ("deprecation", "sunset") or "deprecat" in lowered
        if named or (lowered == "warning" and _MENTIONS.search(value)):
            found.append((name, _trim(value)))
    found += _body_notes(body)
    return [DeprecationNotice(method, path, signal, value) for signal, value in found]


def path_template(path: str) -> str:
    """Return ``path`` with numeric ids replaced, so one endpoint's notices are told once."""
    return re.sub(r"/\d+(?=/|$)", "/{id}", path)
