"""source_rows: core rows with exactly SOURCE_FIELDS, live ones only, owned by the survivor."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.delivery.outbox import Scope, iter_source_rows
from donor_sync.delivery.outbox.source_rows import _SQL, advance_watermark, watermark_since
from tests.delivery.outbox.support import add_donor, add_gift, add_household, add_plan, merge


def _rows(
    db: psycopg.Connection, kind: str, scope: Scope | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    return list(iter_source_rows(db, kind, scope or Scope.full(), since=since))


def test_every_source_kind_has_its_queries() -> None:
    assert set(_SQL) == set(SOURCE_FIELDS)


@pytest.mark.parametrize("kind", list(SOURCE_FIELDS))
def test_rows_have_exactly_the_source_fields(db: psycopg.Connection, kind: str) -> None:
    jane = add_donor(db, "Jane")
    add_household(db, "Okafor Household", [(jane, "primary")])
    add_plan(db, jane, "stripe:sub_1")
    add_gift(db, jane, "stripe:ch_1")
    rows = _rows(db, kind)
    assert len(rows) == 1
    assert tuple(rows[0]) == SOURCE_FIELDS[kind]


def test_donor_rows_are_live_donors_with_their_household(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane", "Okafor")
    sam = add_donor(db, "Sam", "Okafor")
    gone = add_donor(db, "Jan", "Okafor")
    erased = add_donor(db, "Eve", "Erased", erased_at="2026-01-01T00:00:00Z")
    household = add_household(db, "Okafor Household", [(jane, "primary"), (sam, "member")])
    merge(db, jane, gone)
    rows = {r["donor_id"]: r for r in _rows(db, "donor")}
    assert set(rows) == {jane, sam}
    assert erased not in rows
    assert rows[jane]["household_id"] == household
    assert rows[jane]["household_name"] == "Okafor Household"
    assert rows[jane]["household_role"] == "primary"
    assert rows[sam]["household_role"] == "member"
    households = _rows(db, "household")
    assert households == [
        {
            "household_id": household,
            "name": "Okafor Household",
            "address_line1": None,
            "address_line2": None,
            "city": None,
            "region": None,
            "postal_code": None,
            "country_code": None,
            "member_count": 2,
            "primary_donor_id": jane,
        }
    ]


def test_gifts_exclude_tests_and_belong_to_the_survivor_and_its_household(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    old = add_donor(db, "Jane", "Old record")
    household = add_household(db, "Okafor Household", [(jane, "primary")])
    add_plan(db, old, "stripe:sub_1")
    add_gift(db, old, "stripe:ch_1", "40.00", recurring_plan_id=None)
    db.execute(
        "UPDATE core.gifts SET recurring_plan_id = (SELECT recurring_plan_id FROM core.recurring_plans),"
        " installment_number = 1 WHERE gift_key = 'stripe:ch_1'"
    )
    add_gift(db, jane, "stripe:ch_test", is_test=True)
    merge(db, jane, old)
    gifts = _rows(db, "gift")
    assert [g["gift_key"] for g in gifts] == ["stripe:ch_1"]
    assert gifts[0]["donor_id"] == jane
    assert gifts[0]["household_id"] == household
    assert gifts[0]["recurring_plan_key"] == "stripe:sub_1"
    assert gifts[0]["amount"] == Decimal("40.0000")
    plans = _rows(db, "recurring_plan")
    assert [(p["plan_key"], p["donor_id"], p["household_id"]) for p in plans] == [
        ("stripe:sub_1", jane, household)
    ]


def test_incremental_reads_what_changed_or_what_it_reads_changed(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    sam = add_donor(db, "Sam")
    add_gift(db, sam, "stripe:ch_sam")
    db.commit()
    cursor = db.execute("SELECT max(updated_at) FROM core.donors").fetchone()[0]  # type: ignore[index]
    advance_watermark(db, "hubspot", "outbox_donor", cursor)
    advance_watermark(db, "hubspot", "outbox_gift", cursor)
    db.execute("UPDATE sync.watermarks SET overlap = interval '0'")
    db.commit()
    since = watermark_since(db, "hubspot", "outbox_donor")
    assert since == cursor
    assert _rows(db, "donor", Scope.incremental(), since=since) == []
    # a household link changes Jane's household fields (and not her row)
    add_household(db, "Okafor Household", [(jane, "primary")])
    db.commit()
    assert [r["donor_id"] for r in _rows(db, "donor", Scope.incremental(), since=since)] == [jane]
    # Sam is merged into Jane: Sam's gift changes owner, without its own row changing
    merge(db, jane, sam)
    db.commit()
    gifts = _rows(db, "gift", Scope.incremental(), since=since)
    assert [(g["gift_key"], g["donor_id"]) for g in gifts] == [("stripe:ch_sam", jane)]


def test_ids_scope_reads_the_named_donors_and_what_is_theirs(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    sam = add_donor(db, "Sam")
    add_gift(db, jane, "stripe:ch_j")
    add_gift(db, sam, "stripe:ch_s")
    scope = Scope.of(donor_ids=[jane])
    assert [r["donor_id"] for r in _rows(db, "donor", scope)] == [jane]
    assert [r["gift_key"] for r in _rows(db, "gift", scope)] == ["stripe:ch_j"]
    by_key = Scope.of(keys={"gift": ["stripe:ch_s"]})
    assert [r["gift_key"] for r in _rows(db, "gift", by_key)] == ["stripe:ch_s"]
    assert _rows(db, "donor", by_key) == []


def test_reading_rows_leaves_no_work_table_behind(db: psycopg.Connection) -> None:
    add_donor(db)
    _rows(db, "donor")
    leftover = db.execute(
        "SELECT count(*) FROM pg_class WHERE relname LIKE '__donor_sync__outbox%%'"
    ).fetchone()
    assert leftover == (0,)
