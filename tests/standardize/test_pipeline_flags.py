"""Suspicious-data review flags: email_shared, test_payment, outlier_amount (staged, not failed)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from donor_sync.standardize.pipeline import standardize_batches
from tests.standardize.test_pipeline_support import ALL_RAW, NOW, charge, donation, land, rules


def _donor_flags(db: psycopg.Connection) -> dict[str, list[str]]:
    rows = db.execute(
        f"SELECT r.source_id, d.review_flags FROM staging.donors d JOIN {ALL_RAW} USING (raw_record_id)"
    ).fetchall()
    return {str(s): sorted(f["code"] for f in flags) for s, flags in rows}


def _gift(db: psycopg.Connection, source_id: str) -> tuple[bool, list[dict[str, Any]]]:
    row = db.execute(
        "SELECT is_test, review_flags FROM staging.gifts WHERE source_id = %s", (source_id,)
    ).fetchone()
    assert row is not None
    return bool(row[0]), list(row[1])


def test_email_shared_flags_different_people_not_spelling_noise_or_the_same_donor(
    db: psycopg.Connection,
) -> None:
    shared = "millers@gmail.example.com"
    batch = land(
        db,
        "donorbox",
        [
            (
                "donation",
                donation(1, donor={"id": 1, "first_name": "Megan", "last_name": "Miller", "email": shared}),
            ),
            (
                "donation",
                donation(2, donor={"id": 2, "first_name": "John", "last_name": "Miller", "email": shared}),
            ),
            # the same person in three records: a short first name and a typo are not another person
            (
                "donation",
                donation(
                    3,
                    donor={"id": 3, "first_name": "Chris", "last_name": "Smith", "email": "ks@x.example.org"},
                ),
            ),
            (
                "donation",
                donation(
                    6,
                    donor={
                        "id": 6,
                        "first_name": "Christopher",
                        "last_name": "Smith",
                        "email": "ks@x.example.org",
                    },
                ),
            ),
            (
                "donation",
                donation(
                    7,
                    donor={"id": 7, "first_name": "Chris", "last_name": "Smiht", "email": "ks@x.example.org"},
                ),
            ),
            # one donor giving twice under one donor id
            (
                "donation",
                donation(
                    4, donor={"id": 4, "first_name": "Ann", "last_name": "Lee", "email": "ann@x.example.org"}
                ),
            ),
            (
                "donation",
                donation(
                    5, donor={"id": 4, "first_name": "Ann", "last_name": "Lee", "email": "ann@x.example.org"}
                ),
            ),
        ],
    )
    standardize_batches(db, [batch], settings=rules(), now=NOW)
    flags = _donor_flags(db)
    assert flags == {
        "1": ["email_shared"],
        "2": ["email_shared"],
        "3": [],
        "6": [],
        "7": [],
        "4": [],
        "5": [],
    }


def test_email_shared_looks_at_what_is_already_staged_and_flags_both_sides(db: psycopg.Connection) -> None:
    first = land(
        db,
        "donorbox",
        [("donation", donation(10, donor={"id": 10, "first_name": "Rosa", "email": "home@x.example.org"}))],
    )
    standardize_batches(db, [first], settings=rules(), now=NOW)
    assert _donor_flags(db) == {"10": []}
    second = land(
        db,
        "donorbox",
        [("donation", donation(11, donor={"id": 11, "first_name": "Pedro", "email": "HOME@x.example.org"}))],
    )
    standardize_batches(db, [second], settings=rules(), now=NOW)
    assert _donor_flags(db) == {"10": ["email_shared"], "11": ["email_shared"]}
    # A re-run of either batch leaves the flags as they are.
    standardize_batches(db, [first], settings=rules(), now=NOW)
    assert _donor_flags(db) == {"10": ["email_shared"], "11": ["email_shared"]}


def test_the_email_lookup_goes_through_the_index(db: psycopg.Connection) -> None:
    batch = land(
        db,
        "donorbox",
        [
            ("donation", donation(100 + i, donor={"id": 100 + i, "email": f"d{i}@x.example.org"}))
            for i in range(300)
        ],
    )
    standardize_batches(db, [batch], settings=rules(), now=NOW)
    db.execute("ANALYZE staging.donors")
    plan = db.execute(
        "EXPLAIN SELECT d.raw_record_id FROM (VALUES ('d7@x.example.org')) e(email)"
        " JOIN staging.donors d ON lower(d.email) = e.email WHERE d.email IS NOT NULL"
    ).fetchall()
    assert "donors_email_lower_idx" in " ".join(str(r[0]) for r in plan)


@pytest.mark.parametrize(
    ("expect_live", "livemode", "last4", "is_test", "flagged_field"),
    [
        pytest.param(True, False, "7878", True, "livemode", id="test-mode-in-a-live-account"),
        pytest.param(False, False, "7878", False, None, id="test-mode-in-a-test-account"),
        pytest.param(True, True, "4242", False, None, id="live-payment-with-4242-is-a-real-card"),
        pytest.param(True, None, "4242", True, "card_last4", id="test-card-where-mode-unknown"),
    ],
)
def test_test_payments(
    db: psycopg.Connection,
    expect_live: bool,
    livemode: bool | None,
    last4: str,
    is_test: bool,
    flagged_field: str | None,
) -> None:
    payload = charge(
        "ch_T", livemode=livemode, payment_method_details={"type": "card", "card": {"last4": last4}}
    )
    batch = land(db, "stripe", [("charge", payload)])
    standardize_batches(db, [batch], settings=rules().with_expect_livemode("stripe", expect_live), now=NOW)
    staged_is_test, flags = _gift(db, "ch_T")
    assert staged_is_test is is_test
    assert [f["field"] for f in flags if f["code"] == "test_payment"] == (
        [flagged_field] if flagged_field else []
    )


def test_outlier_amounts_above_the_ceiling_or_far_above_the_sources_median(db: psycopg.Connection) -> None:
    usual = [("donation", donation(200 + i, amount="20.00")) for i in range(60)]
    batch = land(
        db,
        "donorbox",
        [
            *usual,
            ("donation", donation(300, amount="30000.00")),  # above the USD ceiling (25,000)
            ("donation", donation(301, amount="1500.00")),  # 75x the median of 20
            ("donation", donation(302, amount="500.00")),  # 25x: unusual, not flagged
        ],
    )
    standardize_batches(db, [batch], settings=rules(), now=NOW)
    flagged = {
        str(s)
        for (s,) in db.execute(
            'SELECT source_id FROM staging.gifts WHERE review_flags @> \'[{"code": "outlier_amount"}]\''
        ).fetchall()
    }
    assert flagged == {"300", "301"}
