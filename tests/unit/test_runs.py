"""Run bookkeeping and the summary people read."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from donor_sync.observability import runs


def test_open_run_is_idempotent_per_airflow_run(db: psycopg.Connection) -> None:
    first = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="manual__1", params={"dry_run": True})
    again = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="manual__1")
    other = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="manual__2")
    assert first == again
    assert other != first
    assert runs.latest_run_id(db, "donations_hourly") in {first, other}


def test_metrics_upsert_and_summary_shows_recorded_values_only(db: psycopg.Connection) -> None:
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="manual__1")
    runs.record_metric(db, run_id, stage="extract", scope="stripe", metric="read", value=10)
    runs.record_metric(db, run_id, stage="extract", scope="stripe", metric="read", value=12)  # retried task
    runs.record_metric(db, run_id, stage="extract", scope="donorbox", metric="read", value=3)
    runs.record_metric(db, run_id, stage="standardize", metric="staged", value=9, part="0")
    runs.record_metric(db, run_id, stage="standardize", metric="staged", value=5, part="1")
    runs.close_run(db, run_id)

    summary = runs.load_summary(db, run_id)
    assert summary.status == "success"
    assert summary.finished_at is not None
    assert summary.values("extract", "read") == {"stripe": Decimal(12), "donorbox": Decimal(3)}

    text = runs.format_summary(summary)
    assert "records read per source" in text
    assert "15" in text.splitlines()[1]
    assert "stripe" in text
    assert "staged                           14" in text
    assert "quarantined                      not recorded (no standardize stage ran)" in text


def test_close_run_rejects_unknown_status_and_unknown_run(db: psycopg.Connection) -> None:
    run_id = runs.open_run(db, dag_id="d", airflow_run_id="r")
    with pytest.raises(ValueError, match="run_type"):
        runs.open_run(db, dag_id="d", airflow_run_id="r2", run_type="nightly")
    with pytest.raises(ValueError, match="success"):
        runs.close_run(db, run_id, status="done")
    runs.close_run(db, run_id, status="failed")
    assert runs.load_summary(db, run_id).status == "failed"
    import uuid

    with pytest.raises(LookupError):
        runs.close_run(db, uuid.uuid4())
