"""Consent compiled into HubSpot subscription statuses with their legal basis, through the real
queue and push path against the HubSpot emulator (communication-preferences v4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from donor_sync.delivery import run as delivery
from donor_sync.delivery.connectors.hubspot import HubSpotConnector
from donor_sync.delivery.connectors.hubspot.reader import HubSpotReader
from donor_sync.delivery.connectors.hubspot.subscriptions_write import (
    ENTITY,
    check_mapping,
    status_inputs,
    write_statuses,
)
from donor_sync.delivery.contracts import FailureClass, Operation, OutboundRecord
from donor_sync.delivery.mapping import load_destination
from donor_sync.delivery.outbox.scope import Scope
from donor_sync.delivery.reconcile import load_reconcile_settings, pull_destination
from donor_sync.privacy.consent.events import ConsentEvent, record_events
from donor_sync.privacy.consent.pullback import default_path, load_pullback_settings
from donor_sync.privacy.consent.state import refresh_consent_state
from donor_sync.resolve import load_resolve_rules
from tests.delivery.connectors.hubspot.conftest import (  # noqa: F401 - fixtures
    Admin,
    admin,
    box,
    connector,
    fast_retry,
    hubspot,
    make_connector,
)
from tests.delivery.outbox.support import add_donor

ACTOR = "test:subscriptions"
STATUS_READ = "/communication-preferences/v4/statuses/batch/read"
WRITE = "/communication-preferences/v4/statuses/batch/write"


def _choose(
    db: psycopg.Connection, donor: str, purpose: str, status: str, *, ago: timedelta, ref: str, **kw: Any
) -> None:
    event = ConsentEvent(
        donor_id=donor,  # type: ignore[arg-type]  # pydantic parses the uuid text
        purpose=purpose,  # type: ignore[arg-type]
        channel="email",
        status=status,  # type: ignore[arg-type]
        source="donorbox",
        source_ref=ref,
        occurred_at=datetime.now(UTC) - ago,
        recorded_by=ACTOR,
        **kw,
    )
    record_events(db, [event], actor=ACTOR, now=datetime.now(UTC))
    db.commit()


def _email(db: psycopg.Connection, donor: str) -> str:
    row = db.execute("SELECT email FROM core.donors WHERE donor_id = %s", [donor]).fetchone()
    assert row is not None
    return str(row[0])


def _statuses(admin: Admin, email: str) -> dict[int, tuple[str, str | None, bool]]:  # noqa: F811
    """Return HubSpot's ``{type id: (status, legal basis, ever written)}`` of ``email``."""
    reply = admin.api("POST", STATUS_READ, {"inputs": [email]})
    assert reply.status_code == 200, reply.text
    return {
        int(r["subscriptionId"]): (r["status"], r["legalBasis"], r["timestamp"] is not None)
        for r in reply.json()["results"]
    }


def _queued(db: psycopg.Connection, scope: Scope | None = None) -> dict[str, int]:
    delivery.queue(db, "hubspot", run_id=None, actor=ACTOR, scope=scope)
    rows = db.execute(
        "SELECT entity, count(*) FROM sync.outbox WHERE destination = 'hubspot' AND state = 'pending'"
        " GROUP BY entity"
    ).fetchall()
    return {str(e): int(n) for e, n in rows}


def _push(db: psycopg.Connection, connector: HubSpotConnector) -> None:  # noqa: F811
    report = delivery.push(db, connector, run_id=None, worker_id="test")
    totals = report.totals()
    assert (totals["dead_lettered"], totals["failed"]) == (0, 0), totals


def _writes(admin: Admin) -> int:  # noqa: F811
    return sum(1 for r in admin.request_log() if r["path"] == WRITE)


def test_an_opt_in_subscribes_with_the_mapped_legal_basis_and_no_choice_sends_nothing(
    db: psycopg.Connection,
    connector: HubSpotConnector,  # noqa: F811
    admin: Admin,  # noqa: F811
) -> None:
    ada = add_donor(db, "Ada", "Lovelace")
    bob = add_donor(db, "Bob", "Silent")
    db.commit()
    _choose(db, ada, "marketing", "opt_in", ago=timedelta(days=2), ref="f-1")
    _choose(db, ada, "fundraising", "soft_opt_in", ago=timedelta(days=2), ref="f-2")

    assert _queued(db) == {"contact": 2, ENTITY: 2}
    _push(db, connector)

    assert _statuses(admin, _email(db, ada)) == {
        1001: ("SUBSCRIBED", "CONSENT_WITH_NOTICE", True),
        1002: ("SUBSCRIBED", "LEGITIMATE_INTEREST_CLIENT", True),
        1003: ("SUBSCRIBED", "CONSENT_WITH_NOTICE", True),
    }
    # Bob made no choice: no status was written for him, nothing subscribes him.
    assert {s for s, _, written in _statuses(admin, _email(db, bob)).values() if written} == set()
    assert all(not written for _, _, written in _statuses(admin, _email(db, bob)).values())
    # The statuses landed as records of their own, after the contacts they belong to.
    landed = db.execute(
        "SELECT s.record_key, s.remote_id = c.remote_id FROM sync.destination_state s"
        " JOIN sync.destination_state c ON c.destination = s.destination AND c.entity = 'contact'"
        "  AND c.record_key = s.record_key WHERE s.destination = 'hubspot' AND s.entity = %s",
        [ENTITY],
    ).fetchall()
    assert sorted(landed) == sorted([(ada, True), (bob, True)])

    # A re-run queues nothing and writes nothing.
    writes = _writes(admin)
    assert _queued(db) == {}
    _push(db, connector)
    assert _writes(admin) == writes


