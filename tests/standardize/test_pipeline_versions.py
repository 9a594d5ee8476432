"""Versions of one object: a newer version in the same run supersedes the older ones, a newer one in
a later run closes the older one's open quarantine row; entities not staged are skipped with a
reason and unknown ones quarantined.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg

from donor_sync.standardize.pipeline import standardize_batches
from donor_sync.standardize.reconcile import reconcile
from tests.standardize.test_pipeline_support import NOW, charge, disposition, event, land, rules

T = 1_700_000_000


def _events(db: psycopg.Connection) -> list[tuple[str, str, str | None]]:
    return [
        (str(s), str(d), r)
        for s, d, r in db.execute(
            "SELECT r.source_id, d.disposition, d.reason FROM staging.dispositions d"
            " JOIN raw.records r USING (raw_record_id) WHERE r.entity = 'event' ORDER BY r.source_id"
        ).fetchall()
    ]


def test_the_newest_version_in_a_run_is_staged_and_the_others_skipped(db: psycopg.Connection) -> None:
    listed = charge("ch_A", created=T)
    refunded = charge("ch_A", created=T, amount_refunded=2500)
    batch = land(
        db,
        "stripe",
        [
            ("charge", listed),
            ("event", event("evt_1", listed, created=T)),  # same second as the listing: the listing wins
            ("event", event("evt_2", refunded, kind="charge.refunded", created=T + 100)),
            ("charge", charge("ch_B", created=T)),
            ("event", event("evt_3", charge("ch_B", created=T), created=T)),
        ],
    )
    standardize_batches(db, [batch], settings=rules(), now=NOW)
    assert disposition(db, "stripe", "charge", "ch_A") == [("skipped", "superseded_version")]
    assert disposition(db, "stripe", "charge", "ch_B") == [("staged", None)]
    assert _events(db) == [
        ("evt_1", "skipped", "superseded_version"),
        ("evt_2", "staged", None),
        ("evt_3", "skipped", "superseded_version"),
    ]
    gift = db.execute(
        "SELECT entity, source_id, status, refunded_amount, refunded_at IS NOT NULL FROM staging.gifts"
        " WHERE source_id = 'ch_A'"
    ).fetchone()
    assert gift == ("charge", "ch_A", "refunded", Decimal("25.0000"), True)
    assert reconcile(db, [batch]) == []


def test_a_newer_version_in_a_later_run_closes_the_older_quarantine_row(db: psycopg.Connection) -> None:
    first = land(
        db,
        "stripe",
        [("charge", charge("ch_C", created=T, billing_details={"email": "x@", "name": "Jo Fox"}))],
    )
    standardize_batches(db, [first], settings=rules(), now=NOW)
    assert disposition(db, "stripe", "charge", "ch_C") == [("quarantined", None)]
    fixed = charge("ch_C", created=T, billing_details={"email": "jo@example.org", "name": "Jo Fox"})
    second = land(db, "stripe", [("event", event("evt_9", fixed, kind="charge.updated", created=T + 60))])
    standardize_batches(db, [second], settings=rules(), now=NOW)
    closed = db.execute(
        "SELECT resolution, released_by, note FROM staging.quarantine WHERE source_id = 'ch_C'"
    ).fetchall()
    assert len(closed) == 1
    assert closed[0][0] == "superseded"
    assert "raw record" in closed[0][2]
    assert disposition(db, "stripe", "charge", "ch_C") == [("skipped", "superseded_version")]
    assert db.execute("SELECT count(*) FROM staging.gifts WHERE source_id = 'ch_C'").fetchone() == (1,)
    assert reconcile(db, [first, second]) == []
    counts = db.execute(
        "SELECT records_staged, records_quarantined, records_skipped FROM raw.batches WHERE batch_id = %s",
        (first,),
    ).fetchone()
    assert counts == (0, 0, 1)


def test_an_older_version_arriving_later_does_not_close_a_newer_quarantine_row(
    db: psycopg.Connection,
) -> None:
    newer = charge("ch_D", created=T, billing_details={"email": "bad@", "name": "Al Roe"})
    first = land(db, "stripe", [("event", event("evt_5", newer, kind="charge.updated", created=T + 500))])
    standardize_batches(db, [first], settings=rules(), now=NOW)
    second = land(db, "stripe", [("charge", charge("ch_D", created=T))])  # the listing, older by its time
    standardize_batches(db, [second], settings=rules(), now=NOW)
    assert db.execute(
        "SELECT count(*) FROM staging.quarantine WHERE source_id = 'ch_D' AND released_at IS NULL"
    ).fetchone() == (1,)


def test_kinds_not_staged_are_skipped_with_a_reason_and_unknown_kinds_quarantined(
    db: psycopg.Connection,
) -> None:
    batch = land(
        db,
        "stripe",
        [
            ("payment_intent", {"id": "pi_1", "object": "payment_intent", "created": T}),
            ("refund", {"id": "re_1", "object": "refund", "created": T}),
            (
                "event",
                {
                    "id": "evt_7",
                    "object": "event",
                    "type": "customer.created",
                    "created": T,
                    "data": {"object": {"id": "cus_1", "object": "customer"}},
                },
            ),
            ("dispute", {"id": "dp_1", "object": "dispute", "created": T}),
        ],
    )
    standardize_batches(db, [batch], settings=rules(), now=NOW)
    rows = {
        str(s): (d, r)
        for s, d, r in db.execute(
            "SELECT r.source_id, d.disposition, d.reason FROM staging.dispositions d JOIN raw.records r"
            " USING (raw_record_id)"
        ).fetchall()
    }
    assert rows == {
        "pi_1": ("skipped", "represented_by_charge"),
        "re_1": ("skipped", "applied_through_charge"),
        "evt_7": ("skipped", "not_a_charge_event"),
        "dp_1": ("quarantined", None),
    }
    reasons = db.execute("SELECT entity, reasons FROM staging.quarantine").fetchall()
    assert reasons == [
        (
            "dispute",
            [
                {
                    "rule": "skip_entities",
                    "field": None,
                    "code": "unknown_entity",
                    "message": reasons[0][1][0]["message"],
                    "value": "dispute",
                }
            ],
        )
    ]
    assert reconcile(db, [batch]) == []
