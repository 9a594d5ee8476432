"""Merges reach the destinations: HubSpot through its merge API, Salesforce as a task for a person."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from donor_sync.delivery.outbox import MergeError, list_merges, mark_merge_done, queue_destination
from tests.delivery.outbox.support import HandRenderer, add_donor, land, merge, outbox_rows, unmerge


def _merged_pair(db: psycopg.Connection, destination: str) -> tuple[str, str, str]:
    """Jane (survivor) and her old record, both landed as contacts; old merged into Jane."""
    jane = add_donor(db, "Jane")
    old = add_donor(db, "Jane", "Old")
    land(db, destination, "contact", jane, {"a": 1}, "REMOTE-JANE", donor_id=jane)
    land(db, destination, "contact", old, {"a": 2}, "REMOTE-OLD", donor_id=old)
    decision = merge(db, jane, old)
    db.commit()
    return jane, old, decision


def _merge_rows(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT destination, method, status, survivor_key, merged_key, survivor_remote_id, merged_remote_id,"
        " outbox_id IS NOT NULL FROM sync.destination_merges ORDER BY destination_merge_id"
    ).fetchall()


def test_hubspot_merges_through_the_api_after_the_survivor(db: psycopg.Connection) -> None:
    jane, old, _ = _merged_pair(db, "hubspot")
    report = queue_destination(db, "hubspot", HandRenderer())
    db.commit()
    assert report.merges.queued == 1
    assert report.entities["contact"].merges == 1
    assert _merge_rows(db) == [("hubspot", "api", "pending", jane, old, "REMOTE-JANE", "REMOTE-OLD", True)]
    merges = [r for r in outbox_rows(db, "hubspot") if r["operation"] == "merge"]
    assert len(merges) == 1
    row = merges[0]
    assert (row["entity"], row["record_key"], row["donor_id"]) == ("contact", old, jane)
    assert row["payload"] == {"primary_remote_id": "REMOTE-JANE", "merged_remote_id": "REMOTE-OLD"}
    assert row["depends_on"] == [{"entity": "contact", "record_key": jane}]
    linked = db.execute("SELECT outbox_id FROM sync.destination_merges").fetchone()
    assert linked == (row["outbox_id"],)
    # a second run adds nothing
    again = queue_destination(db, "hubspot", HandRenderer())
    db.commit()
    assert again.merges.queued == 0
    assert len(_merge_rows(db)) == 1


def test_salesforce_lists_the_pair_for_a_person_and_queues_no_merge(db: psycopg.Connection) -> None:
    jane, old, _ = _merged_pair(db, "salesforce")
    report = queue_destination(db, "salesforce", HandRenderer())
    db.commit()
    assert report.merges.listed == 1
    assert report.merges.queued == 0
    assert _merge_rows(db) == [
        ("salesforce", "crm_task", "pending", jane, old, "REMOTE-JANE", "REMOTE-OLD", False)
    ]
    assert not [r for r in outbox_rows(db, "salesforce") if r["operation"] == "merge"]
    listed = list_merges(db, destination="salesforce")
    assert [(m.survivor_key, m.merged_key, m.method) for m in listed] == [(jane, old, "crm_task")]
    done = mark_merge_done(db, listed[0].destination_merge_id, actor="cli:alex")
    db.commit()
    assert done.status == "merged"
    assert done.resolved_by == "cli:alex"
    gone = db.execute(
        "SELECT remote_deleted_at IS NOT NULL FROM sync.destination_state WHERE record_key = %s", (old,)
    ).fetchone()
    assert gone == (True,)
    audit = db.execute(
        "SELECT actor, object_id FROM sync.audit_log WHERE action = 'delivery.merge_done'"
    ).fetchone()
    assert audit == ("cli:alex", str(listed[0].destination_merge_id))
    assert list_merges(db, destination="salesforce") == []
    with pytest.raises(MergeError, match="not pending"):
        mark_merge_done(db, listed[0].destination_merge_id, actor="cli:alex")


def test_an_api_merge_cannot_be_marked_done_by_hand(db: psycopg.Connection) -> None:
    _merged_pair(db, "hubspot")
    queue_destination(db, "hubspot", HandRenderer())
    db.commit()
    (merge_id,) = db.execute("SELECT destination_merge_id FROM sync.destination_merges").fetchone()  # type: ignore[misc]
    with pytest.raises(MergeError, match="merge API"):
        mark_merge_done(db, merge_id, actor="cli:alex")
    with pytest.raises(MergeError, match="no destination merge"):
        mark_merge_done(db, 999_999, actor="cli:alex")


def test_a_merge_undone_before_the_destination_merged_is_superseded(db: psycopg.Connection) -> None:
    _, old, decision = _merged_pair(db, "hubspot")
    queue_destination(db, "hubspot", HandRenderer())
    db.commit()
    unmerge(db, decision)
    db.commit()
    report = queue_destination(db, "hubspot", HandRenderer())
    db.commit()
    assert report.merges.superseded == 1
    assert _merge_rows(db)[0][2] == "superseded"
    by_key = {(r["record_key"], r["operation"]): r["state"] for r in outbox_rows(db, "hubspot")}
    assert by_key[(old, "merge")] == "canceled"
    # the revived donor is live again: its own contact is queued like any other
    assert (old, "upsert") in by_key


def test_a_merge_of_a_donor_that_never_landed_needs_nothing_there(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    old = add_donor(db, "Jane", "Old")
    land(db, "hubspot", "contact", jane, {"a": 1}, "REMOTE-JANE", donor_id=jane)
    merge(db, jane, old)
    db.commit()
    report = queue_destination(db, "hubspot", HandRenderer())
    db.commit()
    assert report.merges.queued == 0
    assert _merge_rows(db) == []


def test_both_donors_on_one_remote_record_is_merged_already(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    old = add_donor(db, "Jane", "Old")
    land(db, "hubspot", "contact", jane, {"a": 1}, "REMOTE-SAME", donor_id=jane)
    land(db, "hubspot", "contact", old, {"a": 2}, "REMOTE-SAME", donor_id=old)
    merge(db, jane, old)
    db.commit()
    report = queue_destination(db, "hubspot", HandRenderer())
    db.commit()
    assert report.merges.already_one == 1
    assert [r[2] for r in _merge_rows(db)] == ["merged"]
    assert not [r for r in outbox_rows(db, "hubspot") if r["operation"] == "merge"]
