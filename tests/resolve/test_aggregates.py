"""Donor aggregates: what counts, fiscal year, currency, RFM segments, merges, incremental scope."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from donor_sync.resolve.aggregates import refresh_aggregates
from donor_sync.resolve.fiscal import Segment, fiscal_year_bounds, fiscal_year_label
from donor_sync.resolve.gifts import resolve_gifts
from tests.resolve.test_gifts_support import NOW, add_donor, donor, merge, rfm, settings, stage_gift

TODAY = date(2026, 1, 15)


def _resolve(db: psycopg.Connection, **rules: Any) -> None:
    counts = resolve_gifts(db, [1], now=NOW, settings=settings(**rules))
    assert counts.pending_rows == 0


# -- fiscal year ---------------------------------------------------------------------------------

FISCAL_BOUNDS = [
    pytest.param(date(2025, 6, 30), 7, (date(2024, 7, 1), date(2025, 7, 1)), 2025, id="july-fy-last-day"),
    pytest.param(date(2025, 7, 1), 7, (date(2025, 7, 1), date(2026, 7, 1)), 2026, id="july-fy-first-day"),
    pytest.param(date(2025, 12, 31), 1, (date(2025, 1, 1), date(2026, 1, 1)), 2025, id="calendar-year"),
    pytest.param(date(2026, 1, 1), 1, (date(2026, 1, 1), date(2027, 1, 1)), 2026, id="calendar-new-year"),
    pytest.param(date(2025, 9, 30), 10, (date(2024, 10, 1), date(2025, 10, 1)), 2025, id="october-fy"),
    pytest.param(date(2024, 2, 29), 3, (date(2023, 3, 1), date(2024, 3, 1)), 2024, id="march-fy-leap-day"),
]


@pytest.mark.parametrize(("day", "start_month", "bounds", "label"), FISCAL_BOUNDS)
def test_fiscal_year_bounds(day: date, start_month: int, bounds: tuple[date, date], label: int) -> None:
    assert fiscal_year_bounds(day, start_month) == bounds
    assert fiscal_year_label(day, start_month) == label


#: (gift instant, counted in the fiscal year of TODAY?) with a July fiscal year in New York time.
FISCAL_GIFTS = [
    pytest.param(datetime(2025, 7, 1, 3, 59, tzinfo=UTC), False, id="june-30-evening-in-new-york"),
    pytest.param(datetime(2025, 7, 1, 4, 0, tzinfo=UTC), True, id="july-1-midnight-in-new-york"),
    pytest.param(datetime(2026, 1, 15, 4, 59, tzinfo=UTC), True, id="today-early"),
    pytest.param(datetime(2024, 12, 31, 12, tzinfo=UTC), False, id="previous-fiscal-year"),
]


@pytest.mark.parametrize(("gift_at", "in_year"), FISCAL_GIFTS)
def test_fiscal_year_giving_uses_the_organization_date(
    db: psycopg.Connection, gift_at: datetime, in_year: bool
) -> None:
    owner = add_donor(db, ("stripe", "c"))
    stage_gift(db, source="stripe", source_id="ch_fy", donor="c", amount="40.00", gift_at=gift_at)
    stage_gift(
        db,
        source="stripe",
        source_id="ch_old",
        donor="c",
        amount="5.00",
        gift_at=datetime(2019, 5, 5, tzinfo=UTC),
    )
    _resolve(db)
    refresh_aggregates(db, [owner], today=TODAY, settings=settings())
    got = donor(db, owner)
    assert got["fiscal_year_giving"] == (Decimal(40) if in_year else Decimal(0))
    assert got["lifetime_giving"] == Decimal(45)


def test_fiscal_year_start_month_is_configurable(db: psycopg.Connection) -> None:
    owner = add_donor(db, ("stripe", "c"))
    stage_gift(
        db,
        source="stripe",
        source_id="ch_1",
        donor="c",
        amount="10.00",
        gift_at=datetime(2025, 8, 1, 17, tzinfo=UTC),
    )
    stage_gift(
        db,
        source="stripe",
        source_id="ch_2",
        donor="c",
        amount="20.00",
        gift_at=datetime(2026, 1, 2, 17, tzinfo=UTC),
    )
    _resolve(db)
    refresh_aggregates(db, [owner], today=TODAY, settings=settings(fiscal_year_start_month=1))
    assert donor(db, owner)["fiscal_year_giving"] == Decimal(20)
    refresh_aggregates(db, [owner], today=TODAY, settings=settings(fiscal_year_start_month=7))
    assert donor(db, owner)["fiscal_year_giving"] == Decimal(30)


# -- what counts ---------------------------------------------------------------------------------


def test_only_succeeded_non_test_gifts_net_of_refunds_count(db: psycopg.Connection) -> None:
    owner = add_donor(db, ("stripe", "c"))
    day = datetime(2025, 9, 1, 17, tzinfo=UTC)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("succeeded", {}),
        ("succeeded", {"is_test": True}),
        ("failed", {}),
        ("pending", {}),
        ("disputed", {}),
        ("canceled", {}),
        ("refunded", {"refunded_amount": Decimal(100)}),
        ("partially_refunded", {"refunded_amount": Decimal(25)}),
    ]
    for n, (status, extra) in enumerate(cases):
        stage_gift(
            db,
            source="stripe",
            source_id=f"ch_{n}",
            donor="c",
            amount="100.00",
            gift_at=day + timedelta(days=n),
            status=status,
            **extra,
        )
    _resolve(db)
    counts = refresh_aggregates(db, [owner], today=TODAY, settings=settings())
    got = donor(db, owner)
    assert (got["gift_count"], got["lifetime_giving"], got["largest_gift"]) == (2, Decimal(175), Decimal(100))
    assert (got["first_gift_date"], got["last_gift_date"]) == (date(2025, 9, 1), date(2025, 9, 8))
    assert counts.gifts_counted == 2


def test_gifts_in_another_currency_count_as_gifts_but_not_in_the_sums(db: psycopg.Connection) -> None:
    owner = add_donor(db, ("stripe", "c"))
    stage_gift(
        db,
        source="stripe",
        source_id="ch_usd",
        donor="c",
        amount="30.00",
        gift_at=datetime(2025, 9, 1, 17, tzinfo=UTC),
    )
    stage_gift(
        db,
        source="stripe",
        source_id="ch_eur",
        donor="c",
        amount="500.00",
        currency="EUR",
        gift_at=datetime(2025, 10, 1, 17, tzinfo=UTC),
    )
    _resolve(db)
    counts = refresh_aggregates(db, [owner], today=TODAY, settings=settings())
    got = donor(db, owner)
    assert (got["gift_count"], got["lifetime_giving"], got["largest_gift"]) == (2, Decimal(30), Decimal(30))
    assert got["last_gift_date"] == date(2025, 10, 1)
    assert got["giving_currency"] == "USD"
    assert (counts.gifts_left_out, counts.donors_with_gifts_left_out) == (1, 1)
    # Reported in EUR, the same donor's sums are the EUR gift.
    refresh_aggregates(db, [owner], today=TODAY, settings=settings(reporting_currency="EUR"))
    assert donor(db, owner)["lifetime_giving"] == Decimal(500)
    # A conversion recorded explicitly (amount_base) is used, scaled by the share not refunded.
    db.execute(
        "UPDATE core.gifts SET amount_base = 540, status = 'partially_refunded', refunded_amount = 250"
        " WHERE currency = 'EUR'"
    )
    counts = refresh_aggregates(db, [owner], today=TODAY, settings=settings())
    assert donor(db, owner)["lifetime_giving"] == Decimal(300)
    assert counts.gifts_left_out == 0


# -- merges and scope ----------------------------------------------------------------------------


def test_a_merged_away_donors_gifts_count_for_the_survivor(db: psycopg.Connection) -> None:
    survivor = add_donor(db, ("stripe", "a"))
    merged = add_donor(db, ("donorbox", "b"))
    stage_gift(
        db,
        source="stripe",
        source_id="ch_a",
        donor="a",
        amount="10.00",
        gift_at=datetime(2025, 1, 5, 17, tzinfo=UTC),
    )
    stage_gift(
        db,
        source="donorbox",
        source_id="9",
        donor="b",
        amount="90.00",
        gift_at=datetime(2025, 12, 20, 17, tzinfo=UTC),
        recurring_key="donorbox:77",
        recurring_source_id="77",
    )
    _resolve(db)
    refresh_aggregates(db, None, today=TODAY, settings=settings())
    assert donor(db, merged)["lifetime_giving"] == Decimal(90)

    merge(db, merged, survivor)
    counts = refresh_aggregates(
        db, [merged], today=TODAY, settings=settings()
    )  # the merged-away id is enough
    assert counts.donors_in_scope == 2
    got = donor(db, survivor)
    assert (got["gift_count"], got["lifetime_giving"], got["largest_gift"]) == (2, Decimal(100), Decimal(90))
    assert (got["first_gift_date"], got["last_gift_date"]) == (date(2025, 1, 5), date(2025, 12, 20))
    assert got["recurring_status"] == "active"  # the merged-away donor's plan
    gone = donor(db, merged)
    assert (gone["gift_count"], gone["lifetime_giving"], gone["recurring_status"], gone["rfm_segment"]) == (
        0,
        Decimal(0),
        "none",
        None,
    )
    total = db.execute("SELECT sum(lifetime_giving) FROM core.donors").fetchone()
    assert total == (Decimal(100),)  # never counted twice


def test_incremental_refresh_touches_only_the_donors_given_and_a_re_run_nothing(
    db: psycopg.Connection,
) -> None:
    a = add_donor(db, ("stripe", "a"))
    b = add_donor(db, ("stripe", "b"))
    stage_gift(db, source="stripe", source_id="ch_a", donor="a", amount="10.00")
    stage_gift(db, source="stripe", source_id="ch_b", donor="b", amount="20.00")
    _resolve(db)
    first = refresh_aggregates(db, [a], today=TODAY, settings=settings())
    assert (first.donors_in_scope, first.donors_updated) == (1, 1)
    assert donor(db, a)["lifetime_giving"] == Decimal(10)
    assert donor(db, b)["aggregates_updated_at"] is None  # not touched
    stamp = donor(db, a)["aggregates_updated_at"]
    again = refresh_aggregates(db, [a], today=TODAY, settings=settings())
    assert again.donors_updated == 0
    assert donor(db, a)["aggregates_updated_at"] == stamp
    nightly = refresh_aggregates(db, None, today=TODAY, settings=settings())
    assert nightly.donors_updated == 1  # only b changed
    assert donor(db, b)["lifetime_giving"] == Decimal(20)


# -- RFM -----------------------------------------------------------------------------------------

#: (gifts as (days before TODAY, amount)), expected segment under the shipped rules:
#: recency days [90, 180, 365, 730], frequency [2, 4, 8, 16], monetary [100, 500, 2500, 10000].
RFM_CASES = [
    pytest.param([], None, id="no-gifts-no-segment"),
    pytest.param([(10, "30.00")], "new_donor", id="one-recent-gift"),
    pytest.param([(10 + 30 * n, "700.00") for n in range(8)], "champion", id="frequent-large-recent"),
    pytest.param([(200 + 20 * n, "20.00") for n in range(4)], "loyal", id="regular-within-a-year"),
    pytest.param([(150, "3000.00")], "major_donor", id="one-large-gift"),
    pytest.param([(20, "20.00"), (60, "20.00")], "promising", id="two-recent-small"),
    pytest.param([(400 + 10 * n, "20.00") for n in range(4)], "at_risk", id="regular-but-quiet-a-year"),
    pytest.param([(800, "50.00")], "lapsed", id="nothing-for-two-years"),
    pytest.param([(300, "50.00")], "occasional", id="no-rule-matches"),
]


@pytest.mark.parametrize(("gifts", "expected"), RFM_CASES)
def test_rfm_segment(db: psycopg.Connection, gifts: list[tuple[int, str]], expected: str | None) -> None:
    owner = add_donor(db, ("stripe", "c"))
    for n, (days, amount) in enumerate(gifts):
        when = datetime.combine(TODAY - timedelta(days=days), datetime.min.time(), UTC) + timedelta(hours=17)
        stage_gift(db, source="stripe", source_id=f"ch_{n}", donor="c", amount=amount, gift_at=when)
    if gifts:
        _resolve(db)
    refresh_aggregates(db, [owner], today=TODAY, settings=settings())
    assert donor(db, owner)["rfm_segment"] == expected


def test_rfm_thresholds_and_segments_come_from_the_rules(db: psycopg.Connection) -> None:
    owner = add_donor(db, ("stripe", "c"))
    stage_gift(
        db, source="stripe", source_id="ch_1", donor="c", amount="60.00", gift_at=NOW - timedelta(days=5)
    )
    _resolve(db)
    base = settings()
    generous = rfm(
        base,
        monetary=[Decimal(10), Decimal(20), Decimal(30), Decimal(50)],
        segments=[Segment(name="big_spender", min_monetary=5)],
    )
    refresh_aggregates(db, [owner], today=TODAY, settings=base.model_copy(update={"rfm": generous}))
    assert donor(db, owner)["rfm_segment"] == "big_spender"
    # The segment moves with the calendar: the same gift two years later.
    refresh_aggregates(db, [owner], today=TODAY + timedelta(days=800), settings=base)
    assert donor(db, owner)["rfm_segment"] == "lapsed"
