"""Reconciliation: every raw record of a batch has exactly one disposition, and the counts add up.

Checked per batch, set-based: raw records without a disposition; dispositions against the batch's
recorded counts (staged + quarantined + skipped = loaded = records in raw); staged records with no
staging row; quarantined records with no quarantine row. An empty list means the batch is whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Mismatch:
    """One way a batch does not add up (ids and counts only: safe to log)."""

    batch_id: int
    kind: str
    expected: int
    actual: int

    def __str__(self) -> str:
        """Return a one-line description."""
        return f"batch {self.batch_id}: {self.kind} (expected {self.expected}, found {self.actual})"


def reconcile(conn: psycopg.Connection, batch_ids: Sequence[int]) -> list[Mismatch]:
    """Return every mismatch of ``batch_ids`` (empty when all of them reconcile)."""
    if not batch_ids:
        return []
    conn.execute("SET LOCAL jit = off")  # a few index probes per record: compiling costs more than it saves
    rows = conn.execute(
        """
        WITH ids AS (SELECT unnest(%(ids)s::bigint[]) AS batch_id),
        raw AS (
            SELECT r.batch_id, count(*) AS records,
                   count(*) FILTER (WHERE d.raw_record_id IS NULL) AS undecided
              FROM raw.all_records(%(ids)s::bigint[]) r
              LEFT JOIN staging.dispositions d ON d.raw_record_id = r.raw_record_id
             GROUP BY r.batch_id
        ),
        decided AS (
            SELECT d.batch_id, count(*) AS dispositions,
                   count(*) FILTER (WHERE d.disposition = 'staged') AS staged,
                   count(*) FILTER (WHERE d.disposition = 'quarantined') AS quarantined,
                   count(*) FILTER (WHERE d.disposition = 'skipped') AS skipped,
                   count(*) FILTER (
                       WHERE d.disposition = 'staged'
                         AND NOT EXISTS (SELECT FROM staging.donors s WHERE s.raw_record_id = d.raw_record_id)
                         AND NOT EXISTS (SELECT FROM staging.gifts g WHERE g.raw_record_id = d.raw_record_id)
                   ) AS staged_without_rows,
                   count(*) FILTER (
                       WHERE d.disposition = 'quarantined'
                         AND NOT EXISTS (SELECT FROM staging.quarantine q
                                          WHERE q.raw_record_id = d.raw_record_id)
                   ) AS quarantined_without_rows
              FROM staging.dispositions d
             WHERE d.batch_id = ANY(%(ids)s)
             GROUP BY d.batch_id
        )
        SELECT i.batch_id, b.batch_id IS NOT NULL, coalesce(b.records_loaded, 0),
               coalesce(b.records_staged, 0), coalesce(b.records_quarantined, 0),
               coalesce(b.records_skipped, 0),
               coalesce(raw.records, 0), coalesce(raw.undecided, 0), coalesce(decided.dispositions, 0),
               coalesce(decided.staged, 0), coalesce(decided.quarantined, 0), coalesce(decided.skipped, 0),
               coalesce(decided.staged_without_rows, 0), coalesce(decided.quarantined_without_rows, 0)
          FROM ids i
          LEFT JOIN raw.batches b ON b.batch_id = i.batch_id
          LEFT JOIN raw ON raw.batch_id = i.batch_id
          LEFT JOIN decided ON decided.batch_id = i.batch_id
         ORDER BY i.batch_id
        """,
        {"ids": list(batch_ids)},
    ).fetchall()
    found: list[Mismatch] = []
    for (
        batch_id,
        exists,
        loaded,
        b_staged,
        b_quar,
        b_skip,
        records,
        undecided,
        dispositions,
        staged,
        quar,
        skip,
        staged_empty,
        quar_empty,
    ) in rows:
        batch = int(batch_id)
        if not exists:
            found.append(Mismatch(batch, "no such batch", 1, 0))
            continue
        checks = (
            ("raw records without a disposition", 0, undecided),
            ("dispositions against raw records", records, dispositions),
            ("recorded staged + quarantined + skipped against loaded", loaded, b_staged + b_quar + b_skip),
            ("recorded staged against dispositions", staged, b_staged),
            ("recorded quarantined against dispositions", quar, b_quar),
            ("recorded skipped against dispositions", skip, b_skip),
            ("staged records without a staging row", 0, staged_empty),
            ("quarantined records without a quarantine row", 0, quar_empty),
        )
        found.extend(Mismatch(batch, kind, int(want), int(got)) for kind, want, got in checks if want != got)
    return found
