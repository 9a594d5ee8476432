"""Queue time: a record whose dependency is not sent to the destination is skipped with its
reason, never queued to wait for it; one whose dependency is coming (queued now, landed, pending,
in flight, or a dead letter a person decides on) is queued as before."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import pytest

from donor_sync.delivery.contracts import Operation, RecordRef, RenderedRecord, SyncMode
from donor_sync.delivery.outbox import Scope, queue_destination
from donor_sync.delivery.outbox.dependencies import DEPENDENCY_NOT_SENT
from tests.delivery.outbox.support import HandRenderer, add_donor, add_gift, land, outbox_rows, push_all

DEST = "salesforce"


def _open_dead_letter(db: psycopg.Connection, donor_id: str) -> None:
    db.execute(
        "INSERT INTO sync.dead_letters (destination, entity, record_key, donor_id, operation, payload,"
        " payload_sha256, error_class, error_code, remediation, attempts, first_failed_at, last_failed_at)"
        " VALUES (%s, 'contact', %s, %s, 'upsert', '{}', core.jsonb_sha256('{}'), 'validation',"
        " 'INVALID_EMAIL', 'fix it', 1, now(), now())",
        (DEST, donor_id, donor_id),
    )


def _queued_gifts(db: psycopg.Connection) -> set[str]:
    return {r["record_key"] for r in outbox_rows(db, DEST, state="pending") if r["entity"] == "opportunity"}


@pytest.mark.parametrize(
    ("contact", "queued"),
    [
        pytest.param("rendered", True, id="contact-queued-in-the-same-run"),
        pytest.param("never", False, id="contact-never-sent"),
        pytest.param("landed", True, id="contact-landed-before"),
        pytest.param("dead_letter", True, id="contact-is-an-open-dead-letter"),
    ],
)
def test_a_gift_is_queued_only_when_its_contact_is_coming(
    db: psycopg.Connection, contact: str, queued: bool
) -> None:
    donor = add_donor(db)
    gift = add_gift(db, donor, "stripe:ch_1")
    if contact == "landed":
        land(db, DEST, "contact", donor, {"old": True}, "003X", donor_id=donor)
    if contact == "dead_letter":
        _open_dead_letter(db, donor)
    db.commit()
    renderer = HandRenderer(exclude=set() if contact == "rendered" else {donor})

    report = queue_destination(db, DEST, renderer)
    db.commit()

    assert (gift in _queued_gifts(db)) is queued
    counts = report.entities["opportunity"]
    assert (counts.creates, counts.skipped) == ((1, 0) if queued else (0, 1))
    assert report.skips == ({} if queued else {DEPENDENCY_NOT_SENT: 1})
    assert report.metrics().get(f"records_skipped_{DEPENDENCY_NOT_SENT}", 0) == (0 if queued else 1)


def test_a_gift_waits_for_a_contact_queued_by_an_earlier_run_but_not_for_one_going_away(
    db: psycopg.Connection,
) -> None:
    donor = add_donor(db)
    db.commit()
    renderer = HandRenderer(modes={"contact": (SyncMode.MIRROR, Operation.ARCHIVE)})
    queue_destination(db, DEST, renderer)  # the contact is pending
    db.commit()
    first = add_gift(db, donor, "stripe:ch_1")
    db.commit()
    # Only the gift is considered: its contact is pending from the earlier run.
    report = queue_destination(db, DEST, renderer, scope=Scope.of(keys={"gift": [first]}))
    db.commit()
    assert report.skips == {}
    assert first in _queued_gifts(db)

    push_all(db, DEST)
    db.commit()
    # The donor is filtered out now: the landed contact is archived (mirror), so a new gift of
    # theirs has nothing to point at.
    renderer.exclude.add(donor)
    second = add_gift(db, donor, "stripe:ch_2")
    db.commit()
    report = queue_destination(db, DEST, renderer, approved=True)
    db.commit()
    assert report.entities["contact"].archives == 1
    assert report.skips == {DEPENDENCY_NOT_SENT: 1}
    assert second not in _queued_gifts(db)


def test_mode_skips_carry_their_reason(db: psycopg.Connection) -> None:
    known = add_donor(db, "Known")
    add_donor(db, "New")
    land(db, DEST, "contact", known, {"old": True}, "003KNOWN", donor_id=known)
    db.commit()
    report = queue_destination(db, DEST, HandRenderer(modes={"contact": (SyncMode.UPDATE_ONLY, None)}))
    db.commit()
    assert report.skips == {"not_in_destination": 1}
    push_all(db, DEST)
    db.commit()
    created = queue_destination(
        db, DEST, HandRenderer(modes={"contact": (SyncMode.CREATE_ONLY, None)}), scope=Scope.full()
    )
    db.commit()
    assert created.skips == {"already_sent": 1}


def _payment(kind: str, row: Mapping[str, Any]) -> Iterator[RenderedRecord]:
    """A second-level child: a payment of each gift, pointing at the gift's opportunity."""
    if kind == "gift":
        key = str(row["gift_key"])
        yield RenderedRecord(
            "payment", f"{key}:1", Operation.UPSERT, {"amount": str(row["amount"])},
            donor_id=row["donor_id"], depends_on=(RecordRef("opportunity", key),),
        )  # fmt: skip