def test_a_later_opt_out_unsubscribes_at_the_next_push_and_a_suppression_takes_the_subscription_back(
    db: psycopg.Connection,
    connector: HubSpotConnector,  # noqa: F811
    admin: Admin,  # noqa: F811
) -> None:
    ada = add_donor(db, "Ada", "Lovelace")
    db.commit()
    _choose(db, ada, "marketing", "opt_in", ago=timedelta(days=2), ref="f-1")
    _choose(db, ada, "fundraising", "opt_in", ago=timedelta(days=2), ref="f-2", lawful_basis="contract")
    _queued(db)
    _push(db, connector)
    email = _email(db, ada)
    assert _statuses(admin, email)[1002] == ("SUBSCRIBED", "PERFORMANCE_OF_CONTRACT", True)

    _choose(db, ada, "marketing", "opt_out", ago=timedelta(hours=1), ref="f-3")
    assert _queued(db) == {ENTITY: 1}, "only the statuses changed"
    _push(db, connector)
    statuses = _statuses(admin, email)
    assert statuses[1001][0] == statuses[1003][0] == "UNSUBSCRIBED"
    assert statuses[1002][0] == "SUBSCRIBED"

    # Staff mark the donor do-not-contact: the remaining subscription is taken back (not an opt-out
    # the donor made, so not UNSUBSCRIBED), and given back when the suppression is lifted.
    db.execute(
        "INSERT INTO core.suppressions (donor_id, reason_code, source, note, created_by)"
        " VALUES (%s, 'do_not_contact', 'salesforce', 'test', %s)",
        [ada, ACTOR],
    )
    db.commit()
    assert _queued(db).get(ENTITY) == 1
    _push(db, connector)
    assert _statuses(admin, email)[1002][0] == "NOT_SPECIFIED"
    assert _statuses(admin, email)[1001][0] == "UNSUBSCRIBED"
    db.execute(
        "UPDATE core.suppressions SET lifted_at = now(), lifted_by = %s, lift_reason = 'test'", [ACTOR]
    )
    db.commit()
    assert _queued(db).get(ENTITY) == 1
    _push(db, connector)
    assert _statuses(admin, email)[1002] == ("SUBSCRIBED", "PERFORMANCE_OF_CONTRACT", True)


def test_an_expired_opt_in_takes_the_subscription_back(
    db: psycopg.Connection,
    connector: HubSpotConnector,  # noqa: F811
    admin: Admin,  # noqa: F811
) -> None:
    ada = add_donor(db, "Ada", "Lovelace")
    db.commit()
    expires = datetime.now(UTC) + timedelta(hours=1)
    _choose(db, ada, "marketing", "opt_in", ago=timedelta(days=2), ref="f-1", expires_at=expires)
    _queued(db)
    _push(db, connector)
    email = _email(db, ada)
    assert _statuses(admin, email)[1001][0] == "SUBSCRIBED"
    # The nightly expiry refresh, run once the choice has lapsed, then the nightly full queue.
    refresh_consent_state(db, [ada], actor=ACTOR, now=expires + timedelta(minutes=1))
    db.commit()
    assert _queued(db, Scope.full()) == {ENTITY: 1}
    _push(db, connector)
    statuses = _statuses(admin, email)
    assert statuses[1001][0] == statuses[1003][0] == "NOT_SPECIFIED"
    assert statuses[1002] == ("NOT_SPECIFIED", None, False), "never chosen: never written"


def test_a_pulled_back_unsubscribe_is_not_resubscribed_by_the_next_push(
    db: psycopg.Connection,
    connector: HubSpotConnector,  # noqa: F811
    admin: Admin,  # noqa: F811
) -> None:
    ada = add_donor(db, "Ada", "Lovelace")
    db.commit()
    _choose(db, ada, "marketing", "opt_in", ago=timedelta(days=2), ref="f-1")
    _choose(db, ada, "fundraising", "opt_in", ago=timedelta(days=2), ref="f-2")
    _queued(db)
    _push(db, connector)
    email = _email(db, ada)
    # The donor unsubscribes from appeals in HubSpot.
    reply = admin.api(
        "POST", "/communication-preferences/v3/unsubscribe", {"emailAddress": email, "subscriptionId": "1002"}
    )
    assert reply.status_code == 200, reply.text

    # A profile change before the pull-back: the contact goes, the unchanged statuses do not.
    db.execute("UPDATE core.donors SET first_name = 'Augusta' WHERE donor_id = %s", [ada])
    db.commit()
    assert _queued(db) == {"contact": 1}
    _push(db, connector)
    assert _statuses(admin, email)[1002][0] == "UNSUBSCRIBED"

    report = pull_destination(
        db,
        HubSpotReader(connector),
        "hubspot",
        load_reconcile_settings().destinations["hubspot"],
        rules=load_resolve_rules(),
        actor="crm:hubspot",
        now=datetime.now(UTC) + timedelta(seconds=5),
    )
    db.commit()
    assert report.consent["consent_opt_outs_recorded"] == 1
    # The opt-out is compiled back as UNSUBSCRIBED: nothing subscribes the donor again.
    assert _queued(db) == {ENTITY: 1}
    _push(db, connector)
    statuses = _statuses(admin, email)
    assert statuses[1002][0] == "UNSUBSCRIBED"
    assert statuses[1001][0] == statuses[1003][0] == "SUBSCRIBED"
    assert _queued(db) == {}


