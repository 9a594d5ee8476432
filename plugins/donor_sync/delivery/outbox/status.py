"""How much is waiting, in flight, done or dead in the outbox, per destination and entity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True)
class StatusRow:
    """Outbox rows of one destination, entity and state."""

    destination: str
    entity: str
    state: str
    rows: int
    #: When the oldest of them was queued.
    oldest_created_at: datetime
    #: For pending rows: when the next one is due (retries wait on the ladder).
    next_attempt_at: datetime | None


def outbox_status(conn: psycopg.Connection, *, destination: str | None = None) -> list[StatusRow]:
    """Count outbox rows by destination, entity and state."""
    with conn.cursor(row_factory=class_row(StatusRow)) as cur:
        return cur.execute(
            "SELECT destination, entity, state, count(*)::integer AS rows,"
            " min(created_at) AS oldest_created_at,"
            " min(next_attempt_at) FILTER (WHERE state = 'pending') AS next_attempt_at"
            " FROM sync.outbox WHERE %(d)s::text IS NULL OR destination = %(d)s"
            " GROUP BY destination, entity, state ORDER BY destination, entity, state",
            {"d": destination},
        ).fetchall()
