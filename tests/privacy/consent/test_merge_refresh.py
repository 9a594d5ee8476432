"""Merges and unmerges recompute consent: the survivor takes the most restrictive; unmerge undoes it."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from donor_sync.privacy.consent.events import ConsentEvent, record_events
from donor_sync.resolve import decide, unmerge
from tests.resolve.test_donors_support import JANE, NOW, rules
from tests.resolve.test_review import review_pair


def _status(db: psycopg.Connection, donor: str) -> str | None:
    row = db.execute(
        "SELECT status FROM core.consent_state"
        " WHERE donor_id = %s AND purpose = 'marketing' AND channel = 'email'",
        (donor,),
    ).fetchone()
    return None if row is None else str(row[0])


def test_merge_takes_the_most_restrictive_and_unmerge_restores_each(db: psycopg.Connection) -> None:
    first, second, review_id = review_pair(db, JANE, "c")
    db.commit()
    # Which side survives is survivorship's choice: find out, undo, then give the survivor the
    # opt-in and the merged-away donor the opt-out, so only a refresh on merge can get it right.
    probe = decide(db, review_id, "approve", actor="cli:alex", rules=rules(), now=NOW)
    a = str(probe.survivor_id)
    b = second if a == first else first
    db.rollback()
    record_events(
        db,
        [
            ConsentEvent(
                donor_id=a,
                purpose="marketing",
                channel="email",
                status="opt_in",
                source="donorbox",
                occurred_at=NOW - timedelta(days=3),
                recorded_by="test",
            ),
            ConsentEvent(
                donor_id=b,
                purpose="marketing",
                channel="email",
                status="opt_out",
                source="classy",
                occurred_at=NOW - timedelta(days=5),
                recorded_by="test",
            ),
        ],
        actor="test",
        now=NOW,
    )
    db.commit()
    assert (_status(db, a), _status(db, b)) == ("opt_in", "opt_out")

    result = decide(db, review_id, "approve", actor="cli:alex", rules=rules(), now=NOW + timedelta(minutes=1))
    db.commit()
    assert str(result.survivor_id) == a
    # The older opt-out of the merged record still binds the survivor: nobody chose again since.
    assert _status(db, a) == "opt_out"

    unmerge(db, result.decision_id or "", actor="cli:alex", rules=rules(), now=NOW + timedelta(minutes=2))
    db.commit()
    assert (_status(db, a), _status(db, b)) == ("opt_in", "opt_out")
