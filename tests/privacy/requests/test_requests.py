"""Rights requests against real Postgres: intake (hashes), processing, locking, export, deadlines, CLI."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.db import connect
from donor_sync.privacy.requests.deadlines import check_deadlines, due_soon
from donor_sync.privacy.requests.identifiers import InvalidIdentifierError, normalize
from donor_sync.privacy.requests.process import LOCK_CLASS, process_requests
from donor_sync.privacy.requests.store import create_request, get_request, list_requests
from tests.privacy.erasure.support import (
    EMAIL,
    KEYS,
    NOW,
    PII,
    land_subject,
    standardize_and_resolve,
    subject_donor,
)
from tests.standardize.test_pipeline_support import sample

RING = KEYS.ring("tombstone")


def _request(db: psycopg.Connection, kind: str, by: str = "email", value: str = EMAIL) -> str:
    assert RING is not None
    view = create_request(
        db, kind=kind, identifiers=[normalize(by, value)], ring=RING, channel="api", requested_by="api:test"
    )
    db.commit()
    return str(view.request_id)


def test_identifiers_are_normalized_and_stored_only_as_keyed_hashes(db: psycopg.Connection) -> None:
    assert normalize("email", " Zeb@Example.ORG ").value == "zeb@example.org"
    assert normalize("phone", "(617) 555-0199").value == "+16175550199"
    assert normalize("source_id", "Stripe: cus_1 ").value == "stripe:cus_1"
    with pytest.raises(InvalidIdentifierError, match="source_id"):
        normalize("source_id", "cus_1")
    rid = _request(db, "erasure")
    row = db.execute("SELECT donor_id, subject_hashes::text, status FROM sync.privacy_requests").fetchone()
    assert row is not None
    assert row[0] is None
    assert row[2] == "received"
    assert EMAIL not in row[1]
    assert RING is not None
    assert RING.hmac_hex(EMAIL) in row[1]
    assert [v.request_id for v in list_requests(db)] == [get_request(db, rid).request_id]
    assert get_request(db, rid).identifier_kinds == ("email",)


def test_a_donor_arriving_after_the_request_is_found_when_it_is_processed(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    rid = _request(db, "export")  # nobody yet
    batches = land_subject(db, tmp_path, sample(40))
    standardize_and_resolve(db, batches)
    out = tmp_path / "exports"
    report = process_requests(db, erasers=[], keys=KEYS, actor="test", export_dir=out)
    assert report.outcomes == {rid: "completed"}
    view = get_request(db, rid)
    assert view.donor_id is not None
    assert view.result_ref == str(out / f"{rid}.json")
    path = Path(view.result_ref)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["golden_record"]["email"] == EMAIL
    assert {"stripe", "donorbox", "event_platform"} <= set(document["sources"])
    assert len(document["gifts"]) >= 3
    assert all(s["raw_records"] for s in document["source_records"])
    actions = {r[0] for r in db.execute("SELECT action FROM sync.audit_log").fetchall()}
    assert {"donor.exported", "pii.accessed"} <= actions
    details = db.execute("SELECT string_agg(details::text, ' ') FROM sync.audit_log").fetchone()
    assert details
    assert not any(p in str(details[0]).lower() for p in PII)


def test_an_export_or_consent_change_of_nobody_is_rejected(db: psycopg.Connection) -> None:
    export = _request(db, "export", "source_id", "stripe:cus_nobody")
    consent = _request(db, "consent_change", "phone", "+16175550100")
    report = process_requests(db, erasers=[], keys=KEYS, actor="test")
    assert report.outcomes == {export: "rejected", consent: "rejected"}
    assert get_request(db, consent).error == "no donor matches the request"
    assert get_request(db, export).attempts == 1


def test_a_consent_change_request_becomes_events_and_state_once(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    standardize_and_resolve(db, land_subject(db, tmp_path, sample(40)))
    donor = subject_donor(db)
    assert RING is not None
    change = {
        "changes": [
            {"purpose": "marketing", "channel": "email", "status": "opt_out"},
            {"purpose": "sharing", "channel": "all", "status": "opt_out"},
        ],
        "evidence": {"form_text": "Stop all marketing email", "form_version": "v3"},
    }
    bad = create_request(
        db,
        kind="consent_change",
        identifiers=[normalize("email", EMAIL)],
        ring=RING,
        channel="api",
        requested_by="api:test",
        details={"changes": [{"purpose": "marketing", "channel": "pigeon", "status": "opt_out"}]},
    )
    good = create_request(
        db,
        kind="consent_change",
        identifiers=[normalize("email", EMAIL)],
        ring=RING,
        channel="api",
        requested_by="api:test",
        details=change,
    )
    db.commit()
    report = process_requests(db, erasers=[], keys=KEYS, actor="test")
    assert report.outcomes == {str(bad.request_id): "rejected", str(good.request_id): "completed"}
    assert "details.changes.0.channel" in (get_request(db, str(bad.request_id)).error or "")
    rows = db.execute(
        "SELECT purpose, channel, status, source, evidence->>'form_version' FROM core.consent_events"
        " WHERE source = 'privacy_request' ORDER BY purpose"
    ).fetchall()
    assert rows == [
        ("marketing", "email", "opt_out", "privacy_request", "v3"),
        ("sharing", "all", "opt_out", "privacy_request", "v3"),
    ]
    state = db.execute(
        "SELECT status FROM core.consent_state"
        " WHERE donor_id = %s AND purpose = 'marketing' AND channel = 'email'",
        (donor,),
    ).fetchone()
    assert state == ("opt_out",)
    # Processing the same request again (a retried run) records nothing new.
    db.execute("UPDATE sync.privacy_requests SET status = 'received', completed_at = NULL")
    db.commit()
    process_requests(db, erasers=[], keys=KEYS, actor="test")
    count = db.execute("SELECT count(*) FROM core.consent_events WHERE source = 'privacy_request'").fetchone()
    assert count == (2,)


def test_a_request_held_by_another_run_is_skipped(db_url: str, db: psycopg.Connection) -> None:
    rid = _request(db, "erasure", "source_id", "stripe:cus_gone")
    with connect(db_url) as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, rid))
        report = process_requests(db, erasers=[], keys=KEYS, actor="test")
        assert report.outcomes == {rid: "held_elsewhere"}
        assert get_request(db, rid).status == "received"
        # Release it before the other session ends: a closed session's locks go when its server
        # process exits, which may be a moment after the client has moved on.
        other.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, rid))
    report = process_requests(db, erasers=[], keys=KEYS, actor="test")
    assert report.outcomes == {rid: "completed"}  # no donor: its hashes are tombstoned
    assert db.execute("SELECT count(*) FROM core.erasure_tombstones").fetchone() == (1,)


def test_deadline_alerts_go_out_once_a_day(db: psycopg.Connection) -> None:
    soon, later = _request(db, "erasure"), _request(db, "export", "phone", "+16175550100")
    db.execute(
        "UPDATE sync.privacy_requests SET due_at = %s WHERE request_id = %s", (NOW + timedelta(days=3), soon)
    )
    db.execute(
        "UPDATE sync.privacy_requests SET due_at = %s WHERE request_id = %s",
        (NOW + timedelta(days=20), later),
    )
    db.commit()
    assert [str(r.request_id) for r in due_soon(db, 7, now=NOW)] == [soon]
    sent: list[str] = []

    def send(text: str) -> bool:
        sent.append(text)
        return True

    assert len(check_deadlines(db, send, now=NOW)) == 1
    assert len(check_deadlines(db, send, now=NOW + timedelta(hours=5))) == 0
    assert len(check_deadlines(db, send, now=NOW + timedelta(days=4))) == 1
    assert len(sent) == 2
    assert soon in sent[1]
    assert "OVERDUE" in sent[1]
    assert EMAIL not in sent[1]
    # an undelivered alert is tried again
    assert check_deadlines(db, lambda t: False, now=NOW + timedelta(days=6)) == []


def test_cli_records_lists_and_shows_requests(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from donor_sync.cli import main

    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    monkeypatch.setenv(
        "DONOR_SYNC_PRIVACY_KEYS",
        json.dumps(
            {"tombstone": {"current": "t1", "keys": {"t1": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="}}}
        ),
    )
    runner = CliRunner()
    result = runner.invoke(main, ["privacy", "erase", "--email", EMAIL])
    assert result.exit_code == 0, result.output
    assert "no donor found yet" in result.output
    assert EMAIL not in result.output
    rid = result.output.split()[2]
    listed = runner.invoke(main, ["privacy", "requests", "list"])
    assert rid in listed.output
    assert "erasure  received" in listed.output
    shown = runner.invoke(main, ["privacy", "requests", "show", rid, "--json"])
    assert json.loads(shown.output)["identifier_kinds"] == ["email"]
    assert runner.invoke(main, ["privacy", "erase"]).exit_code == 2