def test_per_input_errors_fail_only_their_record_with_a_class_and_no_email(
    connector: HubSpotConnector,  # noqa: F811
) -> None:
    good = OutboundRecord(
        1,
        ENTITY,
        "d-good",
        Operation.UPSERT,
        {"subscriberIdString": "good@example.org", "1001:statusState": "UNSUBSCRIBED"},
    )
    unknown_type = OutboundRecord(
        2,
        ENTITY,
        "d-bad",
        Operation.UPSERT,
        {"subscriberIdString": "bad@example.org", "9999:statusState": "UNSUBSCRIBED"},
    )
    # A GDPR portal refuses a subscribe without a legal basis.
    no_basis = OutboundRecord(
        3,
        ENTITY,
        "d-basis",
        Operation.UPSERT,
        {"subscriberIdString": "basis@example.org", "1001:statusState": "SUBSCRIBED"},
    )
    nothing = OutboundRecord(
        4, ENTITY, "d-none", Operation.UPSERT, {"subscriberIdString": "none@example.org"}
    )
    results = connector.push(ENTITY, Operation.UPSERT, [good, unknown_type, no_basis, nothing])
    assert [r.ok for r in results] == [True, False, False, True]
    for failed in results[1:3]:
        assert failed.error_class is FailureClass.VALIDATION
        assert failed.message is not None
        assert "@" not in failed.message
    assert results[1].http_status == 207


def test_status_inputs_send_only_types_with_a_status_and_a_basis_only_with_a_subscribe() -> None:
    payload = {
        "contact": {"donor_sync_id": "d"},
        "subscriberIdString": "ada@example.org",
        "1003:statusState": "UNSUBSCRIBED",
        "1003:legalBasis": "CONSENT_WITH_NOTICE",
        "1001:statusState": "SUBSCRIBED",
        "1001:legalBasis": "CONSENT_WITH_NOTICE",
        "1001:legalBasisExplanation": "Opted in",
        "1002:legalBasis": "CONSENT_WITH_NOTICE",
    }
    before = dict(payload)
    assert status_inputs(payload) == [
        {
            "subscriberIdString": "ada@example.org",
            "subscriptionId": 1001,
            "statusState": "SUBSCRIBED",
            "channel": "EMAIL",
            "legalBasis": "CONSENT_WITH_NOTICE",
            "legalBasisExplanation": "Opted in",
        },
        {
            "subscriberIdString": "ada@example.org",
            "subscriptionId": 1003,
            "statusState": "UNSUBSCRIBED",
            "channel": "EMAIL",
        },
    ]
    assert payload == before
    with pytest.raises(ValueError, match="subscription type 1001"):
        status_inputs({"1001:statusState": "OPTED_IN"})
    # write_statuses needs no call when no record has a status.
    record = OutboundRecord(9, ENTITY, "d", Operation.UPSERT, {"subscriberIdString": "x@example.org"})
    assert [r.ok for r in write_statuses(None, [record])] == [True]  # type: ignore[arg-type]


def test_the_mapping_agrees_with_the_subscription_definitions(tmp_path: Path) -> None:
    mapping = load_destination("hubspot")
    shipped = load_pullback_settings().destinations["hubspot"].subscriptions
    assert check_mapping(mapping, shipped, pullback_path=default_path()) == []

    text = default_path().read_text(encoding="utf-8")
    changed = text.replace(
        '"1003": {channel: email, purposes: [marketing]}', '"1003": {channel: email, purposes: [fundraising]}'
    ).replace(
        '"1001": {channel: email, purposes: [marketing]}', '"1004": {channel: email, purposes: [marketing]}'
    )
    assert changed != text
    path = tmp_path / "consent_pullback.yaml"
    path.write_text(changed, encoding="utf-8")
    problems = check_mapping(
        mapping, load_pullback_settings(path).destinations["hubspot"].subscriptions, pullback_path=path
    )
    joined = "\n".join(problems)
    assert "hubspot.yaml: objects[3] (subscription_statuses).fields[" in joined
    assert "(1003:statusState): reads consent_marketing_email_status but" in joined
    assert f"subscription type 1001 is not defined in {path}" in joined
    assert "1004 has no '1004:statusState' field" in joined
