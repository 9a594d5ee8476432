"""Which core rows a queue run reads: what changed, a chosen set, or everything."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from donor_sync.delivery.contracts import SOURCE_FIELDS


class ScopeKind(StrEnum):
    """How a run chooses its rows."""

    #: Rows changed since the destination's watermark of each kind (hourly runs).
    INCREMENTAL = "incremental"
    #: Every row (nightly drift check; mirror then removes whatever is no longer rendered).
    FULL = "full"
    #: The rows named by id (a donor re-synced, a replay); watermarks stay where they are.
    IDS = "ids"


@dataclass(frozen=True)
class Scope:
    """The rows of one queue run.

    :param donor_ids: for ``ids``: these donors and their gifts, plans and households.
    :param keys: for ``ids``: rows by the key of their kind (``{"gift": {"stripe:ch_1"}}``).
    """

    kind: ScopeKind = ScopeKind.INCREMENTAL
    donor_ids: frozenset[str] = frozenset()
    keys: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.keys) - set(SOURCE_FIELDS))
        if unknown:
            raise ValueError(f"unknown source kinds {unknown}; kinds are {', '.join(SOURCE_FIELDS)}")
        if self.kind is not ScopeKind.IDS and (self.donor_ids or self.keys):
            raise ValueError("ids and keys belong to an ids scope")

    @classmethod
    def incremental(cls) -> Scope:
        return cls(ScopeKind.INCREMENTAL)

    @classmethod
    def full(cls) -> Scope:
        return cls(ScopeKind.FULL)

    @classmethod
    def of(cls, *, donor_ids: Iterable[str] = (), keys: Mapping[str, Iterable[str]] | None = None) -> Scope:
        """Return an ``ids`` scope of these donors (with everything of theirs) and these keys."""
        return cls(
            ScopeKind.IDS,
            donor_ids=frozenset(str(d) for d in donor_ids),
            keys={kind: frozenset(str(k) for k in ks) for kind, ks in (keys or {}).items()},
        )

    def describe(self) -> str:
        """A short description for logs and the audit log (counts, never ids)."""
        if self.kind is not ScopeKind.IDS:
            return self.kind.value
        named = sum(len(k) for k in self.keys.values())
        return f"ids ({len(self.donor_ids)} donors, {named} keys)"
