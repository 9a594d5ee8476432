"""Recurring plans: installments linked to core.recurring_plans, status active / lapsed / canceled."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from donor_sync.resolve.aggregates import refresh_aggregates
from donor_sync.resolve.gifts import resolve_gifts
from tests.resolve.test_gifts_support import NOW, add_donor, donor, settings, stage_gift

#: Shipped rules: monthly plans lapse when no successful installment came within a month + 15 days.
_NOON = 17  # 17:00 UTC is midday in New York: the date is the same in both zones


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, _NOON, tzinfo=UTC)


def _installments(
    db: psycopg.Connection, plan: str, history: list[tuple[date, str]], *, batch: int = 1
) -> None:
    for n, (day, status) in enumerate(history):
        stage_gift(
            db,
            source="classy",
            source_id=f"{plan}-{day.isoformat()}",
            donor="s1",
            batch_id=batch,
            recurring_key=f"classy:{plan}",
            recurring_source_id=plan,
            recurring_interval="month",
            installment_number=n + 1,
            gift_at=_at(day),
            status=status,
        )


def _plan(db: psycopg.Connection, plan: str) -> dict[str, Any]:
    cur = db.execute("SELECT * FROM core.recurring_plans WHERE plan_key = %s", (f"classy:{plan}",))
    row = cur.fetchone()
    assert row is not None
    assert cur.description is not None
    return dict(zip([d.name for d in cur.description], row, strict=True))


CASES = [
    pytest.param([(date(2025, 12, 20), "succeeded")], date(2026, 1, 15), "active", id="paid-last-month"),
    # due 2025-12-30, grace until 2026-01-14: lapsed from the 15th, not on the 14th
    pytest.param([(date(2025, 11, 30), "succeeded")], date(2026, 1, 15), "lapsed", id="grace-just-over"),
    pytest.param([(date(2025, 11, 30), "succeeded")], date(2026, 1, 14), "active", id="last-day-of-grace"),
    pytest.param(
        [(date(2025, 11, 20), "succeeded"), (date(2025, 12, 20), "failed"), (date(2026, 1, 5), "failed")],
        date(2026, 1, 15),
        "lapsed",
        id="failed-installments-do-not-keep-it-alive",
    ),
    pytest.param(
        [(date(2025, 12, 10), "succeeded"), (date(2026, 1, 10), "canceled")],
        date(2026, 1, 15),
        "canceled",
        id="latest-installment-canceled",
    ),
    pytest.param(
        [(date(2025, 10, 10), "succeeded"), (date(2025, 11, 10), "refunded")],
        date(2026, 1, 15),
        "lapsed",
        id="a-refunded-installment-is-not-a-payment",
    ),
]


@pytest.mark.parametrize(("history", "today", "expected"), CASES)
def test_plan_status(
    db: psycopg.Connection, history: list[tuple[date, str]], today: date, expected: str
) -> None:
    owner = add_donor(db, ("classy", "s1"))
    _installments(db, "p1", history)
    now = datetime(today.year, today.month, today.day, 17, tzinfo=UTC)
    counts = resolve_gifts(db, [1], now=now, settings=settings())
    assert counts.plans_created == 1
    plan = _plan(db, "p1")
    assert plan["status"] == expected
    linked = db.execute(
        "SELECT count(*) FROM core.gifts WHERE recurring_plan_id = %s", (plan["recurring_plan_id"],)
    ).fetchone()
    assert linked == (len(history),)
    refresh_aggregates(db, counts.donor_ids, today=today, settings=settings())
    assert donor(db, owner)["recurring_status"] == expected


def test_plan_fields_follow_the_installments(db: psycopg.Connection) -> None:
    add_donor(db, ("classy", "s1"))
    history = [
        (date(2025, 10, 1), "succeeded"),
        (date(2025, 11, 1), "succeeded"),
        (date(2025, 12, 1), "failed"),
    ]
    _installments(db, "p2", history)
    resolve_gifts(db, [1], now=NOW, settings=settings())
    plan = _plan(db, "p2")
    assert plan["started_at"] == _at(date(2025, 10, 1))
    assert plan["last_payment_at"] == _at(date(2025, 11, 1))
    assert plan["next_payment_at"] == _at(date(2025, 12, 1))
    assert plan["failed_payment_count"] == 1
    assert (plan["interval_unit"], plan["source"], plan["source_id"]) == ("month", "classy", "p2")


def test_status_moves_active_lapsed_active_canceled(db: psycopg.Connection) -> None:
    owner = add_donor(db, ("classy", "s1"))
    rules = settings()
    _installments(db, "p3", [(date(2025, 10, 1), "succeeded"), (date(2025, 11, 1), "succeeded")], batch=1)
    resolve_gifts(db, [1], now=_at(date(2025, 11, 20)), settings=rules)
    refresh_aggregates(db, [owner], today=date(2025, 11, 20), settings=rules)
    assert (_plan(db, "p3")["status"], donor(db, owner)["recurring_status"]) == ("active", "active")

    # No payment for weeks: the nightly pass over every donor turns it lapsed.
    nightly = refresh_aggregates(db, None, today=date(2025, 12, 20), settings=rules)
    assert nightly.plans_updated == 1
    assert (_plan(db, "p3")["status"], donor(db, owner)["recurring_status"]) == ("lapsed", "lapsed")

    # A successful installment arrives: active again.
    _installments(db, "p3", [(date(2025, 12, 22), "succeeded")], batch=2)
    counts = resolve_gifts(db, [2], now=_at(date(2025, 12, 23)), settings=rules)
    refresh_aggregates(db, counts.donor_ids, today=date(2025, 12, 23), settings=rules)
    assert (_plan(db, "p3")["status"], donor(db, owner)["recurring_status"]) == ("active", "active")

    # The donor cancels: the next installment is canceled.
    _installments(db, "p3", [(date(2026, 1, 22), "canceled")], batch=3)
    counts = resolve_gifts(db, [3], now=_at(date(2026, 1, 23)), settings=rules)
    refresh_aggregates(db, counts.donor_ids, today=date(2026, 1, 23), settings=rules)
    plan = _plan(db, "p3")
    assert (plan["status"], plan["ended_at"], plan["next_payment_at"]) == (
        "canceled",
        _at(date(2026, 1, 22)),
        None,
    )
    assert donor(db, owner)["recurring_status"] == "canceled"
    # ... and stays canceled as time passes.
    refresh_aggregates(db, None, today=date(2026, 6, 1), settings=rules)
    assert _plan(db, "p3")["status"] == "canceled"


def test_a_plan_canceled_elsewhere_stays_canceled_until_a_new_payment(db: psycopg.Connection) -> None:
    add_donor(db, ("classy", "s1"))
    rules = settings()
    _installments(db, "p4", [(date(2025, 12, 1), "succeeded")], batch=1)
    resolve_gifts(db, [1], now=_at(date(2025, 12, 2)), settings=rules)
    db.execute(
        "UPDATE core.recurring_plans SET status = 'canceled', ended_at = %s", (_at(date(2025, 12, 5)),)
    )
    refresh_aggregates(db, None, today=date(2025, 12, 10), settings=rules)
    assert _plan(db, "p4")["status"] == "canceled"
    _installments(db, "p4", [(date(2026, 1, 1), "succeeded")], batch=2)
    resolve_gifts(db, [2], now=_at(date(2026, 1, 2)), settings=rules)
    assert _plan(db, "p4")["status"] == "active"


def test_default_interval_applies_when_installments_do_not_name_one(db: psycopg.Connection) -> None:
    add_donor(db, ("donorbox", "d1"))
    stage_gift(
        db,
        source="donorbox",
        source_id="1",
        donor="d1",
        recurring_key="donorbox:300",
        recurring_source_id="300",
        gift_at=NOW - timedelta(days=10),
    )
    resolve_gifts(db, [1], now=NOW, settings=settings())
    row = db.execute("SELECT interval_unit, status FROM core.recurring_plans").fetchone()
    assert row == ("month", "active")
