"""The standardize stage of a sync run: its batches, metrics per source, reconciliation failures, and
the task's resolution of Stripe's expected mode from the connection's key.
"""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg
import pytest

from donor_sync.observability import runs
from donor_sync.sources.raw_landing import finish_batch, land_records, open_batch
from donor_sync.standardize.run import ReconcileError, batches_of_run, standardize_run
from donor_sync.standardize.sample_landing import jsonl_records, land_sample
from tests.standardize.test_pipeline_support import NOW, rules, sample


def test_the_runs_batches_are_standardized_and_counted_per_source(db: psycopg.Connection) -> None:
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="r1")
    earlier = land_sample(db, sample(donors=60, seed=5))  # batches of no run, left 'loaded'
    mine = open_batch(db, source="stripe", stream="customers", channel="api", run_id=run_id)
    read, loaded = land_records(
        db,
        batch_id=mine,
        source="stripe",
        channel="api",
        records=jsonl_records(sample(donors=60, seed=6) / "stripe" / "customers.jsonl", "stripe", None),
    )
    finish_batch(db, mine, read=read, loaded=loaded, cursor=None)
    assert batches_of_run(db, run_id) == sorted([*earlier.values(), mine])

    result = standardize_run(db, run_id, settings=rules(), now=NOW)
    summary = runs.load_summary(db, run_id)
    for metric in ("staged", "quarantined", "skipped"):
        recorded = summary.values("standardize", metric)
        counted: dict[str, int] = dict(
            db.execute(
                "SELECT b.source, count(*) FROM staging.dispositions d JOIN raw.batches b USING (batch_id)"
                " WHERE d.disposition = %s GROUP BY 1",
                (metric,),
            ).fetchall()
        )
        assert {s: int(v) for s, v in recorded.items() if v} == counted
    assert summary.values("standardize", "unreconciled") == {"": Decimal(0)}
    assert result.staged == sum(summary.values("standardize", "staged").values())
    # A retried run standardizes the same batches again; a later run does not see them.
    assert batches_of_run(db, run_id) == sorted([*earlier.values(), mine])
    other = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="r2")
    assert batches_of_run(db, other) == []


def test_a_batch_that_does_not_add_up_fails_loudly(db: psycopg.Connection) -> None:
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="r3")
    batch = open_batch(db, source="stripe", stream="customers", channel="api", run_id=run_id)
    read, loaded = land_records(
        db,
        batch_id=batch,
        source="stripe",
        channel="api",
        records=jsonl_records(sample(donors=60, seed=5) / "stripe" / "customers.jsonl", "stripe", None),
    )
    finish_batch(db, batch, read=read + 2, loaded=loaded + 2, cursor=None)  # the extractor counted 2 it lost
    with pytest.raises(ReconcileError, match=f"batch {batch}: recorded staged \\+ quarantined \\+ skipped"):
        standardize_run(db, run_id, settings=rules(), now=NOW)
    assert runs.load_summary(db, run_id).values("standardize", "unreconciled") == {"": Decimal(1)}


@pytest.mark.parametrize(
    ("key", "expected"),
    [("sk_live_abc", True), ("rk_test_sandbox", False), ("whatever", "auto")],
    ids=["live-key", "test-key", "unknown-key"],
)
def test_the_task_reads_stripes_mode_from_the_connection_key(
    monkeypatch: pytest.MonkeyPatch, key: str, expected: object
) -> None:
    from donor_sync.operators.standardize_tasks import resolve_livemode

    monkeypatch.setenv(
        "AIRFLOW_CONN_STRIPE",
        json.dumps({"conn_type": "http", "host": "https://127.0.0.1:8705", "password": key}),
    )
    settings = resolve_livemode(rules().with_expect_livemode("stripe", "auto"))  # type: ignore[arg-type]
    assert settings.test_payments.expect_livemode["stripe"] == expected
