"""The circuit breaker: opens on consecutive failures or a failure rate, stops pushes, probes, closes."""

from __future__ import annotations

import psycopg
import pytest

from donor_sync.delivery.contracts import FailureClass
from donor_sync.delivery.push import BreakerState, push_destination
from donor_sync.delivery.push.breaker import CircuitBreaker
from donor_sync.delivery.push.settings import CircuitBreakerSettings
from tests.delivery.fakes import FakeConnector
from tests.delivery.push.support import DEST, make_due, queue, queue_many, scalar, settings, states


def _open_probe_now(db: psycopg.Connection) -> None:
    db.execute("UPDATE sync.circuit_breakers SET next_probe_at = now() - interval '1 second'")
    db.commit()


def _breaker_row(db: psycopg.Connection) -> tuple[object, ...]:
    row = db.execute(
        "SELECT state, consecutive_failures, extract(epoch FROM next_probe_at - now())::float"
        " FROM sync.circuit_breakers WHERE destination = %s",
        (DEST,),
    ).fetchone()
    db.commit()
    assert row is not None
    return tuple(row)


def test_consecutive_failed_calls_open_the_breaker_and_stop_the_push(db: psycopg.Connection) -> None:
    queue_many(db, 10)
    fake = FakeConnector(batch=1)
    fake.go_down(100)
    report = push_destination(db, fake, worker_id="w", settings=settings(breaker={"consecutive_failures": 3}))
    assert len(fake.calls) == 3  # stopped at the third failed call
    assert report.stopped == "breaker_open"
    assert report.breaker_state is BreakerState.OPEN
    [opened] = report.transitions
    assert (opened.from_state, opened.to_state, opened.reason) == ("closed", "open", "consecutive_failures")
    assert opened.error_class is FailureClass.TRANSIENT
    assert "pushes stopped" in opened.describe()
    state, _, wait = _breaker_row(db)
    assert state == "open"
    assert 55 < wait <= 60
    assert states(db) == {"pending": 10}  # the three tried records wait on their rung, the rest untouched
    # While open, nothing is pushed, even with records due.
    make_due(db)
    fake.go_down(0)
    blocked = push_destination(
        db, fake, worker_id="w", settings=settings(breaker={"consecutive_failures": 3})
    )
    assert blocked.stopped == "breaker_open"
    assert blocked.total("pushed") == 0
    assert len(fake.calls) == 3


def test_a_failure_rate_over_the_window_opens_the_breaker(db: psycopg.Connection) -> None:
    # One call per record (batch 1), every other record failing transiently: half the calls fail,
    # never two in a row.
    for i in range(10):
        queue(db, f"k{i}", priority=i)
    fake = FakeConnector(batch=1)
    for i in range(1, 10, 2):
        fake.fail(f"k{i}", FailureClass.TRANSIENT)
    breaker = {"consecutive_failures": 5, "failure_rate": 0.5, "min_calls": 6}
    report = push_destination(db, fake, worker_id="w", settings=settings(breaker=breaker))
    assert [c.keys[0] for c in fake.calls] == ["k0", "k1", "k2", "k3", "k4", "k5"]
    assert report.stopped == "breaker_open"
    assert [t.reason for t in report.transitions] == ["failure_rate"]


def test_record_failures_of_the_record_kind_do_not_trip_the_breaker(db: psycopg.Connection) -> None:
    queue_many(db, 6)
    fake = FakeConnector(batch=1)
    for i in range(6):
        fake.fail(f"k{i:04d}", FailureClass.VALIDATION)
    report = push_destination(db, fake, worker_id="w", settings=settings(breaker={"consecutive_failures": 2}))
    assert report.transitions == []
    assert report.total("dead_lettered") == 6


