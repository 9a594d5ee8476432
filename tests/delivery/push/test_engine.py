"""The push engine end to end against the fake destination: crashes, concurrency, outages, metrics."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.delivery.contracts import FailureClass, Operation
from donor_sync.delivery.push import push_destination
from donor_sync.delivery.push.claim import claim
from donor_sync.delivery.push.context import PushContext
from donor_sync.delivery.push.engine import CONNECTOR_ERROR
from donor_sync.observability.runs import load_summary, open_run
from tests.delivery.fakes import FakeConnector, WorkerKilled
from tests.delivery.push.support import (
    DEST,
    add_donor,
    make_due,
    outbox,
    queue,
    queue_many,
    scalar,
    settings,
    states,
)


def _assert_exactly_once(db: psycopg.Connection, fake: FakeConnector, ids: list[int]) -> None:
    """Every row landed, each record is held once by the destination, each row logged one success."""
    assert states(db) == {"succeeded": len(ids)}
    keys = [k for (k,) in db.execute("SELECT record_key FROM sync.outbox WHERE outbox_id = ANY(%s)", (ids,))]
    assert sorted(key for _, key in fake.landed) == sorted(keys)
    successes = db.execute(
        "SELECT outbox_id, count(*) FROM sync.push_log WHERE outcome = 'succeeded' GROUP BY outbox_id"
    ).fetchall()
    assert sorted(successes) == [(i, 1) for i in sorted(ids)]
    remote = db.execute("SELECT record_key, remote_id FROM sync.destination_state").fetchall()
    assert dict(remote) == {key: fake.landed[("contact", key)].remote_id for key in keys}


def test_a_worker_killed_after_claiming_loses_nothing(db: psycopg.Connection) -> None:
    ids = queue_many(db, 25)
    # The killed worker: it claimed a batch and never came back.
    dead = PushContext(destination=DEST, claimed_by="killed#1")
    abandoned = claim(db, dead, entity="contact", operation=Operation.UPSERT, limit=10)
    db.commit()
    fake = FakeConnector(batch=10)
    first = push_destination(db, fake, worker_id="next-run", settings=settings())
    assert first.total("succeeded") == 15  # the leased rows are left to their worker meanwhile
    assert states(db) == {"succeeded": 15, "in_flight": 10}
    make_due(db)  # the lease expires
    second = push_destination(db, fake, worker_id="later-run", settings=settings())
    assert second.total("succeeded") == 10
    assert {r.record_key for r in abandoned.records} <= {key for _, key in fake.landed}
    _assert_exactly_once(db, fake, ids)
    assert all(landed.writes == 1 for landed in fake.landed.values())


def test_a_worker_killed_between_the_vendor_call_and_the_write_duplicates_nothing(
    db: psycopg.Connection,
) -> None:
    ids = queue_many(db, 30)
    fake = FakeConnector(batch=10)
    fake.die_after_landing()
    with pytest.raises(WorkerKilled):
        push_destination(db, fake, worker_id="doomed", settings=settings())
    assert len(fake.landed) == 10  # the vendor has them ...
    assert states(db) == {"in_flight": 10, "pending": 20}  # ... but no result was written
    make_due(db)
    push_destination(db, fake, worker_id="rerun", settings=settings())
    _assert_exactly_once(db, fake, ids)
    writes = sorted(landed.writes for landed in fake.landed.values())
    assert writes == [1] * 20 + [2] * 10  # the ten were written again, as an upsert on their key


def test_concurrent_pushers_push_each_record_once(db: psycopg.Connection, db_url: str) -> None:
    ids = queue_many(db, 300)
    fake = FakeConnector(batch=10)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            with connect(db_url) as conn:
                push_destination(conn, fake, worker_id=name, settings=settings())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _assert_exactly_once(db, fake, ids)
    assert all(landed.writes == 1 for landed in fake.landed.values())  # no record went twice


def test_a_rate_limited_outage_waits_for_the_window_without_counting_attempts(db: psycopg.Connection) -> None:
    ids = queue_many(db, 5)
    fake = FakeConnector(batch=5)
    fake.go_down(1, FailureClass.RATE_LIMITED, retry_after_s=3600)
    report = push_destination(db, fake, worker_id="w", settings=settings())
    assert report.stopped == "rate_limited"
    assert report.total("retrying") == 5
    for outbox_id in ids:
        row = outbox(db, outbox_id)
        assert (row["state"], row["attempts"], row["error_class"]) == ("pending", 0, "rate_limited")
        assert 3599 <= row["delay_s"] <= 3601  # the vendor's Retry-After beats the first rung
    logged = db.execute(
        "SELECT DISTINCT outcome, error_class, attempt, http_status FROM sync.push_log"
    ).fetchall()
    assert logged == [("failed", "rate_limited", 1, 429)]


def test_a_transient_outage_counts_an_attempt_and_stays_on_the_ladder(db: psycopg.Connection) -> None:
    ids = queue_many(db, 4)
    fake = FakeConnector(batch=2)
    fake.go_down(1)
    report = push_destination(db, fake, worker_id="w", settings=settings())
    # The first batch went back on its rung; the second landed (one failed call is no outage).
    assert report.stopped is None
    assert report.total("succeeded") == 2
    assert report.total("retrying") == 2
    retrying = [outbox(db, i) for i in ids if outbox(db, i)["state"] == "pending"]
    assert [(r["attempts"], r["error_code"]) for r in retrying] == [(1, "FAKE_DOWN"), (1, "FAKE_DOWN")]
    assert all(54 <= r["delay_s"] <= 66 for r in retrying)


def test_a_connector_bug_fails_the_push_and_puts_the_batch_back(db: psycopg.Connection) -> None:
    outbox_id = queue(db, "k")
    fake = FakeConnector()
    fake.push = lambda *args: 1 / 0  # type: ignore[assignment, method-assign, misc]
    with pytest.raises(ZeroDivisionError):
        push_destination(db, fake, worker_id="w", settings=settings())
    row = outbox(db, outbox_id)
    assert (row["state"], row["attempts"], row["error_code"]) == ("pending", 1, CONNECTOR_ERROR)
    assert "ZeroDivisionError" in row["error_message"]


def test_entities_go_parents_first_and_children_get_their_remote_ids(db: psycopg.Connection) -> None:
    donors = [add_donor(db) for _ in range(3)]
    db.commit()
    for i, donor in enumerate(donors):
        # Queued child first: the order comes from the connector, not from the queue.
        queue(
            db, f"stripe:ch_{i}", entity="opportunity", donor_id=donor, depends_on=[("contact", str(donor))]
        )
        queue(db, str(donor), donor_id=donor)
    fake = FakeConnector()
    report = push_destination(db, fake, worker_id="w", settings=settings())
    assert [c.entity for c in fake.calls] == ["contact", "opportunity"]
    assert report.total("waiting") == 0
    assert report.entities["opportunity"].succeeded == 3
    for i, donor in enumerate(donors):
        [sent] = fake.sent(f"stripe:ch_{i}")
        assert list(sent.remote_refs.values()) == [fake.landed[("contact", str(donor))].remote_id]


def test_max_records_and_deadline_leave_the_rest_queued(db: psycopg.Connection) -> None:
    queue_many(db, 20)
    fake = FakeConnector(batch=8)
    report = push_destination(db, fake, worker_id="w", max_records=10, settings=settings())
    assert report.stopped == "max_records"
    assert report.total("pushed") == 10
    assert [len(c.records) for c in fake.calls] == [8, 2]
    past = datetime.now(UTC) - timedelta(seconds=1)
    late = push_destination(db, fake, worker_id="w", deadline=past, settings=settings())
    assert late.stopped == "deadline"
    assert late.total("pushed") == 0
    assert states(db) == {"succeeded": 10, "pending": 10}


def test_the_push_records_its_run_metrics(db: psycopg.Connection) -> None:
    run_id = open_run(db, dag_id="donations_hourly", airflow_run_id="manual__1", run_type="test")
    queue_many(db, 6)
    fake = FakeConnector(batch=3)
    fake.fail("k0001", FailureClass.VALIDATION)
    fake.fail("k0002", FailureClass.TRANSIENT)
    push_destination(db, fake, worker_id="w", run_id=run_id, settings=settings())
    summary = load_summary(db, run_id)
    got = {m.metric: int(m.value) for m in summary.metrics if m.stage == "push" and m.scope == DEST}
    assert got["pushed"] == 6
    assert got["succeeded"] == 4
    assert got["failed"] == 2
    assert got["dead_lettered"] == 1
    assert got["retrying"] == 1
    assert got["calls"] == 2
    assert scalar(db, "SELECT count(DISTINCT run_id) FROM sync.push_log") == 1
    assert scalar(db, "SELECT run_id FROM sync.push_log LIMIT 1") == run_id
