"""What a queue run would do, or did, per destination entity."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import psycopg

from donor_sync.delivery.outbox.work_tables import PLAN_TABLE


@dataclass(frozen=True)
class EntityCounts:
    """Records of one destination entity by what the run does with them.

    :param creates: queued; the destination has no live record yet (no remote id).
    :param updates: queued; the destination has it (remote id) and its payload changed.
    :param deletes: queued removals (mirror), by delete.
    :param archives: queued removals (mirror), by archive.
    :param merges: merges queued for the vendor's merge API (the merged record goes away).
    :param unchanged: the destination has, or is about to get, this very payload.
    :param skipped: the entity's mode leaves it alone (update-only and not there yet, create-only
        and there already).
    :param deferred: another kind of write (erase, unsubscribe, trigger) waits first; next run.
    :param withdrawn: pending writes canceled before they were pushed: the record left core, the
        mapping filters it out now, or it changed back to what the destination has.
    :param replaced: of the queued ones, how many replaced a pending row's payload (not a new row).
    """

    entity: str
    creates: int = 0
    updates: int = 0
    deletes: int = 0
    archives: int = 0
    merges: int = 0
    unchanged: int = 0
    skipped: int = 0
    deferred: int = 0
    withdrawn: int = 0
    replaced: int = 0

    @property
    def queued(self) -> int:
        """Rows the run writes to the outbox (new or replacing a pending one)."""
        return self.creates + self.updates + self.deletes + self.archives + self.merges

    @property
    def destructive(self) -> int:
        """Writes that remove a record from the destination (the blast-radius guard counts them)."""
        return self.deletes + self.archives + self.merges

    def as_dict(self) -> dict[str, int]:
        """Return the counts by name (``queued`` included), without the entity."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "entity"}
        return {**out, "queued": self.queued}


#: plan table action → EntityCounts field.
ACTION_FIELDS = {
    "create": "creates",
    "update": "updates",
    "delete": "deletes",
    "archive": "archives",
    "unchanged": "unchanged",
    "skipped": "skipped",
    "deferred": "deferred",
    "withdraw": "withdrawn",
}
QUEUED_ACTIONS = ("create", "update", "delete", "archive")


def count_plan(conn: psycopg.Connection) -> dict[str, EntityCounts]:
    """Count the plan table's rows per entity and action."""
    out: dict[str, EntityCounts] = {}
    rows = conn.execute(
        f"SELECT entity, action, count(*), count(pending_id) FROM {PLAN_TABLE} GROUP BY entity, action"
        " ORDER BY entity, action"
    ).fetchall()
    for entity, action, n, with_pending in rows:
        current = out.get(entity, EntityCounts(entity))
        changes: dict[str, Any] = {ACTION_FIELDS[action]: int(n)}
        if action in QUEUED_ACTIONS:
            changes["replaced"] = current.replaced + int(with_pending)
        out[entity] = replace(current, **changes)
    return out


def add_merges(counts: dict[str, EntityCounts], entity: str, merges: int) -> dict[str, EntityCounts]:
    """Return ``counts`` with ``merges`` API merges added to ``entity``."""
    if not merges:
        return counts
    current = counts.get(entity, EntityCounts(entity))
    return {**counts, entity: replace(current, merges=current.merges + merges)}
