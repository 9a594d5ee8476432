"""Issue 7's "done when", end to end against the emulators: a donor who came in through several
sources (Stripe, Classy, a bank-cheque CSV), merged into one golden donor and pushed to Salesforce
and HubSpot by ``donations_hourly``, and present in Mailchimp and Braze, asks to be erased by email.
The ``privacy_requests`` DAG erases them everywhere with a verified receipt per system; afterwards
no table and no emulator holds their email, name, street or phone, the outbound subscriber got one
signed ``donor.erased``; and re-importing their old records (API pages re-read from the start, a
new export of their CSV rows, a new Stripe webhook event for each of their charges) brings nothing
back, queues nothing about them and pushes nothing.

HubSpot is the one place the email stays: a GDPR delete puts the email on HubSpot's own GDPR
blocklist (in plain text, as HubSpot keeps it), which is what stops a form or an import from
re-creating the contact. The test accepts the subject's email there and nowhere else. (Mailchimp's
"forgotten" list plays the same role and holds the MD5 subscriber hash, which no string matches.)
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from airflow.models import DagBag

from donor_sync.privacy.keys import KeyRing, default_key_source
from donor_sync.privacy.requests.identifiers import normalize
from donor_sync.privacy.requests.store import create_request, get_request
from sandbox.common.runner import Sandbox
from tests.integration.crm import use_connections
from tests.integration.test_donations_hourly_e2e import dagbag, sample, world  # noqa: F401 (fixtures)
from tests.privacy.erasers.connections import OUTBOUND_SECRET, privacy_connections
from tests.privacy.erasure.support import pii_hits
from tests.privacy.erasure_e2e_support import (
    Subject,
    choose_subject,
    emulator_hits,
    redeliver_charge_events,
    reexport_csv_rows,
    seed_email_platforms,
    snapshot_hits,
    verify_signature,
)

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]

SYSTEMS = {"salesforce", "hubspot", "mailchimp", "braze", "outbound_webhooks", "staging"}
KEYS = {
    purpose: {"current": f"{purpose[:2]}1", "keys": {f"{purpose[:2]}1": base64.b64encode(byte * 32).decode()}}
    for purpose, byte in (
        ("tombstone", b"t"),
        ("pseudonym", b"p"),
        ("encryption", b"e"),
        ("links", b"l"),
    )
}


@pytest.fixture
def email_box(world: tuple[str, Sandbox]) -> Sandbox:  # noqa: F811
    """Mailchimp, Braze and the outbound-event receiver: they run in ``world``'s sandbox too."""
    return world[1]


@pytest.fixture
def everything(
    world: tuple[str, Sandbox],  # noqa: F811
    email_box: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, Sandbox, Sandbox]:
    """``world`` plus the email platforms' and outbound subscriber's connections, and the key rings."""
    use_connections(monkeypatch, privacy_connections(email_box))
    monkeypatch.setenv("DONOR_SYNC_PRIVACY_KEYS", json.dumps(KEYS))
    monkeypatch.setenv("DONOR_SYNC_PRIVACY_KEYS_LOCAL", "0")
    db_url, crm_box = world
    return db_url, crm_box, email_box


def _all_hits(crm_box: Sandbox, email_box: Sandbox, subject: Subject) -> dict[str, list[str]]:
    return {
        **emulator_hits(crm_box, subject, ("salesforce", "hubspot")),
        **emulator_hits(email_box, subject, ("mailchimp", "braze", "receiver")),
    }


def _without_hubspot_blocklist(hits: dict[str, list[str]]) -> dict[str, list[str]]:
    """Drop HubSpot's GDPR blocklist entries (the only place an erased email may stay, see above)."""
    out = {k: list(v) for k, v in hits.items()}
    out["hubspot"] = [p for p in out.get("hubspot", []) if not p.startswith("/gdpr_blocklist[")]
    return {k: v for k, v in out.items() if v}


def _blocklist(crm_box: Sandbox) -> list[str]:
    emulator = crm_box["hubspot"].emulator
    with emulator.lock:
        return list(emulator.snapshot()["gdpr_blocklist"])


