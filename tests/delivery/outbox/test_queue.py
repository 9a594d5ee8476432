"""queue_destination: only what changed is queued, one pending row per record, after any in-flight one."""

from __future__ import annotations

import psycopg

from donor_sync.delivery.contracts import Operation, RecordRef, RenderedRecord
from donor_sync.delivery.outbox import QueueReport, Scope, queue_destination, queue_records
from donor_sync.delivery.outbox.queue import encode_payload
from tests.delivery.outbox.support import (
    HandRenderer,
    add_donor,
    add_gift,
    claim_all,
    land,
    outbox_rows,
    push_all,
)

DEST = "salesforce"


def _queue(
    db: psycopg.Connection, renderer: HandRenderer | None = None, scope: Scope | None = None
) -> QueueReport:
    report = queue_destination(db, DEST, renderer or HandRenderer(), scope=scope)
    db.commit()
    return report


def test_first_run_queues_every_record_with_its_dependencies(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane", "Okafor")
    add_gift(db, jane, "stripe:ch_1", "50.00")
    db.commit()
    report = _queue(db)
    assert report.entities["contact"].creates == 1
    assert report.entities["opportunity"].creates == 1
    rows = {r["entity"]: r for r in outbox_rows(db, DEST)}
    assert rows["contact"]["record_key"] == jane
    assert rows["contact"]["payload"]["first_name"] == "Jane"
    assert rows["contact"]["operation"] == "upsert"
    assert rows["opportunity"]["depends_on"] == [{"entity": "contact", "record_key": jane}]
    assert rows["opportunity"]["set_if_empty"] == ["stage"]
    assert rows["opportunity"]["priority"] == 120
    assert rows["opportunity"]["donor_id"] == jane
    # the database's hash is the one destination_state is compared with
    same = db.execute(
        "SELECT payload_sha256 = core.jsonb_sha256(payload) FROM sync.outbox WHERE entity = 'contact'"
    ).fetchone()
    assert same == (True,)


def test_second_run_with_nothing_changed_queues_nothing(db: psycopg.Connection) -> None:
    jane = add_donor(db)
    add_gift(db, jane, "stripe:ch_1")
    db.commit()
    _queue(db)
    before = outbox_rows(db, DEST)
    report = _queue(db, scope=Scope.full())
    assert report.queued == 0
    assert report.unchanged == 2
    assert outbox_rows(db, DEST) == before


def test_a_changed_field_queues_exactly_that_record(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane", "Okafor")
    sam = add_donor(db, "Sam", "Lee")
    add_gift(db, jane, "stripe:ch_1")
    db.commit()
    _queue(db)
    push_all(db, DEST)
    db.commit()
    db.execute("UPDATE core.donors SET last_name = 'Okafor-Reyes' WHERE donor_id = %s", (jane,))
    db.commit()
    report = _queue(db, scope=Scope.full())
    assert report.entities["contact"].updates == 1
    assert report.entities["contact"].unchanged == 1
    assert report.entities["opportunity"].queued == 0
    pending = outbox_rows(db, DEST, state="pending")
    assert [(r["entity"], r["record_key"]) for r in pending] == [("contact", jane)]
    assert pending[0]["payload"]["last_name"] == "Okafor-Reyes"
    assert sam not in {r["record_key"] for r in pending}


def test_incremental_run_reads_only_what_changed_since_the_watermark(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    add_donor(db, "Sam")
    db.commit()
    first = _queue(db)
    assert first.rows_read["donor"] == 2
    # the overlap window is re-read; move the watermark's overlap to zero to see the window exactly
    db.execute("UPDATE sync.watermarks SET overlap = interval '0' WHERE source = %s", (DEST,))
    db.commit()
    renderer = HandRenderer()
    second = _queue(db, renderer)
    assert second.rows_read["donor"] == 0
    assert renderer.rendered == []
    db.execute("UPDATE core.donors SET first_name = 'Janet' WHERE donor_id = %s", (jane,))
    db.commit()
    third = _queue(db, renderer)
    assert third.rows_read["donor"] == 1
    assert third.entities["contact"].queued == 1
    streams = [
        r[0]
        for r in db.execute("SELECT stream FROM sync.watermarks WHERE source = %s ORDER BY stream", (DEST,))
    ]
    assert streams == ["outbox_donor", "outbox_gift"]  # no merge seen yet: no merges position


def test_a_record_that_landed_with_the_same_payload_is_not_requeued(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane", "Okafor")
    db.commit()
    renderer = HandRenderer()
    # what the destination already holds: exactly what the mapping renders
    row = {
        "donor_id": jane,
        "first_name": "Jane",
        "last_name": "Okafor",
        "email": db.execute("SELECT email FROM core.donors WHERE donor_id = %s", (jane,)).fetchone()[0],  # type: ignore[index]
        "household_name": None,
        "gift_count": 0,
    }
    from tests.delivery.outbox.support import contact_payload

    land(db, DEST, "contact", jane, contact_payload(row), "003A", donor_id=jane)
    db.commit()
    report = _queue(db, renderer)
    assert report.entities["contact"].unchanged == 1
    assert report.entities["contact"].queued == 0
    assert outbox_rows(db, DEST) == []


def test_pending_rows_are_replaced_not_duplicated(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    db.commit()
    _queue(db)
    first = outbox_rows(db, DEST)
    db.execute("UPDATE core.donors SET first_name = 'Janet' WHERE donor_id = %s", (jane,))
    db.commit()
    report = _queue(db)
    assert report.entities["contact"].creates == 1
    assert report.entities["contact"].replaced == 1
    rows = outbox_rows(db, DEST)
    assert len(rows) == 1
    assert rows[0]["outbox_id"] == first[0]["outbox_id"]
    assert rows[0]["payload"]["first_name"] == "Janet"


def test_an_in_flight_record_gets_a_follow_up_pending_row(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    db.commit()
    _queue(db)
    assert claim_all(db, DEST) == 1
    db.commit()
    # unchanged while in flight: nothing more to queue
    assert _queue(db, scope=Scope.full()).queued == 0
    db.execute("UPDATE core.donors SET first_name = 'Janet' WHERE donor_id = %s", (jane,))
    db.commit()
    report = _queue(db, scope=Scope.full())
    assert report.queued == 1
    rows = outbox_rows(db, DEST)
    assert [(r["state"], r["payload"]["first_name"]) for r in rows] == [
        ("in_flight", "Jane"),
        ("pending", "Janet"),
    ]


def test_a_change_reverted_before_the_push_withdraws_the_pending_row(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    db.commit()
    _queue(db)
    push_all(db, DEST)
    db.execute("UPDATE core.donors SET first_name = 'Janet' WHERE donor_id = %s", (jane,))
    db.commit()
    assert _queue(db, scope=Scope.full()).queued == 1
    db.execute("UPDATE core.donors SET first_name = 'Jane' WHERE donor_id = %s", (jane,))
    db.commit()
    report = _queue(db, scope=Scope.full())
    assert report.entities["contact"].withdrawn == 1
    assert report.queued == 0
    states = [(r["state"], r["error_code"]) for r in outbox_rows(db, DEST)]
    assert states == [("succeeded", None), ("canceled", "withdrawn")]


def test_a_donor_who_stops_being_rendered_has_its_pending_upsert_withdrawn(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    db.commit()
    _queue(db)
    db.execute("UPDATE core.donors SET do_not_contact = true WHERE donor_id = %s", (jane,))
    db.commit()
    report = _queue(db)
    assert report.entities["contact"].withdrawn == 1
    assert [r["state"] for r in outbox_rows(db, DEST)] == ["canceled"]


def test_queue_records_dedupes_a_record_rendered_twice_last_wins(db: psycopg.Connection) -> None:
    jane = add_donor(db)
    db.commit()
    records = [
        RenderedRecord("contact", jane, Operation.UPSERT, {"n": 1}, donor_id=jane),
        RenderedRecord("contact", jane, Operation.UPSERT, {"n": 2}, donor_id=jane),
        RenderedRecord(
            "deal",
            "stripe:ch_9",
            Operation.UPSERT,
            {"d": "x"},
            depends_on=(RecordRef("contact", jane),),
            set_if_empty=frozenset({'odd"name', "back\\slash", "plain"}),
        ),
    ]
    counts = queue_records(db, "hubspot", records)
    db.commit()
    assert counts["contact"].creates == 1
    assert counts["deal"].creates == 1
    rows = outbox_rows(db, "hubspot")
    assert [r["payload"] for r in rows] == [{"n": 2}, {"d": "x"}]
    assert rows[1]["set_if_empty"] == ["back\\slash", 'odd"name', "plain"]
    again = queue_records(db, "hubspot", records)
    assert sum(c.queued for c in again.values()) == 0


def test_payload_encoding_is_stable_for_dates_and_decimals() -> None:
    from datetime import date
    from decimal import Decimal

    assert encode_payload({"b": Decimal("10.50"), "a": date(2026, 1, 2)}) == '{"b":"10.50","a":"2026-01-02"}'


def test_payload_text_with_separators_and_escapes_round_trips(db: psycopg.Connection) -> None:
    payload = {"note": 'line one\nline two\ttabbed \\ back\\slash "quoted" é ✓', "n": 1.5, "none": None}
    tricky_key = "key\twith\\odd\nchars"
    counts = queue_records(db, "hubspot", [RenderedRecord("note", tricky_key, Operation.UPSERT, payload)])
    db.commit()
    assert counts["note"].creates == 1
    (row,) = outbox_rows(db, "hubspot")
    assert row["payload"] == payload
    assert row["record_key"] == tricky_key
    assert row["donor_id"] is None


def test_a_dead_lettered_payload_waits_for_a_person_and_a_changed_one_is_queued(
    db: psycopg.Connection,
) -> None:
    jane = add_donor(db, "Jane", "Okafor")
    db.commit()
    _queue(db)
    # The destination refused the contact for good: the outbox row is dead, a letter is open.
    db.execute(
        "INSERT INTO sync.dead_letters (outbox_id, destination, entity, record_key, donor_id, operation,"
        " payload, payload_sha256, error_class, error_code, remediation, attempts, first_failed_at,"
        " last_failed_at)"
        " SELECT outbox_id, destination, entity, record_key, donor_id, operation, payload, payload_sha256,"
        " 'duplicate_rule', 'ALREADY_EXISTS', 'merge them', 1, now(), now()"
        " FROM sync.outbox WHERE destination = %s AND entity = 'contact'",
        (DEST,),
    )
    db.execute("UPDATE sync.outbox SET state = 'dead' WHERE destination = %s AND entity = 'contact'", (DEST,))
    db.commit()
    again = _queue(db, scope=Scope.full())
    assert again.entities["contact"].queued == 0, "the same payload is not retried every run"
    assert again.entities["contact"].unchanged == 1
    db.execute("UPDATE core.donors SET last_name = 'Okafor-Reyes' WHERE donor_id = %s", (jane,))
    db.commit()
    changed = _queue(db, scope=Scope.full())
    assert changed.entities["contact"].creates == 1, "a changed record gets another chance"