def test_an_open_breaker_probes_half_open_with_one_small_batch_and_closes(db: psycopg.Connection) -> None:
    queue_many(db, 30)
    fake = FakeConnector(batch=10)
    fake.go_down(2)
    cfg = settings(breaker={"consecutive_failures": 2, "probe_batch_size": 3})
    push_destination(db, fake, worker_id="w", settings=cfg)
    assert _breaker_row(db)[0] == "open"
    make_due(db)
    _open_probe_now(db)
    report = push_destination(db, fake, worker_id="w", settings=cfg)
    assert [(t.from_state, t.to_state) for t in report.transitions] == [
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    ok_calls = [len(c.records) for c in fake.calls if c.outcome == "ok"]
    assert ok_calls[0] == 3  # the probe batch
    assert report.breaker_state is BreakerState.CLOSED
    assert report.stopped is None
    assert states(db) == {"succeeded": 30}
    assert _breaker_row(db)[:2] == ("closed", 0)


def test_a_failed_probe_reopens_the_breaker_for_longer(db: psycopg.Connection) -> None:
    queue_many(db, 5)
    fake = FakeConnector(batch=5)
    fake.go_down(100)
    cfg = settings(breaker={"consecutive_failures": 1, "open_seconds": 60, "backoff_factor": 2.0})
    push_destination(db, fake, worker_id="w", settings=cfg)
    assert 55 < _breaker_row(db)[2] <= 60
    waits = []
    for _ in range(3):
        make_due(db)
        _open_probe_now(db)
        report = push_destination(db, fake, worker_id="w", settings=cfg)
        assert [t.reason for t in report.transitions] == ["probe", "probe_failed"]
        assert report.stopped == "breaker_open"
        waits.append(_breaker_row(db)[2])
    assert 115 < waits[0] <= 120
    assert 235 < waits[1] <= 240
    assert 475 < waits[2] <= 480


def test_a_probe_with_nothing_to_push_is_given_back(db: psycopg.Connection) -> None:
    fake = FakeConnector()
    fake.go_down(1)
    queue(db, "k")
    push_destination(db, fake, worker_id="w", settings=settings(breaker={"consecutive_failures": 1}))
    _open_probe_now(db)
    db.execute("UPDATE sync.outbox SET next_attempt_at = now() + interval '1 hour'")
    db.commit()
    report = push_destination(db, fake, worker_id="w", settings=settings(breaker={"consecutive_failures": 1}))
    assert report.total("pushed") == 0
    state, _, wait = _breaker_row(db)
    assert state == "open"
    assert wait <= 0


def test_half_open_admits_a_single_probe_until_it_reports(db: psycopg.Connection) -> None:
    cfg = CircuitBreakerSettings(consecutive_failures=1, probe_timeout_seconds=900)
    breaker = CircuitBreaker(db, DEST, cfg)
    transition = breaker.record(ok=False, error_class=FailureClass.AUTH)
    db.commit()
    assert transition is not None
    assert transition.to_state is BreakerState.OPEN
    assert breaker.admit().allowed is False
    _open_probe_now(db)
    first, second = breaker.admit(), breaker.admit()
    db.commit()
    assert (first.allowed, first.probe) == (True, True)
    assert second.allowed is False  # another worker waits while the probe is out
    db.execute("UPDATE sync.circuit_breakers SET next_probe_at = now() - interval '1 second'")
    assert breaker.admit().probe is True  # a probe whose worker died is given up after its timeout
    closed = breaker.record(ok=True)
    db.commit()
    assert closed is not None
    assert closed.to_state is BreakerState.CLOSED
    assert breaker.admit().allowed is True


@pytest.mark.parametrize(
    ("outcomes", "opens"),
    [
        ("FFFS", False),  # three failures then a success: the run of failures is broken
        ("SFSFSFSF", True),  # half of 8 calls failed (min 8): opens on the 8th
        ("FSFSFSFS", False),  # judged at each failure: the last one is call 7, under min_calls
        ("FSSSFSSF", False),  # a third failed
    ],
)
def test_breaker_rules_table(db: psycopg.Connection, outcomes: str, opens: bool) -> None:
    cfg = CircuitBreakerSettings(consecutive_failures=4, failure_rate=0.5, min_calls=8)
    breaker = CircuitBreaker(db, DEST, cfg)
    transitions = [
        breaker.record(ok=o == "S", error_class=None if o == "S" else FailureClass.TRANSIENT)
        for o in outcomes
    ]
    db.commit()
    assert any(t is not None for t in transitions) is opens
    assert (scalar(db, "SELECT state FROM sync.circuit_breakers") == "open") is opens


def test_the_failure_rate_window_restarts_when_it_runs_out(db: psycopg.Connection) -> None:
    cfg = CircuitBreakerSettings(consecutive_failures=100, failure_rate=0.5, min_calls=4, window_seconds=60)
    breaker = CircuitBreaker(db, DEST, cfg)
    for ok in (False, True, False):
        breaker.record(ok=ok, error_class=None if ok else FailureClass.TRANSIENT)
    db.execute("UPDATE sync.circuit_breakers SET window_started_at = now() - interval '2 minutes'")
    assert breaker.record(ok=True) is None
    assert breaker.record(ok=False, error_class=FailureClass.TRANSIENT) is None  # 1 of 2 in the new window
    db.commit()
    assert db.execute("SELECT window_calls, window_failures FROM sync.circuit_breakers").fetchone() == (2, 1)
