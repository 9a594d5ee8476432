"""Consent pull-back from the HubSpot emulator: unsubscribes become opt-out events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from donor_sync.delivery.connectors.hubspot import HubSpotConnector
from donor_sync.delivery.connectors.hubspot.reader import HubSpotReader
from donor_sync.delivery.contracts import Operation
from donor_sync.delivery.reconcile import load_reconcile_settings, pull_destination
from donor_sync.resolve import load_resolve_rules
from tests.delivery.connectors.hubspot.conftest import (  # noqa: F401 - fixtures
    Admin,
    admin,
    box,
    connector,
    contact,
    fast_retry,
    hubspot,
    make_connector,
)
from tests.delivery.reconcile.test_pull import jane, landed
from tests.resolve.test_donors_support import JANE

SETTINGS = load_reconcile_settings().destinations["hubspot"]


def _pull(db: psycopg.Connection, connector: HubSpotConnector) -> dict[str, int]:  # noqa: F811
    report = pull_destination(
        db,
        HubSpotReader(connector),
        "hubspot",
        SETTINGS,
        rules=load_resolve_rules(),
        actor="crm:hubspot",
        now=datetime.now(UTC) + timedelta(seconds=5),
    )
    db.commit()
    return report.consent


def test_an_unsubscribe_in_hubspot_becomes_an_opt_out(
    db: psycopg.Connection,
    connector: HubSpotConnector,  # noqa: F811
    admin: Admin,  # noqa: F811
) -> None:
    donor = jane(db)
    [result] = connector.push(
        "contact", Operation.UPSERT, [contact(1, donor, JANE["email"], firstname="Jane")]
    )
    assert result.ok, result
    landed(db, "hubspot", donor, str(result.remote_id))
    db.commit()
    unsubscribed = admin.api(
        "POST",
        "/communication-preferences/v3/unsubscribe",
        {"emailAddress": JANE["email"], "subscriptionId": "1002"},
    )
    assert unsubscribed.status_code == 200, unsubscribed.text

    counts = _pull(db, connector)
    assert counts["consent_opt_outs_recorded"] == 1
    events = db.execute(
        "SELECT purpose, channel, status, source, evidence FROM core.consent_events WHERE donor_id = %s",
        [donor],
    ).fetchall()
    assert [(e[0], e[1], e[2], e[3]) for e in events] == [("fundraising", "email", "opt_out", "hubspot")]
    assert events[0][4]["field"] == "subscription:1002"
    assert events[0][4]["remote_id"] == str(result.remote_id)
    assert JANE["email"] not in str(events[0][4])
    assert db.execute(
        "SELECT status FROM core.consent_state WHERE donor_id = %s AND purpose = 'fundraising'"
        " AND channel = 'email'",
        [donor],
    ).fetchone() == ("opt_out",)
    newsletter = db.execute(
        "SELECT count(*) FROM core.consent_state WHERE donor_id = %s AND purpose = 'marketing'", [donor]
    ).fetchone()
    assert newsletter == (0,), "still subscribed to the newsletter: no opt-out there"

    # The contact is read again (overlap window): the same unsubscribe is not recorded twice.
    assert _pull(db, connector)["consent_opt_outs_recorded"] == 0
    assert db.execute("SELECT count(*) FROM core.consent_events").fetchone() == (1,)
