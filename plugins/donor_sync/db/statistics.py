"""Fresh planner statistics after a bulk write: ANALYZE the tables a stage changed a lot.

Autovacuum analyzes a table once 50 rows + 10% of it changed, but only on its next pass (every
minute by default). The hourly DAG reads what the stage before it wrote seconds earlier: the queue
reads the donors resolve just made, the push claims from the outbox the queue just filled.
Planned on the statistics of a table that was empty at its last analyze, those reads become
nested loops over sequential scans whose time grows with the square of the batch (a first
backfill of 100,000 gifts spent over a minute per 5,000 donors queued). So each stage that writes
in bulk ends with :func:`analyze_stale`: autovacuum's own rule, applied now, with a floor so that
hourly trickles are left to autovacuum.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

__all__ = ["MIN_ROWS", "SCHEMAS", "SHARE", "analyze_stale"]

#: The schemas whose tables the pipeline writes in bulk.
SCHEMAS: tuple[str, ...] = ("raw", "staging", "core", "sync")
#: Fewer changed rows than this never trigger an analyze here (autovacuum's pass is enough).
MIN_ROWS = 1_000
#: The share of a table that must have changed since its last analyze (autovacuum's default).
SHARE = 0.1


def analyze_stale(
    conn: psycopg.Connection,
    schemas: Collection[str] = SCHEMAS,
    *,
    min_rows: int = MIN_ROWS,
    share: float = SHARE,
) -> list[str]:
    """ANALYZE each table of ``schemas`` changed by at least ``min_rows`` rows and ``share`` of the
    rows its statistics knew since its last analyze (committed changes, any session's); commit.

    Call it after the stage committed. Returns the tables analyzed, as ``schema.table``.
    """
    conn.commit()
    if conn.info.server_version >= 150000:
        # This session's counts reach the shared statistics when it is next idle: make that now.
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.commit()
    due = conn.execute(
        "SELECT s.schemaname, s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
        " WHERE s.schemaname = ANY(%s) AND s.n_mod_since_analyze >= %s"
        "   AND s.n_mod_since_analyze >= %s * greatest(c.reltuples, 0)"
        " ORDER BY 1, 2",
        (list(schemas), min_rows, share),
    ).fetchall()
    analyzed = []
    for schema, table in due:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(str(schema), str(table))))
        analyzed.append(f"{schema}.{table}")
    conn.commit()
    if analyzed:
        log.info("analyzed %d table(s) after a bulk write: %s", len(analyzed), ", ".join(analyzed))
    return analyzed
