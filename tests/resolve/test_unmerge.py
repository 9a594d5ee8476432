"""unmerge: a merge followed by its unmerge gives back the same golden records and mappings."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from donor_sync.resolve import decide, unmerge
from donor_sync.resolve.unmerge import UnmergeError
from tests.resolve.test_donors_support import (
    ACTOR,
    JANE,
    NOW,
    current_mapping,
    donor_of,
    new_batch,
    rules,
    run,
    snapshot,
    stage,
)
from tests.resolve.test_review import review_pair


def test_unmerge_after_approve_restores_golden_records_and_mappings_exactly(db: psycopg.Connection) -> None:
    _, _, review_id = review_pair(db, JANE, "j")
    # give each side more than one record, so survivorship has something to choose between
    extra = new_batch()
    stage(db, extra, "event_platform", "e-1", **{**JANE, "first_name": "Janie", "email": None, "phone": None})
    run(db, extra)
    before = snapshot(db)
    result = decide(db, review_id, "approve", actor="cli:alex", rules=rules(), now=NOW + timedelta(minutes=1))
    db.commit()
    assert snapshot(db) != before
    undone = unmerge(
        db, result.decision_id or "", actor="cli:alex", rules=rules(), now=NOW + timedelta(minutes=2)
    )
    db.commit()
    assert undone.revived_donor_id == result.merged_donor_id
    assert undone.new_donor_id is None
    after = snapshot(db)
    assert after["donors"] == before["donors"]  # byte-identical golden records (all but updated_at)
    assert after["mappings"] == before["mappings"]  # the very same cluster_map rows are current again
    assert after["sources"] == before["sources"]
    assert after["keys"] == before["keys"]
    history = db.execute(
        "SELECT decision, closed_by_decision::text FROM core.cluster_map WHERE decision = 'review_approved'"
    ).fetchall()
    assert history
    assert all(closed == undone.unmerge_decision_id for _, closed in history)
    audit = db.execute("SELECT details FROM sync.audit_log WHERE action = 'donor.unmerged'").fetchone()
    assert audit is not None
    assert audit[0]["decision_id"] == result.decision_id
    with pytest.raises(UnmergeError, match="already undone"):
        unmerge(db, result.decision_id or "", actor="cli:alex", rules=rules())


def test_unmerge_by_donor_id_undoes_the_merge_that_took_it(db: psycopg.Connection) -> None:
    _, _, review_id = review_pair(db, JANE, "j")
    result = decide(db, review_id, "approve", actor=ACTOR, rules=rules(), now=NOW)
    db.commit()
    undone = unmerge(db, result.merged_donor_id or "", actor=ACTOR, rules=rules())
    db.commit()
    assert undone.decision_id == result.decision_id
    live = db.execute("SELECT count(*) FROM core.donors WHERE merged_into IS NULL").fetchone()
    assert live == (2,)


def test_unmerge_of_an_automatic_attach_gives_the_records_a_donor_of_their_own(
    db: psycopg.Connection,
) -> None:
    batch = new_batch()
    stage(db, batch, "donorbox", "d-1", **JANE)
    run(db, batch)
    jane = donor_of(db, "donorbox", "d-1")
    golden = snapshot(db)["donors"]
    later = new_batch()
    stage(db, later, "classy", "c-1", **{**JANE, "email": "jokafor@work.example.com", "first_name": "Janie"})
    run(db, later)
    _, decision, _ = current_mapping(db, "classy", "c-1")
    assert decision == "auto_merge"
    decision_id = db.execute(
        "SELECT decision_id::text FROM core.merge_decisions WHERE survivor_id = %s", (jane,)
    ).fetchone()
    assert decision_id is not None
    undone = unmerge(db, decision_id[0], actor=ACTOR, rules=rules())
    db.commit()
    assert undone.new_donor_id is not None
    donor, decision, _ = current_mapping(db, "classy", "c-1")
    assert (donor, decision) == (undone.new_donor_id, "unmerge")
    # Jane's golden record is back to what it was before the attach
    assert [r for r in snapshot(db)["donors"] if str(r[0]) == jane] == golden
    first = db.execute(
        "SELECT first_name FROM core.donors WHERE donor_id = %s", (undone.new_donor_id,)
    ).fetchone()
    assert first == ("Janie",)


def test_a_decision_moved_on_by_a_later_merge_must_wait(db: psycopg.Connection) -> None:
    _, _, review_id = review_pair(db, JANE, "j")
    result = decide(db, review_id, "approve", actor=ACTOR, rules=rules(), now=NOW)
    other = new_batch()
    stage(db, other, "event_platform", "e-9", first_name="Zed", last_name="Quill", city="Nome")
    run(db, other)
    from donor_sync.resolve import merge_donors

    zed = donor_of(db, "event_platform", "e-9")
    merge_donors(
        db, zed, result.survivor_id or "", rules=rules(), actor=ACTOR, now=NOW + timedelta(minutes=5)
    )
    with pytest.raises(UnmergeError, match=r"later decision|merged into another"):
        unmerge(db, result.decision_id or "", actor=ACTOR, rules=rules())


def test_nothing_to_unmerge_is_an_error(db: psycopg.Connection) -> None:
    with pytest.raises(UnmergeError, match="no merge decision"):
        unmerge(db, "00000000-0000-0000-0000-000000000001", actor=ACTOR, rules=rules())
