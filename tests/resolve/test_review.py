"""The review queue: proposals, approve (merge), reject (never again), defer, audit, labels."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from donor_sync.identity import MatchModel, fit_from_labels
from donor_sync.resolve import decide, get_review, labelled_pairs, list_reviews, merge_donors
from donor_sync.resolve.review import ReviewError
from tests.resolve.test_donors_support import ACTOR, JANE, NOW, donor_of, new_batch, rules, run, stage

MARCUS: dict[str, Any] = {
    "first_name": "Marcus",
    "last_name": "Whitfield",
    "email": "marcus.whitfield@example.net",
    "phone": "+13035550177",
    "address_line1": "9 Pearl St",
    "city": "Denver",
    "region": "CO",
    "postal_code": "80202",
    "country_code": "US",
    "address_validated": True,
}


def review_pair(db: psycopg.Connection, person: dict[str, Any], tag: str) -> tuple[str, str, int]:
    """Resolve a person, then a record with their name and address but another email and phone.

    Same name at one address with conflicting contacts could be a parent and child: review, never
    an automatic merge. Return (first donor, second donor, review id).
    """
    first = new_batch()
    stage(db, first, "donorbox", f"{tag}-1", **person)
    run(db, first)
    second = new_batch()
    stage(
        db,
        second,
        "classy",
        f"{tag}-2",
        **{**person, "email": f"{tag}@other.example.com", "phone": "+16175550999"},
    )
    run(db, second)
    a, b = donor_of(db, "donorbox", f"{tag}-1"), donor_of(db, "classy", f"{tag}-2")
    row = db.execute(
        "SELECT review_id FROM sync.review_queue WHERE left_donor_id = least(%s::uuid, %s::uuid)"
        " AND right_donor_id = greatest(%s::uuid, %s::uuid)",
        (a, b, a, b),
    ).fetchone()
    assert row is not None, "the pair was not queued"
    return a, b, int(row[0])


def test_a_review_pair_is_queued_with_score_and_explanation(db: psycopg.Connection) -> None:
    a, b, review_id = review_pair(db, JANE, "j")
    assert a != b
    [review] = list_reviews(db)
    assert review.review_id == review_id
    assert 0.8 <= review.score < 1.0
    assert review.band == "review"
    assert review.status == "pending"
    assert set(review.contributions) >= {"first_name", "last_name", "email", "phone", "address"}
    assert "okafor" not in str(review.contributions).lower()
    detail = get_review(db, review_id)
    assert {detail.left["first_name"], detail.right["first_name"]} == {"Jane"}
    assert len(detail.left_records) == len(detail.right_records) == 1


def test_approve_merges_the_pair_reversibly_and_moves_every_id(db: psycopg.Connection) -> None:
    a, b, review_id = review_pair(db, JANE, "j")
    # a destination id of each donor (a Salesforce contact), and a donor merged earlier into one of them
    for donor, contact in ((a, "003A"), (b, "003B")):
        db.execute(
            "INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind)"
            " VALUES (%s, 'salesforce', %s, 'destination', 'contact')",
            (donor, contact),
        )
    stage(
        db, third := new_batch(), "event_platform", "e-7", first_name="Old", last_name="Record", city="Nome"
    )
    run(db, third)
    old = donor_of(db, "event_platform", "e-7")
    merge_donors(db, b, old, rules=rules(), actor=ACTOR, now=NOW)
    db.commit()
    result = decide(db, review_id, "approve", actor="cli:alex", rules=rules(), now=NOW)
    db.commit()
    assert result.status == "decided"
    survivor, merged = result.survivor_id, result.merged_donor_id
    assert {survivor, merged} == {a, b}
    assert survivor == b  # no gifts, created at the same time: the donor with more records survives
    assert db.execute(
        "SELECT merged_into::text FROM core.donors WHERE donor_id = %s", (merged,)
    ).fetchone() == (survivor,)
    # never chained: the donor merged into the merged-away one now points at the survivor
    assert db.execute("SELECT merged_into::text FROM core.donors WHERE donor_id = %s", (old,)).fetchone() == (
        survivor,
    )
    owners = dict(db.execute("SELECT external_id, donor_id::text FROM core.donor_sources").fetchall())
    assert owners == {"j-1": survivor, "j-2": survivor, "003A": survivor, "003B": survivor, "e-7": survivor}
    moved = "j-1" if merged == a else "j-2"
    rows = db.execute(
        "SELECT c.decision, c.review_id, c.decision_id::text FROM core.cluster_map c"
        " JOIN core.donor_sources ds USING (donor_source_id) WHERE ds.external_id = %s ORDER BY"
        " c.cluster_map_id",
        (moved,),
    ).fetchall()
    assert [r[0] for r in rows] == ["new_donor", "review_approved"]
    assert rows[1][1] == review_id
    assert rows[1][2] == result.decision_id
    assert db.execute(
        "SELECT count(*) FROM core.donor_match_keys WHERE donor_id = %s", (merged,)
    ).fetchone() == (0,)
    actions = [
        r[0]
        for r in db.execute(
            "SELECT action FROM sync.audit_log WHERE actor = 'cli:alex' ORDER BY audit_id"
        ).fetchall()
    ]
    assert actions == ["donor.merged", "review.decided"]
    details = db.execute("SELECT details FROM sync.audit_log WHERE action = 'review.decided'").fetchone()
    assert details is not None
    assert details[0]["decision"] == "approve"
    assert "Jane" not in str(details[0])
    with pytest.raises(ReviewError, match="cannot be decided again"):
        decide(db, review_id, "reject", actor="cli:alex", rules=rules(), now=NOW)


def test_a_rejected_pair_is_never_proposed_again(db: psycopg.Connection) -> None:
    a, b, review_id = review_pair(db, JANE, "j")
    result = decide(
        db, review_id, "reject", actor="cli:alex", rules=rules(), note="mother and daughter", now=NOW
    )
    db.commit()
    assert result.status == "decided"
    assert list_reviews(db) == []
    # another record of the second donor arrives: it joins that donor, and the pair is not queued again
    again = new_batch()
    stage(db, again, "stripe", "cus_j3", **{**JANE, "email": "j@other.example.com", "phone": "+16175550999"})
    counts = run(db, again)
    assert donor_of(db, "stripe", "cus_j3") == b
    assert counts.review_queued == 0
    assert db.execute("SELECT count(*) FROM sync.review_queue").fetchone() == (1,)
    assert db.execute("SELECT merged_into FROM core.donors WHERE donor_id = %s", (a,)).fetchone() == (None,)


def test_defer_keeps_the_pair_in_the_queue(db: psycopg.Connection) -> None:
    _, _, review_id = review_pair(db, JANE, "j")
    result = decide(db, review_id, "defer", actor="cli:alex", rules=rules(), now=NOW)
    db.commit()
    assert result.status == "deferred"
    [review] = list_reviews(db)
    assert (review.review_id, review.status, review.decision) == (review_id, "deferred", None)
    assert list_reviews(db, statuses=("pending",)) == []
    # a deferred pair can still be decided
    assert decide(db, review_id, "reject", actor="cli:alex", rules=rules(), now=NOW).status == "decided"
    audited = db.execute("SELECT count(*) FROM sync.audit_log WHERE action = 'review.decided'").fetchone()
    assert audited == (2,)


def test_unknown_review_is_an_error(db: psycopg.Connection) -> None:
    with pytest.raises(ReviewError, match="no review 424242"):
        decide(db, 424242, "approve", actor="cli:alex", rules=rules(), now=NOW)


def test_decisions_are_labelled_pairs_for_refitting_weights(db: psycopg.Connection) -> None:
    _, _, approved = review_pair(db, JANE, "j")
    _, _, rejected = review_pair(db, MARCUS, "m")
    decide(db, approved, "approve", actor="cli:alex", rules=rules(), now=NOW)
    decide(db, rejected, "reject", actor="cli:alex", rules=rules(), now=NOW)
    db.commit()
    pairs = labelled_pairs(db, rules())
    assert pairs.review_ids.tolist() == sorted([approved, rejected])
    assert pairs.labels.tolist() == [True, False] if approved < rejected else [False, True]
    assert pairs.levels.shape == (2, len(rules().dedup.comparisons))
    names = [c.name for c in rules().dedup.comparisons]
    assert (pairs.levels[:, names.index("first_name")] == 1).all()  # exact first names on both
    model = MatchModel.from_rules(rules().dedup)
    fitted = fit_from_labels(model, pairs.levels, pairs.labels)
    assert fitted.history[-1] == {"step": "labels", "matches": 1, "non_matches": 1}
