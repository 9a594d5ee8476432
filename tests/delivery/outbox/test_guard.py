"""The blast-radius guard stops a run over its share before anything is written, unless approved."""

from __future__ import annotations

import psycopg
import pytest

from donor_sync.delivery.contracts import Operation, SyncMode
from donor_sync.delivery.outbox import BlastRadiusExceeded, EntityCounts, Scope, queue_destination
from donor_sync.delivery.outbox.guard import evaluate
from donor_sync.delivery.settings import BlastRadius, DestinationSettings
from tests.delivery.outbox.support import HandRenderer, add_donor, outbox_rows, push_all, table_counts

DEST = "salesforce"
LIMITS = BlastRadius(max_destructive_share=0.2, max_overwrite_share=0.5, min_records=5)
SETTINGS = DestinationSettings(blast_radius=LIMITS)
MIRROR = HandRenderer(modes={"contact": (SyncMode.MIRROR, Operation.ARCHIVE)})


@pytest.mark.parametrize(
    ("counts", "landed", "exceeded"),
    [
        pytest.param(EntityCounts("contact", archives=2), 10, (), id="at-share-passes"),
        pytest.param(EntityCounts("contact", archives=3), 10, ("destructive",), id="over-destructive"),
        pytest.param(EntityCounts("contact", merges=2, deletes=1), 10, ("destructive",), id="merges-count"),
        pytest.param(EntityCounts("contact", updates=6), 10, ("overwrite",), id="over-overwrite"),
        pytest.param(EntityCounts("contact", creates=500), 10, (), id="creates-never-count"),
        pytest.param(EntityCounts("contact", archives=4), 4, (), id="below-min-records"),
        pytest.param(EntityCounts("contact", archives=4), 0, (), id="nothing-landed"),
    ],
)
def test_evaluate(counts: EntityCounts, landed: int, exceeded: tuple[str, ...]) -> None:
    verdict = evaluate(DEST, {"contact": counts}, {"contact": landed}, LIMITS)
    assert verdict.entities[0].exceeded == exceeded
    assert verdict.exceeded is bool(exceeded)


def _landed_contacts(db: psycopg.Connection, n: int) -> list[str]:
    donors = [add_donor(db, f"Donor{i}") for i in range(n)]
    db.commit()
    queue_destination(db, DEST, MIRROR, settings=SETTINGS)
    push_all(db, DEST)
    db.commit()
    return donors


def test_a_run_over_the_share_stops_and_writes_nothing(db: psycopg.Connection) -> None:
    donors = _landed_contacts(db, 10)
    # a bad filter: 3 of 10 contacts (30% > 20%) would be archived
    db.execute("UPDATE core.donors SET do_not_contact = true WHERE donor_id = ANY(%s::uuid[])", (donors[:3],))
    db.commit()
    before = table_counts(db)
    with pytest.raises(BlastRadiusExceeded) as stopped:
        queue_destination(db, DEST, MIRROR, settings=SETTINGS, run_id=None)
    db.rollback()
    message = str(stopped.value)
    assert "salesforce" in message
    assert "3 of 10" in message
    assert "30.0%" in message
    assert stopped.value.verdict.entities[0].destructive == 3
    assert table_counts(db) == before
    assert outbox_rows(db, DEST, state="pending") == []


def test_an_approved_run_goes_ahead_and_is_audited(db: psycopg.Connection) -> None:
    donors = _landed_contacts(db, 10)
    db.execute("UPDATE core.donors SET do_not_contact = true WHERE donor_id = ANY(%s::uuid[])", (donors[:3],))
    db.commit()
    report = queue_destination(
        db, DEST, MIRROR, settings=SETTINGS, approved=True, actor="dag:donations_hourly.queue"
    )
    db.commit()
    assert report.approved_over_limit
    assert report.entities["contact"].archives == 3
    assert len(outbox_rows(db, DEST, state="pending")) == 3
    audit = db.execute(
        "SELECT actor, object_type, object_id, details FROM sync.audit_log"
        " WHERE action = 'delivery.blast_radius_approved'"
    ).fetchall()
    assert len(audit) == 1
    actor, object_type, object_id, details = audit[0]
    assert (actor, object_type, object_id) == ("dag:donations_hourly.queue", "destination", DEST)
    contact = next(e for e in details["entities"] if e["entity"] == "contact")
    assert (contact["landed"], contact["destructive"], contact["exceeded"]) == (10, 3, ["destructive"])


def test_a_run_within_the_share_needs_no_approval_and_writes_no_audit(db: psycopg.Connection) -> None:
    donors = _landed_contacts(db, 10)
    db.execute("UPDATE core.donors SET do_not_contact = true WHERE donor_id = %s", (donors[0],))
    db.commit()
    report = queue_destination(db, DEST, MIRROR, settings=SETTINGS)
    db.commit()
    assert report.entities["contact"].archives == 1
    assert not report.approved_over_limit
    assert db.execute("SELECT count(*) FROM sync.audit_log").fetchone() == (0,)


def test_overwriting_most_records_also_stops(db: psycopg.Connection) -> None:
    _landed_contacts(db, 10)
    db.execute("UPDATE core.donors SET gift_count = gift_count + 1")  # a rollup change on every donor
    db.commit()
    with pytest.raises(BlastRadiusExceeded, match="10 of 10 landed records overwritten"):
        queue_destination(db, DEST, MIRROR, settings=SETTINGS, scope=Scope.full())
    db.rollback()
