"""Sync modes: update only, create only, mirror (archive or delete what left core)."""

from __future__ import annotations

import psycopg

from donor_sync.delivery.contracts import Operation, SyncMode
from donor_sync.delivery.outbox import Scope, queue_destination
from tests.delivery.outbox.support import (
    HandRenderer,
    add_donor,
    add_gift,
    land,
    merge,
    outbox_rows,
    push_all,
)

DEST = "salesforce"


def test_update_only_queues_only_records_the_destination_has(db: psycopg.Connection) -> None:
    known = add_donor(db, "Known")
    new = add_donor(db, "New")
    land(db, DEST, "contact", known, {"old": True}, "003KNOWN", donor_id=known)
    db.commit()
    renderer = HandRenderer(modes={"contact": (SyncMode.UPDATE_ONLY, None)})
    report = queue_destination(db, DEST, renderer)
    db.commit()
    assert report.entities["contact"].updates == 1
    assert report.entities["contact"].skipped == 1
    rows = outbox_rows(db, DEST)
    assert [(r["record_key"], r["operation"]) for r in rows if r["entity"] == "contact"] == [
        (known, "update")
    ]
    assert new not in {r["record_key"] for r in rows}


def test_create_only_creates_once_and_never_overwrites(db: psycopg.Connection) -> None:
    landed = add_donor(db, "Landed")
    fresh = add_donor(db, "Fresh")
    land(db, DEST, "contact", landed, {"old": True}, "003LANDED", donor_id=landed)
    db.commit()
    renderer = HandRenderer(modes={"contact": (SyncMode.CREATE_ONLY, None)})
    report = queue_destination(db, DEST, renderer)
    db.commit()
    assert report.entities["contact"].creates == 1
    assert report.entities["contact"].skipped == 1
    assert [(r["record_key"], r["operation"]) for r in outbox_rows(db, DEST)] == [(fresh, "create")]
    push_all(db, DEST)
    db.execute("UPDATE core.donors SET first_name = 'Freshly' WHERE donor_id = %s", (fresh,))
    db.commit()
    again = queue_destination(db, DEST, renderer, scope=Scope.full())
    db.commit()
    assert again.queued == 0
    assert again.entities["contact"].skipped == 2


def test_mirror_archives_a_filtered_out_record_and_deletes_a_removed_gift(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    sam = add_donor(db, "Sam")
    add_gift(db, jane, "stripe:ch_keep")
    add_gift(db, jane, "stripe:ch_refund")
    db.commit()
    renderer = HandRenderer(
        modes={
            "contact": (SyncMode.MIRROR, Operation.ARCHIVE),
            "opportunity": (SyncMode.MIRROR, Operation.DELETE),
        }
    )
    queue_destination(db, DEST, renderer)
    push_all(db, DEST)
    db.commit()
    # Sam stops being rendered (do not contact); one gift turns out to be a test payment.
    db.execute("UPDATE core.donors SET do_not_contact = true WHERE donor_id = %s", (sam,))
    db.execute("UPDATE core.gifts SET is_test = true WHERE gift_key = 'stripe:ch_refund'")
    db.commit()
    report = queue_destination(db, DEST, renderer)
    db.commit()
    assert report.entities["contact"].archives == 1
    assert report.entities["opportunity"].deletes == 1
    pending = {(r["entity"], r["record_key"]): r for r in outbox_rows(db, DEST, state="pending")}
    assert set(pending) == {("contact", sam), ("opportunity", "stripe:ch_refund")}
    assert pending[("contact", sam)]["operation"] == "archive"
    assert pending[("opportunity", "stripe:ch_refund")]["operation"] == "delete"
    # once the removal landed, nothing more is queued for them
    push_all(db, DEST)
    db.commit()
    assert queue_destination(db, DEST, renderer, scope=Scope.full()).queued == 0


def test_mirror_in_a_full_run_removes_records_whose_core_row_is_gone(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    land(db, DEST, "opportunity", "stripe:ch_deleted", {"amount": "5"}, "006GONE", donor_id=jane)
    db.commit()
    renderer = HandRenderer(modes={"opportunity": (SyncMode.MIRROR, Operation.ARCHIVE)})
    # an incremental run does not look at records whose key it did not read
    assert queue_destination(db, DEST, renderer).entities.get("opportunity") is None
    db.commit()
    report = queue_destination(db, DEST, renderer, scope=Scope.full())
    db.commit()
    assert report.entities["opportunity"].archives == 1


def test_upsert_mode_never_removes_anything(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    land(db, DEST, "contact", jane, {"x": 1}, "003J", donor_id=jane)
    land(db, DEST, "contact", "00000000-0000-4000-8000-000000000000", {"x": 1}, "003GONE")
    db.execute("UPDATE core.donors SET do_not_contact = true WHERE donor_id = %s", (jane,))
    db.commit()
    report = queue_destination(db, DEST, HandRenderer(), scope=Scope.full())
    db.commit()
    assert report.queued == 0
    assert outbox_rows(db, DEST) == []


def test_mirror_leaves_a_merged_away_contact_to_the_merge(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    old = add_donor(db, "Jane", "Old")
    add_gift(db, old, "stripe:ch_old")
    db.commit()
    renderer = HandRenderer(
        modes={
            "contact": (SyncMode.MIRROR, Operation.ARCHIVE),
            "opportunity": (SyncMode.MIRROR, Operation.ARCHIVE),
        }
    )
    queue_destination(db, DEST, renderer)
    push_all(db, DEST)
    db.commit()
    merge(db, jane, old)
    db.commit()
    report = queue_destination(db, DEST, renderer)
    db.commit()
    assert report.entities["contact"].archives == 0
    # the gift is not removed: it now belongs to the survivor, whose id its payload carries
    assert report.entities["opportunity"].archives == 0
    assert report.entities["opportunity"].updates == 1
    gift = next(r for r in outbox_rows(db, DEST, state="pending") if r["entity"] == "opportunity")
    assert gift["payload"]["contact"] == jane
    # Salesforce lists the pair for a person instead
    assert report.merges.listed == 1
