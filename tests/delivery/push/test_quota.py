"""The quota reserve holds low-priority work back; API usage is recorded per window."""

from __future__ import annotations

import psycopg
import pytest

from donor_sync.delivery.contracts import QuotaState
from donor_sync.delivery.push import push_destination
from donor_sync.delivery.push.quota import decide
from donor_sync.delivery.push.settings import PushOptions
from tests.delivery.fakes import FakeConnector
from tests.delivery.push.support import DEST, queue, scalar, settings, states


@pytest.mark.parametrize(
    ("quota", "cut"),
    [
        (None, None),
        (QuotaState(remaining=None, limit=None, window="daily"), None),
        (QuotaState(remaining=500, limit=1000, window="daily"), None),
        (QuotaState(remaining=100, limit=1000, window="daily"), None),  # exactly at the reserve
        (QuotaState(remaining=99, limit=1000, window="daily"), 50),
        (QuotaState(remaining=0, limit=1000, window="daily"), 50),
    ],
    ids=["unknown", "no-figures", "half-left", "at-reserve", "below-reserve", "spent"],
)
def test_the_reserve_applies_below_its_share(quota: QuotaState | None, cut: int | None) -> None:
    decision = decide(quota, PushOptions(quota_reserve_share=0.10, quota_priority_cut=50))
    assert decision.priority_cut == cut
    assert decision.reserved is (cut is not None)


def test_below_the_reserve_only_high_priority_records_are_pushed(db: psycopg.Connection) -> None:
    urgent = [queue(db, f"u{i}", priority=10) for i in range(3)]
    routine = [queue(db, f"r{i}", priority=100) for i in range(4)]
    fake = FakeConnector(batch=2, quota_state=QuotaState(remaining=50, limit=1000, window="daily"))
    report = push_destination(db, fake, worker_id="w", settings=settings())
    assert {key for _, key in fake.landed} == {"u0", "u1", "u2"}
    assert report.total("deferred") == 4
    assert report.quota is not None
    assert report.quota.reserved
    assert states(db) == {"succeeded": 3, "pending": 4}
    due = scalar(
        db, "SELECT bool_and(next_attempt_at <= now()) FROM sync.outbox WHERE outbox_id = ANY(%s)", routine
    )
    assert due is True  # the routine records are still due: they go on the next run after the reset
    assert len(urgent) == 3
    # The window resets: the routine records go.
    fake.quota_state = QuotaState(remaining=1000, limit=1000, window="daily")
    after = push_destination(db, fake, worker_id="w", settings=settings())
    assert after.total("succeeded") == 4
    assert after.total("deferred") == 0


def test_the_reserve_kicks_in_when_the_quota_runs_low_mid_push(db: psycopg.Connection) -> None:
    for i in range(10):
        queue(db, f"r{i}", priority=100)
    # 12 calls left of 100, one record per call: after the third call 9 are left, under the 10%.
    fake = FakeConnector(batch=1, quota_state=QuotaState(remaining=12, limit=100, window="daily"))
    report = push_destination(db, fake, worker_id="w", settings=settings())
    assert len(fake.calls) == 3
    assert report.total("deferred") == 7


def test_api_usage_accumulates_calls_and_keeps_the_latest_quota(db: psycopg.Connection) -> None:
    for i in range(5):
        queue(db, f"k{i}")
    fake = FakeConnector(batch=2, quota_state=QuotaState(remaining=900, limit=1000, window="daily"))
    push_destination(db, fake, worker_id="w", settings=settings())
    queue(db, "late")
    push_destination(db, fake, worker_id="w", settings=settings())
    rows = db.execute(
        "SELECT vendor, quota_window, calls, quota_limit, quota_remaining,"
        " window_start = date_trunc('day', now(), 'UTC') FROM sync.api_usage"
    ).fetchall()
    assert rows == [(DEST, "daily", 4, 1000, 896, True)]