def test_a_child_of_a_skipped_record_is_skipped_too(db: psycopg.Connection) -> None:
    shown, hidden = add_donor(db, "Shown"), add_donor(db, "Hidden")
    add_gift(db, shown, "stripe:ch_s")
    add_gift(db, hidden, "stripe:ch_h")
    db.commit()
    report = queue_destination(db, DEST, HandRenderer(exclude={hidden}, extra=_payment))
    db.commit()
    queued = {(r["entity"], r["record_key"]) for r in outbox_rows(db, DEST, state="pending")}
    assert ("payment", "stripe:ch_s:1") in queued
    assert ("payment", "stripe:ch_h:1") not in queued
    assert report.skips == {DEPENDENCY_NOT_SENT: 2}  # the hidden donor's opportunity and payment


def _loops_over(plan: Mapping[str, Any], relation: str) -> int:
    """Sum the actual loops of every scan of ``relation`` in an EXPLAIN (ANALYZE, FORMAT JSON) tree."""
    own = int(plan.get("Actual Loops", 0)) if plan.get("Relation Name") == relation else 0
    return own + sum(_loops_over(child, relation) for child in plan.get("Plans", []))


def test_the_skip_reads_the_plan_once_however_many_records_depend(db: psycopg.Connection) -> None:
    # 2,000 opportunities on 1,000 contacts, 20 of them never sent. As an EXISTS per record the
    # planner hashed the whole plan table again for each record (time grew with its square).
    from donor_sync.delivery.outbox import dependencies
    from donor_sync.delivery.outbox.work_tables import OBJECTS_TABLE, PLAN_TABLE

    db.execute(f"CREATE TEMP TABLE {OBJECTS_TABLE} (entity text PRIMARY KEY, kind text NOT NULL)")
    db.execute(f"INSERT INTO {OBJECTS_TABLE} VALUES ('contact', 'donor'), ('opportunity', 'gift')")
    db.execute(
        f"CREATE TEMP TABLE {PLAN_TABLE} (entity text, record_key text, action text, reason text,"
        " depends_on jsonb)"
    )
    db.execute(
        f"INSERT INTO {PLAN_TABLE} SELECT 'contact', 'c' || g, 'create', NULL, '[]'::jsonb"
        " FROM generate_series(1, 980) g"
    )
    db.execute(
        f"INSERT INTO {PLAN_TABLE} SELECT 'opportunity', 'o' || g, 'create', NULL,"
        " jsonb_build_array(jsonb_build_object('entity', 'contact', 'record_key', 'c' || (g % 1000 + 1)))"
        " FROM generate_series(1, 2000) g"
    )
    db.execute(f"CREATE INDEX ON {PLAN_TABLE} (entity, record_key)")
    explained = db.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + dependencies._SKIP,
        {"d": DEST, "reason": DEPENDENCY_NOT_SENT},
    ).fetchone()
    assert explained is not None
    # The update itself, the row it updates, the record and its dependency: once each.
    assert _loops_over(explained[0][0]["Plan"], PLAN_TABLE) <= 4
    skipped = db.execute(
        f"SELECT count(*) FROM {PLAN_TABLE} WHERE action = 'skipped' AND reason = %s", (DEPENDENCY_NOT_SENT,)
    ).fetchone()
    assert skipped is not None
    assert skipped[0] == 40  # contacts c981-c1000, two opportunities each
