"""analyze_stale: a stage's bulk write is analyzed before the next stage plans against it."""

from __future__ import annotations

import psycopg

from donor_sync.db.statistics import analyze_stale


def _add_watermarks(conn: psycopg.Connection, n: int, prefix: str) -> None:
    conn.execute(
        "INSERT INTO sync.watermarks (source, stream) SELECT 'stripe', %s || g FROM generate_series(1, %s) g",
        (prefix.rstrip("-") + "_", n),
    )
    conn.commit()


def _planned_rows(conn: psycopg.Connection) -> int:
    plan = conn.execute("EXPLAIN (FORMAT JSON) SELECT * FROM sync.watermarks").fetchone()
    assert plan is not None
    return int(plan[0][0]["Plan"]["Plan Rows"])


def _analyzed(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables"
        " WHERE schemaname = 'sync' AND relname = 'watermarks'"
    ).fetchone()
    return bool(row and row[0])


def test_a_bulk_write_is_analyzed_and_the_planner_sees_its_rows(db: psycopg.Connection) -> None:
    _add_watermarks(db, 5_000, "bulk-")
    assert "sync.watermarks" in analyze_stale(db)
    assert _analyzed(db)
    assert _planned_rows(db) == 5_000
    # Nothing changed since: nothing is analyzed again.
    assert "sync.watermarks" not in analyze_stale(db)


def test_a_trickle_is_left_to_autovacuum(db: psycopg.Connection) -> None:
    _add_watermarks(db, 5_000, "bulk-")
    analyze_stale(db)
    # Below the floor, and below a tenth of what the statistics know.
    _add_watermarks(db, 400, "trickle-")
    assert "sync.watermarks" not in analyze_stale(db)
    assert "sync.watermarks" in analyze_stale(db, min_rows=100, share=0.05)


def test_only_the_pipelines_schemas_are_touched(db: psycopg.Connection) -> None:
    _add_watermarks(db, 2_000, "bulk-")
    assert all(t.startswith("core.") for t in analyze_stale(db, schemas=("core",)))
    assert not _analyzed(db)
