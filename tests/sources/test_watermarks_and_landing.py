"""Watermarks (overlap, tie-breaker, forward only, failed runs) and idempotent raw landing through COPY."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from donor_sync.observability import runs
from donor_sync.sources.raw_landing import RawRecord, fail_batch, finish_batch, land_records, open_batch
from donor_sync.sources.watermarks import advance_from_run, highest, read_watermark

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _batch(
    db: psycopg.Connection, run_id: object, cursor: tuple[datetime, str] | None, *, fail: bool = False
) -> int:
    batch_id = open_batch(db, source="stripe", stream="charges", channel="api", run_id=run_id)  # type: ignore[arg-type]
    if fail:
        fail_batch(db, batch_id, "StripeTransientError")
    else:
        finish_batch(db, batch_id, read=0, loaded=0, cursor=cursor)
    return batch_id


def test_first_window_starts_at_the_initial_time_then_at_cursor_minus_overlap(db: psycopg.Connection) -> None:
    watermark = read_watermark(db, "stripe", "charges")
    assert watermark.cursor_ts is None
    assert watermark.window_start(T0) == T0
    run = runs.open_run(db, dag_id="d", airflow_run_id="r1")
    _batch(db, run, (T0 + timedelta(hours=5), "ch_b"))
    assert advance_from_run(db, run) == 1
    watermark = read_watermark(db, "stripe", "charges")
    assert (watermark.cursor_ts, watermark.cursor_id) == (T0 + timedelta(hours=5), "ch_b")
    assert watermark.window_start(T0) == T0 + timedelta(hours=5) - timedelta(minutes=10)


def test_ties_on_the_timestamp_are_broken_by_id() -> None:
    same = T0 + timedelta(hours=1)
    assert highest([(same, "ch_a"), (same, "ch_c"), (same, "ch_b")]) == (same, "ch_c")
    assert highest([]) is None


def test_watermark_only_moves_forward_and_ignores_failed_batches(db: psycopg.Connection) -> None:
    first = runs.open_run(db, dag_id="d", airflow_run_id="r1")
    _batch(db, first, (T0 + timedelta(hours=5), "ch_b"))
    advance_from_run(db, first)

    rerun_of_old_window = runs.open_run(db, dag_id="d", airflow_run_id="r2")
    _batch(db, rerun_of_old_window, (T0 + timedelta(hours=2), "ch_z"))
    assert advance_from_run(db, rerun_of_old_window) == 0

    failed = runs.open_run(db, dag_id="d", airflow_run_id="r3")
    _batch(db, failed, (T0 + timedelta(hours=9), "ch_x"), fail=True)
    assert advance_from_run(db, failed) == 0

    same_second_later_id = runs.open_run(db, dag_id="d", airflow_run_id="r4")
    _batch(db, same_second_later_id, (T0 + timedelta(hours=5), "ch_c"))
    assert advance_from_run(db, same_second_later_id) == 1
    watermark = read_watermark(db, "stripe", "charges")
    assert (watermark.cursor_ts, watermark.cursor_id) == (T0 + timedelta(hours=5), "ch_c")


def _records(*payloads: dict[str, object]) -> list[RawRecord]:
    return [RawRecord("charge", str(p["id"]), dict(p), T0) for p in payloads]


def test_landing_is_idempotent_and_keeps_each_distinct_version(db: psycopg.Connection) -> None:
    batch = open_batch(db, source="stripe", stream="charges", channel="api", run_id=None)
    first = _records({"id": "ch_1", "amount": 500}, {"id": "ch_2", "amount": 700})
    assert land_records(db, batch_id=batch, source="stripe", channel="api", records=first) == (2, 2)
    db.commit()
    again = _records({"amount": 500, "id": "ch_1"}, {"id": "ch_2", "amount": 700})  # key order differs
    assert land_records(db, batch_id=batch, source="stripe", channel="api", records=again) == (2, 0)
    changed = _records({"id": "ch_1", "amount": 500, "refunded": True})
    assert land_records(db, batch_id=batch, source="stripe", channel="api", records=changed) == (1, 1)
    db.commit()
    rows = db.execute("SELECT source_id, payload FROM raw.records ORDER BY raw_record_id").fetchall()
    assert [r[0] for r in rows] == ["ch_1", "ch_2", "ch_1"]
    assert rows[2][1] == {"id": "ch_1", "amount": 500, "refunded": True}, "payload kept exactly as received"


def test_failed_batch_keeps_no_records_and_says_why_without_data(db: psycopg.Connection) -> None:
    batch = open_batch(db, source="stripe", stream="charges", channel="api", run_id=None)
    land_records(db, batch_id=batch, source="stripe", channel="api", records=_records({"id": "ch_1"}))
    fail_batch(db, batch, "StripeTransientError")
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    assert db.execute("SELECT status, error FROM raw.batches").fetchone() == (
        "failed",
        "StripeTransientError",
    )