def _erased_events(box: Sandbox) -> list[dict[str, Any]]:
    """The receiver's deliveries of donor.erased (it also gets donation.created and the like)."""
    return [
        d
        for d in box["receiver"].emulator.snapshot()["deliveries"]
        if json.loads(d["text"]).get("type") == "donor.erased"
    ]


def _run(dagbag: DagBag, dag_id: str) -> None:  # noqa: F811
    assert str(dagbag.dags[dag_id].test().state) == "success", dag_id


def test_an_erased_donor_leaves_every_system_and_never_comes_back(
    everything: tuple[str, Sandbox, Sandbox],
    dagbag: DagBag,  # noqa: F811
    sample: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    db_url, crm_box, email_box = everything

    # -- 1. the sample flows through donations_hourly into Salesforce and HubSpot ----------------
    _run(dagbag, "donations_hourly")
    with psycopg.connect(db_url) as conn:
        subject = choose_subject(conn, sample)
        donors_before = conn.execute("SELECT count(*) FROM core.donors").fetchone()
    seed_email_platforms(email_box, subject)
    needles = subject.needles()
    with psycopg.connect(db_url) as conn:
        assert pii_hits(conn, needles), "the scan finds the subject in the tables before the erasure"
    before = _all_hits(crm_box, email_box, subject)
    assert {"salesforce", "hubspot", "mailchimp", "braze"} <= set(before), before.keys()
    assert "receiver" not in before

    # -- 2. an erasure request by email, carried out by the privacy_requests DAG ------------------
    ring = default_key_source().ring("tombstone")
    assert isinstance(ring, KeyRing)
    with psycopg.connect(db_url) as conn:
        request = create_request(
            conn,
            kind="erasure",
            identifiers=[normalize("email", f"  {subject.email.upper()} ")],
            ring=ring,
            channel="api",
            requested_by="test:e2e",
        )
        conn.commit()
    assert request.donor_id == subject.donor_id
    _run(dagbag, "privacy_requests")

    # -- 3. receipts, tables, emulators, the outbound event --------------------------------------
    with psycopg.connect(db_url) as conn:
        view = get_request(conn, request.request_id)
        assert view.status == "completed", (view.status, view.error)
        receipts = {r.system: r for r in view.receipts}
        assert set(receipts) == SYSTEMS
        for system, receipt in receipts.items():
            assert (receipt.status, receipt.verified) == ("done", True), (system, receipt)
        assert receipts["salesforce"].remote_refs, "Salesforce was asked about the contact it holds"
        assert receipts["hubspot"].remote_refs
        assert pii_hits(conn, needles) == []
        erased = conn.execute(
            "SELECT erased_at IS NOT NULL, email, last_name FROM core.donors WHERE donor_id = %s",
            (subject.donor_id,),
        ).fetchone()
        assert erased == (True, None, None)
        tombstones = conn.execute("SELECT count(*) FROM core.erasure_tombstones").fetchone()
        assert tombstones is not None
        assert tombstones[0] >= 3, "email, phone and each source id"
    assert _without_hubspot_blocklist(_all_hits(crm_box, email_box, subject)) == {}
    blocklist = _blocklist(crm_box)
    assert subject.email in blocklist, "HubSpot blocks the email from coming back"
    # Emails only, and of the subject only their own address (nothing else of theirs sits there).
    assert all("@" in e for e in blocklist)
    assert [e for e in blocklist if snapshot_hits(e, subject)] == [subject.email]

    deliveries = _erased_events(email_box)
    assert len(deliveries) == 1, "one donor.erased, through the event pipeline (push_events)"
    [delivery] = deliveries
    assert delivery["hook"] == "events"
    assert verify_signature(delivery, OUTBOUND_SECRET)
    event = json.loads(delivery["text"])
    assert event["type"] == "donor.erased"
    assert event["data"]["request_id"] == str(request.request_id)
    assert set(event["data"]["donor_ids"]) >= {str(subject.donor_id)}

    # -- 4. the old records come again: API pages from the start, the CSV rows, new webhooks -----
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM sync.watermarks")
        conn.commit()
        gifts_before = conn.execute(
            "SELECT count(*), sum(amount) FROM core.gifts WHERE donor_id = ANY(%s)",
            (list(subject.donor_ids),),
        ).fetchone()
        outbox_mark = conn.execute("SELECT coalesce(max(outbox_id), 0) FROM sync.outbox").fetchone()
        push_mark = conn.execute("SELECT coalesce(max(push_log_id), 0) FROM sync.push_log").fetchone()
        batch_mark = conn.execute("SELECT coalesce(max(batch_id), 0) FROM raw.batches").fetchone()
    assert outbox_mark is not None
    assert push_mark is not None
    assert batch_mark is not None
    assert reexport_csv_rows(sample, tmp_path / "drop", subject)
    assert redeliver_charge_events(crm_box, db_url, subject) > 0
    for name in ("salesforce", "hubspot"):
        crm_box[name].emulator.request_log.clear()
    _run(dagbag, "donations_hourly")

    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM core.donors").fetchone() == donors_before, "no new donor"
        assert (
            conn.execute(
                "SELECT count(*), sum(amount) FROM core.gifts WHERE donor_id = ANY(%s)",
                (list(subject.donor_ids),),
            ).fetchone()
            == gifts_before
        )
        assert pii_hits(conn, needles) == []
        # Each re-imported record of the person was staged again, then caught by a tombstone: attached
        # to the erased donor, blanked, never matched (its gift still counts, once).
        screened = conn.execute(
            "SELECT s.source::text, count(*), count(*) FILTER (WHERE s.email IS NULL AND s.last_name IS NULL"
            " AND s.phone IS NULL AND s.address_line1 IS NULL)"
            " FROM staging.donors s WHERE s.batch_id > %s AND s.donor_id = ANY(%s) GROUP BY 1",
            (batch_mark[0], list(subject.donor_ids)),
        ).fetchall()
        assert {source for source, _, _ in screened} >= {"stripe", "bank_cheque"}, screened
        assert all(total == blank for _, total, blank in screened), screened
        blocked = conn.execute(
            "SELECT coalesce(sum((details ->> 'staged_donors')::int), 0) FROM sync.audit_log"
            " WHERE action = 'donor.reimport_blocked'"
        ).fetchone()
        assert blocked is not None
        assert blocked[0] == sum(total for _, total, _ in screened)
        stubbed = conn.execute(
            "SELECT coalesce(sum((details ->> 'raw_records_stubbed')::int), 0) FROM sync.audit_log"
            " WHERE action = 'donor.reimport_blocked'"
        ).fetchone()
        assert stubbed is not None
        assert stubbed[0] > 0, "superseded versions, payment intents and events of the person were stubbed"
        queued = conn.execute(
            "SELECT count(*) FROM sync.outbox o WHERE o.outbox_id > %s AND (o.donor_id = ANY(%s)"
            " OR EXISTS (SELECT 1 FROM core.gifts g WHERE g.donor_id = ANY(%s)"
            "   AND g.gift_key = o.record_key))",
            (outbox_mark[0], list(subject.donor_ids), list(subject.donor_ids)),
        ).fetchone()
        assert queued == (0,), "nothing about the person is queued"
        remote = [
            r[0]
            for r in conn.execute(
                "SELECT remote_id FROM sync.destination_state"
                " WHERE donor_id = ANY(%s) AND remote_id IS NOT NULL",
                (list(subject.donor_ids),),
            )
        ]
        pushed = conn.execute(
            "SELECT count(*) FROM sync.push_log WHERE push_log_id > %s AND remote_id = ANY(%s)",
            (push_mark[0], remote),
        ).fetchone()
        assert remote, "the person's Salesforce and HubSpot ids are still known (marked deleted)"
        assert pushed == (0,), "nothing about the person is pushed"
    assert _without_hubspot_blocklist(_all_hits(crm_box, email_box, subject)) == {}
    assert len(_erased_events(email_box)) == 1, "no second donor.erased"
    for name in ("salesforce", "hubspot"):
        log = list(crm_box[name].emulator.request_log)
        touched = [r for r in log if any(ref in r["path"] for ref in remote)]
        assert touched == [], (name, touched[:3])
