"""Batches a killed extraction left 'extracting' are marked abandoned once their run stopped running.

Real Postgres: the batches are opened as the extractors open them, left as a killed worker leaves
them (its records never committed), and swept by the open_run task itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import psycopg
import pytest

from donor_sync.local_airflow import connection_json_from_url
from donor_sync.observability import runs
from donor_sync.operators.run_tasks import open_run as open_run_task
from donor_sync.sources.raw_landing import (
    ABANDON_AFTER,
    RawRecord,
    abandon_orphaned_batches,
    finish_batch,
    land_records,
    open_batch,
)
from donor_sync.standardize.run import batches_of_run


def _killed(db: psycopg.Connection, run_id: UUID | None, *, age: timedelta | None = None) -> int:
    """Open a batch and land records without committing, as a worker killed mid-read leaves them."""
    batch_id = open_batch(db, source="stripe", stream="charges", channel="api", run_id=run_id)
    records = [RawRecord("charge", f"ch_{batch_id}", {"id": f"ch_{batch_id}"}, datetime.now(UTC))]
    land_records(db, batch_id=batch_id, source="stripe", channel="api", records=records)
    db.rollback()  # the connection died: nothing the extraction landed was committed
    if age is not None:
        db.execute("UPDATE raw.batches SET started_at = now() - %s WHERE batch_id = %s", (age, batch_id))
        db.commit()
    return batch_id


def _loaded(db: psycopg.Connection, run_id: UUID) -> int:
    batch_id = open_batch(db, source="stripe", stream="charges", channel="api", run_id=run_id)
    finish_batch(db, batch_id, read=0, loaded=0, cursor=None)
    return batch_id


def _state(db: psycopg.Connection) -> dict[int, tuple[str, str | None, bool]]:
    rows = db.execute("SELECT batch_id, status, error, finished_at IS NOT NULL FROM raw.batches").fetchall()
    db.commit()
    return {int(b): (str(s), e, bool(f)) for b, s, e, f in rows}


def test_batches_of_ended_runs_are_abandoned_with_a_reason_and_running_ones_are_left(
    db: psycopg.Connection,
) -> None:
    failed = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="failed")
    killed_then_failed = _killed(db, failed)
    runs.fail_run(db, dag_id="donations_hourly", airflow_run_id="failed")

    retried = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="retried")
    killed_then_retried = _killed(db, retried)
    retry = _loaded(db, retried)  # the retried task's own batch
    runs.close_run(db, retried, status="success")

    running = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="running")
    in_flight = _killed(db, running)  # may be a task still reading, or one a retry will replace
    stuck = runs.open_run(db, dag_id="donors_nightly", airflow_run_id="stuck")
    never_closed = _killed(db, stuck, age=ABANDON_AFTER + timedelta(hours=1))
    recent_cli = _killed(db, None, age=timedelta(hours=2))
    old_cli = _killed(db, None, age=ABANDON_AFTER + timedelta(minutes=5))

    swept = abandon_orphaned_batches(db)

    assert swept == sorted([killed_then_failed, killed_then_retried, never_closed, old_cli])
    state = _state(db)
    hours = f"{ABANDON_AFTER.total_seconds() / 3600:g}"
    assert state[killed_then_failed] == (
        "abandoned",
        "abandoned: its run ended (failed) while it was extracting",
        True,
    )
    assert state[killed_then_retried] == (
        "abandoned",
        "abandoned: its run ended (success) while it was extracting",
        True,
    )
    assert state[never_closed] == (
        "abandoned",
        f"abandoned: still extracting {hours} h after it started, its run never closed",
        True,
    )
    assert state[old_cli] == (
        "abandoned",
        f"abandoned: still extracting {hours} h after it started, without a run",
        True,
    )
    assert state[retry] == ("loaded", None, False)
    assert state[in_flight] == ("extracting", None, False)
    assert state[recent_cli] == ("extracting", None, False)
    # The killed extractions had committed nothing; abandoned, their batches are not standardized.
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    later = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="later")
    assert set(batches_of_run(db, later)).isdisjoint(swept)
    db.commit()

    assert abandon_orphaned_batches(db) == []  # nothing is abandoned twice
    assert _state(db) == state


def test_a_batch_left_by_the_run_being_opened_again_is_kept_until_it_ends(db: psycopg.Connection) -> None:
    """A cleared Airflow run reopens the same sync run: its batches are its own again."""
    run = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="cleared")
    batch = _killed(db, run)
    runs.fail_run(db, dag_id="donations_hourly", airflow_run_id="cleared")
    assert runs.open_run(db, dag_id="donations_hourly", airflow_run_id="cleared") == run

    assert abandon_orphaned_batches(db) == []
    assert _state(db)[batch][0] == "extracting"
    runs.close_run(db, run, status="failed")
    assert abandon_orphaned_batches(db) == [batch]


def test_the_open_run_task_sweeps_before_the_run_starts_work(
    db: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(db_url))
    earlier = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="earlier")
    left = _killed(db, earlier)
    runs.fail_run(db, dag_id="donations_hourly", airflow_run_id="earlier")
    context: dict[str, Any] = {
        "dag_run": SimpleNamespace(dag_id="donations_hourly", run_id="next", run_type="manual"),
        "logical_date": None,
        "params": {},
    }

    run_id = open_run_task(context)

    assert UUID(run_id) != earlier
    assert _state(db)[left][:2] == ("abandoned", "abandoned: its run ended (failed) while it was extracting")
