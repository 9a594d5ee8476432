"""Per-source watermarks: a (timestamp, id) cursor plus an overlap window.

A window starts at ``cursor_ts - overlap``, so rows that arrive late, or share the cursor's
timestamp, are read again rather than skipped; re-reading is harmless because landing is
idempotent. Each batch records the highest (timestamp, id) it read; the watermark moves to it only
when the run succeeds (:func:`advance_from_run`), so a failed run leaves it where it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import psycopg

DEFAULT_OVERLAP = timedelta(minutes=10)


@dataclass(frozen=True)
class Watermark:
    """How far one source stream has been read."""

    source: str
    stream: str
    cursor_ts: datetime | None
    cursor_id: str | None
    overlap: timedelta

    def window_start(self, initial: datetime) -> datetime:
        """Return where the next read starts: the cursor minus the overlap, or ``initial`` the first time."""
        if self.cursor_ts is None:
            return initial
        return self.cursor_ts - self.overlap


def read_watermark(
    conn: psycopg.Connection, source: str, stream: str, *, overlap: timedelta = DEFAULT_OVERLAP
) -> Watermark:
    """Return the stream's watermark; before its first read, record one with ``overlap``.

    The overlap is stored with the watermark, so operators can widen one stream's re-read window
    in the database; later calls keep the stored value.
    """
    conn.execute(
        "INSERT INTO sync.watermarks (source, stream, overlap) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (source, stream, overlap),
    )
    conn.commit()
    row = conn.execute(
        "SELECT cursor_ts, cursor_id, overlap FROM sync.watermarks WHERE source = %s AND stream = %s",
        (source, stream),
    ).fetchone()
    assert row is not None
    return Watermark(source, stream, row[0], row[1], row[2])


def highest(cursors: Iterable[tuple[datetime, str]]) -> tuple[datetime, str] | None:
    """Return the greatest (timestamp, id) pair, ties broken by id, or None for no rows."""
    return max(cursors, default=None)


def advance_from_run(conn: psycopg.Connection, run_id: UUID, *, commit: bool = True) -> int:
    """Move each stream's watermark to the highest cursor its batches of ``run_id`` reached.

    Only forward: a batch that read less than the stored position (a re-run of an old window)
    never moves a watermark back. Returns how many watermarks moved.

    :param commit: commit now; False leaves it to the caller, so closing the run commits both at
        once (a worker killed in between leaves neither).
    """
    moved = conn.execute(
        """
        WITH reached AS (
            SELECT DISTINCT ON (source, stream) source, stream, cursor_ts, cursor_id, batch_id
            FROM raw.batches
            WHERE run_id = %(run_id)s AND status <> 'failed' AND cursor_ts IS NOT NULL
            ORDER BY source, stream, cursor_ts DESC, cursor_id DESC
        )
        INSERT INTO sync.watermarks AS w (source, stream, cursor_ts, cursor_id, run_id, batch_id, updated_at)
        SELECT source, stream, cursor_ts, cursor_id, %(run_id)s, batch_id, now() FROM reached
        ON CONFLICT (source, stream) DO UPDATE
           SET cursor_ts = EXCLUDED.cursor_ts, cursor_id = EXCLUDED.cursor_id,
               run_id = EXCLUDED.run_id, batch_id = EXCLUDED.batch_id, updated_at = now()
         WHERE w.cursor_ts IS NULL
            OR (EXCLUDED.cursor_ts, EXCLUDED.cursor_id) > (w.cursor_ts, w.cursor_id)
        """,
        {"run_id": run_id},
    ).rowcount
    if commit:
        conn.commit()
    return moved
