"""Erasure against real Postgres: the cascade, the local purge (no PII left in any table), receipts,
resumption after a failed destination, and no resurrection when the same records come back."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from donor_sync.privacy.requests.identifiers import normalize
from donor_sync.privacy.requests.process import process_requests
from donor_sync.privacy.requests.store import create_request, get_request
from tests.privacy.erasure.support import (
    EMAIL,
    KEYS,
    PII,
    ROTATED,
    FakeEraser,
    land_subject,
    pii_hits,
    standardize_and_resolve,
    subject_donor,
)
from tests.standardize.test_pipeline_support import sample


def _attach_everything(db: psycopg.Connection, donor: object) -> None:
    """What delivery, consent, stewardship and review attach to a donor, PII included where they may."""
    other = db.execute("SELECT donor_id FROM core.donors WHERE donor_id <> %s LIMIT 1", (donor,)).fetchone()
    assert other is not None
    db.execute(
        "INSERT INTO sync.outbox (destination, entity, record_key, donor_id, operation, payload,"
        " payload_sha256,"
        " state) VALUES ('hubspot', 'contact', %(d)s::text, %(d)s, 'upsert', %(p)s, core.jsonb_sha256(%(p)s),"
        " 'succeeded'), ('salesforce', 'contact', %(d)s::text, %(d)s, 'upsert', %(p)s,"
        " core.jsonb_sha256(%(p)s), 'pending')",
        {"d": donor, "p": json.dumps({"email": EMAIL, "firstname": "Zebulon", "lastname": "Quixwright"})},
    )
    db.execute(
        "INSERT INTO sync.dead_letters (destination, entity, record_key, donor_id, operation, payload,"
        " payload_sha256, error_class, remediation, attempts, first_failed_at, last_failed_at)"
        " VALUES ('mailchimp', 'member', 'x', %(d)s, 'upsert', %(p)s, core.jsonb_sha256(%(p)s), 'validation',"
        " 'fix it', 1, now(), now())",
        {"d": donor, "p": json.dumps({"email_address": EMAIL})},
    )
    db.execute(
        "INSERT INTO sync.push_log (destination, entity, record_key, operation, attempt, outcome,"
        " error_class,"
        " message) VALUES ('mailchimp', 'member', 'x', 'upsert', 1, 'failed', 'validation',"
        " 'Member zebulon.quixwright@example.org looks fake')"
    )
    db.execute(
        "INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind)"
        " VALUES (%s, 'salesforce', '003ZQ', 'destination', 'contact')",
        (donor,),
    )
    db.execute(
        "INSERT INTO sync.destination_state (destination, entity, record_key, donor_id, remote_id)"
        " VALUES ('salesforce', 'contact', %s::text, %s, '003ZQ')",
        (donor, donor),
    )
    event = db.execute(
        "INSERT INTO core.consent_events (donor_id, purpose, channel, status, source, occurred_at, evidence,"
        " recorded_by) VALUES (%s, 'marketing', 'email', 'opt_in', 'donorbox', now(),"
        ' \'{"form": "Keep me informed", "version": "3"}\', \'test\') RETURNING consent_event_id',
        (donor,),
    ).fetchone()
    assert event is not None
    db.execute(
        "INSERT INTO core.consent_events (donor_id, purpose, channel, status, source, occurred_at, evidence,"
        " recorded_by) VALUES (%s, 'marketing', 'sms', 'opt_out', 'staff', now(),"
        " '{\"note\": \"Zebulon called to opt out\"}', 'test')",
        (donor,),
    )
    db.execute(
        "INSERT INTO core.consent_state (donor_id, purpose, channel, status, consent_event_id, effective_at)"
        " VALUES (%s, 'marketing', 'email', 'opt_in', %s, now())",
        (donor, event[0]),
    )
    db.execute(
        "INSERT INTO core.suppressions (donor_id, reason_code, source, note, created_by)"
        " VALUES (%s, 'do_not_solicit', 'salesforce', 'Zebulon asked by phone', 'staff')",
        (donor,),
    )
    household = db.execute(
        "INSERT INTO core.households (name, address_line1, city) VALUES ('Quixwright Household',"
        " '77 Wisteria Quay', 'Marbleton') RETURNING household_id"
    ).fetchone()
    assert household is not None
    db.execute(
        "INSERT INTO core.household_members (donor_id, household_id, role, linked_by)"
        " VALUES (%s, %s, 'primary', 'test')",
        (donor, household[0]),
    )
    a, b = sorted([str(donor), str(other[0])])
    db.execute(
        "INSERT INTO sync.review_queue (left_donor_id, right_donor_id, score, band, note)"
        " VALUES (%s, %s, 0.7, 'review', 'Zebulon twin?')",
        (a, b),
    )
    db.execute(
        "UPDATE core.gifts SET tribute_type = 'in_honor', tribute_name = 'Zebulon Senior',"
        ' tribute_notify = \'{"email": "zeb.sr@example.org"}\' WHERE donor_id = %s',
        (donor,),
    )
    db.commit()


@pytest.fixture
def world(db: psycopg.Connection, tmp_path: Path) -> psycopg.Connection:
    batches = land_subject(db, tmp_path, sample(40))
    standardize_and_resolve(db, batches)
    donor = subject_donor(db)
    _attach_everything(db, donor)
    assert pii_hits(db), "the scan finds the subject before the erasure"
    return db


def _erase(db: psycopg.Connection, erasers: list[FakeEraser], by: str = "email") -> str:
    value = {
        "email": " Zebulon.Quixwright@Example.org ",
        "phone": "(617) 555-0199",
        "source_id": "stripe:cus_ZQ1",
    }[by]
    request = create_request(
        db,
        kind="erasure",
        identifiers=[normalize(by, value)],
        ring=KEYS.ring("tombstone"),  # type: ignore[arg-type]
        channel="cli",
        requested_by="cli:test",
    )
    db.commit()
    assert request.donor_id is not None
    process_requests(db, erasers=erasers, keys=KEYS, actor="test:privacy")
    return str(request.request_id)


def test_erasure_leaves_no_pii_in_any_table_and_keeps_gifts(world: psycopg.Connection) -> None:
    db = world
    donor = subject_donor(db)
    gifts_before = db.execute(
        "SELECT count(*), sum(amount) FROM core.gifts WHERE donor_id = %s", (donor,)
    ).fetchone()
    sf, hs = FakeEraser("salesforce"), FakeEraser("hubspot")
    rid = _erase(db, [sf, hs])

    view = get_request(db, rid)
    assert view.status == "completed", view.error
    assert {r.system: r.status for r in view.receipts} == {
        "salesforce": "done",
        "hubspot": "done",
        "outbound_webhooks": "done",  # donor.erased queued for the event subscribers
        "staging": "done",
    }
    announced = next(r for r in view.receipts if r.system == "outbound_webhooks")
    assert announced.verified
    assert announced.counts == {"subscribers": 1}
    staging = next(r for r in view.receipts if r.system == "staging")
    assert staging.verified
    assert staging.counts["raw_records"] >= 4
    assert staging.counts["csv_rows"] == 1
    assert sf.seen
    assert EMAIL in sf.seen[0].emails
    assert "+16175550199" in sf.seen[0].phones
    assert [r.remote_id for r in sf.seen[0].remote_ids["salesforce"]] == ["003ZQ"]

    assert pii_hits(db) == []
    # the donor row and its gifts (financial records) stay; everything identifying goes
    row = db.execute(
        "SELECT erased_at, email, first_name FROM core.donors WHERE donor_id = %s", (donor,)
    ).fetchone()
    assert row is not None
    assert row[0] is not None
    assert row[1] is None
    assert row[2] is None
    assert (
        db.execute("SELECT count(*), sum(amount) FROM core.gifts WHERE donor_id = %s", (donor,)).fetchone()
        == gifts_before
    )
    assert db.execute("SELECT count(*) FROM core.donor_sources WHERE donor_id = %s", (donor,)).fetchone() == (
        0,
    )
    # the other donor keeps everything
    assert db.execute("SELECT count(*) FROM core.donors WHERE email LIKE 'jacob.balby%%'").fetchone() == (1,)
    # the form-text consent event stays (no PII); the one naming the donor is gone
    assert db.execute(
        "SELECT count(*) FROM core.consent_events WHERE donor_id = %s", (donor,)
    ).fetchone() == (1,)
    kinds = {r[0] for r in db.execute("SELECT hash_kind FROM core.erasure_tombstones").fetchall()}
    assert kinds == {"email", "phone", "source_id"}
    actions = [r[0] for r in db.execute("SELECT action FROM sync.audit_log ORDER BY audit_id").fetchall()]
    assert "privacy_request.received" in actions
    assert "donor.erased" in actions
    audit_text = db.execute(
        "SELECT string_agg(details::text || object_id, ' ') FROM sync.audit_log"
    ).fetchone()
    assert audit_text
    assert not any(p in str(audit_text[0]).lower() for p in PII)


def test_a_failed_destination_keeps_local_data_until_it_is_done(world: psycopg.Connection) -> None:
    db = world
    sf, hs = FakeEraser("salesforce"), FakeEraser("hubspot", fail=True)
    rid = _erase(db, [sf, hs], by="phone")
    view = get_request(db, rid)
    assert view.status == "failed"
    assert view.error == "systems not done: hubspot"
    assert "staging" not in {r.system for r in view.receipts}
    # frozen, not purged: the destinations can still be found on the next attempt
    assert db.execute(
        "SELECT email, erased_at IS NOT NULL FROM core.donors WHERE lower(email) = %s", (EMAIL,)
    ).fetchone() == (EMAIL, True)
    # nothing about the donor is waiting to go out (the donor.erased event for subscribers is)
    assert db.execute(
        "SELECT count(*) FROM sync.outbox WHERE state = 'pending' AND donor_id IS NOT NULL"
    ).fetchone() == (0,)

    hs.fail = False
    process_requests(db, erasers=[sf, hs], keys=KEYS, actor="test:privacy")
    view = get_request(db, rid)
    assert view.status == "completed"
    assert view.attempts == 2
    assert len(sf.seen or []) == 1, "a done system is not asked again"
    assert {r.system: r.attempts for r in view.receipts}["hubspot"] == 2
    assert pii_hits(db) == []


def test_reimported_records_do_not_bring_the_donor_back(world: psycopg.Connection, tmp_path: Path) -> None:
    db = world
    donor = subject_donor(db)
    gifts = db.execute("SELECT count(*) FROM core.gifts WHERE donor_id = %s", (donor,)).fetchone()
    _erase(db, [FakeEraser("salesforce")], by="source_id")
    donors = db.execute("SELECT count(*) FROM core.donors").fetchone()

    # the same records again, by API, webhook (a new event) and CSV, under a rotated tombstone key
    again = land_subject(db, tmp_path / "again", sample(40), webhook_event="evt_ZQ3")
    standardize_and_resolve(db, again, keys=ROTATED)

    assert db.execute("SELECT count(*) FROM core.donors").fetchone() == donors
    assert pii_hits(db) == []
    assert db.execute("SELECT count(*) FROM core.gifts WHERE donor_id = %s", (donor,)).fetchone() == gifts
    reasons = db.execute(
        "SELECT count(*) FROM staging.dispositions WHERE reason = 'erased_subject' AND batch_id = ANY(%s)",
        (again,),
    ).fetchone()
    assert reasons == (1,)  # the Stripe customer: the other records carry gifts and stay staged
    jacob = db.execute("SELECT donor_id FROM core.donors WHERE email LIKE 'jacob.balby%%'").fetchone()
    staged = {
        r[0] for r in db.execute("SELECT donor_id FROM staging.donors WHERE batch_id = ANY(%s)", (again,))
    }
    assert jacob is not None
    assert donor in staged
    assert staged <= {donor, jacob[0]}


def test_encrypted_dead_letters_naming_the_donor_are_emptied(world: psycopg.Connection) -> None:
    """Dead-letter payloads are ciphertext at rest: SQL cannot search them, the purge opens them."""
    from donor_sync.delivery.dlq.store import get_dead_letter
    from donor_sync.privacy.crypto.fields import seal

    db = world
    other = db.execute(
        "SELECT donor_id FROM core.donors WHERE donor_id <> %s AND erased_at IS NULL LIMIT 1",
        (subject_donor(db),),
    ).fetchone()
    assert other is not None
    letters = []
    for status in ("open", "edited"):
        row = db.execute(
            "INSERT INTO sync.dead_letters (destination, entity, record_key, donor_id, operation, payload,"
            " payload_sha256, error_class, remediation, attempts, first_failed_at, last_failed_at)"
            " VALUES ('hubspot', 'contact', %s, %s, 'upsert', '{}', core.jsonb_sha256('{}'), 'validation',"
            " 'fix it', 1, now(), now()) RETURNING dead_letter_id",
            (f"shared-{status}", other[0]),
        ).fetchone()
        assert row is not None
        payload = {"email": EMAIL, "note": "a household address book entry"}
        db.execute(
            "UPDATE sync.dead_letters SET payload = %s, edited_payload = %s, status = %s,"
            " resolved_at = CASE WHEN %s = 'open' THEN NULL ELSE now() END,"
            " resolved_by = CASE WHEN %s = 'open' THEN NULL ELSE 'test' END WHERE dead_letter_id = %s",
            (
                json.dumps(seal("sync.dead_letters.payload", payload, row[0])),
                json.dumps(seal("sync.dead_letters.edited_payload", payload, row[0]))
                if status == "edited"
                else None,
                status,
                status,
                status,
                row[0],
            ),
        )
        letters.append(row[0])
    unrelated = db.execute(
        "INSERT INTO sync.dead_letters (destination, entity, record_key, donor_id, operation, payload,"
        " payload_sha256, error_class, remediation, attempts, first_failed_at, last_failed_at)"
        " VALUES ('hubspot', 'contact', 'unrelated', %s, 'upsert', '{}', core.jsonb_sha256('{}'),"
        " 'validation', 'fix it', 1, now(), now()) RETURNING dead_letter_id",
        (other[0],),
    ).fetchone()
    assert unrelated is not None
    db.execute(
        "UPDATE sync.dead_letters SET payload = %s WHERE dead_letter_id = %s",
        (
            json.dumps(seal("sync.dead_letters.payload", {"email": "someone@example.net"}, unrelated[0])),
            unrelated[0],
        ),
    )
    db.commit()
    stored = db.execute(
        "SELECT payload::text, edited_payload::text FROM sync.dead_letters WHERE dead_letter_id = ANY(%s)",
        (letters,),
    ).fetchall()
    assert EMAIL not in str(stored)  # ciphertext at rest

    rid = _erase(db, [FakeEraser("salesforce"), FakeEraser("hubspot")])

    assert get_request(db, rid).status == "completed"
    for letter_id in letters:
        letter = get_dead_letter(db, letter_id)
        assert EMAIL not in json.dumps(letter.payload)
        assert EMAIL not in json.dumps(letter.edited_payload)
    assert get_dead_letter(db, unrelated[0]).payload == {"email": "someone@example.net"}
