"""Apply a minimization profile to core rows: drop, pseudonymize, generalize, exclude."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.privacy.keys import KeyRing
from donor_sync.privacy.profiles.model import Bands, Generalizer, KindProfile, Prefix
from donor_sync.privacy.profiles.reads import ID_FIELDS


def pseudonym_text(value: Any) -> str:
    """Return the text a value is hashed as: trimmed lower-case text, ISO dates, plain numbers."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip().lower()


def pseudonymize(ring: KeyRing, value: Any) -> str | None:
    """Return the HMAC-SHA256 hex of ``value`` under the ring's current key (None stays None)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return ring.hmac_hex(pseudonym_text(value))


def _band(bounds: list[Decimal], value: Any) -> str | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if number < bounds[0]:
        return f"<{bounds[0]}"
    for low, high in pairwise(bounds):
        if low <= number < high:
            return f"{low}-{high}"
    return f"{bounds[-1]}+"


def generalize(how: Generalizer, value: Any) -> Any:
    """Return ``value`` made coarser (None stays None)."""
    if value is None:
        return None
    if how == "year":
        if isinstance(value, date | datetime):
            return value.year
        text = str(value)
        return int(text[:4]) if text[:4].isdigit() else None
    if isinstance(how, Prefix):
        text = str(value).strip()
        return text[: how.prefix] or None
    assert isinstance(how, Bands)
    return _band(how.bands, value)


@dataclass(frozen=True)
class Minimizer:
    """One kind's profile, compiled: which fields stay and how each is sent.

    :param reads: the fields the mapping reads (None: unknown, e.g. a hand-written renderer; then
        every source field stays, and only the profile's explicit rules apply).
    """

    kind: str
    rules: KindProfile
    ring: KeyRing | None
    reads: frozenset[str] | None

    @property
    def kept(self) -> frozenset[str]:
        """Return the fields a minimized row holds."""
        base = set(SOURCE_FIELDS[self.kind]) if self.reads is None else set(self.reads)
        if self.rules.fields is not None:
            base &= set(self.rules.fields)
        return frozenset(base | ID_FIELDS[self.kind])

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Return the minimized copy of ``row`` (the row itself is not changed)."""
        out = {name: row[name] for name in self.kept if name in row}
        for name in self.rules.exclude:
            if name in out:
                out[name] = None
        for name in self.rules.pseudonymize:
            if name in out:
                if self.ring is None:
                    raise RuntimeError("a pseudonym key ring is needed")  # load_gate always gives one
                out[name] = pseudonymize(self.ring, out[name])
        for name, how in self.rules.generalize.items():
            if name in out:
                out[name] = generalize(how, out[name])
        return out
