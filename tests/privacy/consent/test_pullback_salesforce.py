"""Consent pull-back from the Salesforce emulator: opt-out fields become events, staff flags suppressions."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import psycopg

from donor_sync.delivery.connectors.salesforce import SalesforceClient, SalesforceConnector
from donor_sync.delivery.connectors.salesforce.reader import SalesforceReader
from donor_sync.delivery.contracts import Operation
from donor_sync.delivery.reconcile import PullReport, load_reconcile_settings, pull_destination
from donor_sync.resolve import load_resolve_rules
from tests.delivery.connectors.salesforce._support import record
from tests.delivery.connectors.salesforce.conftest import (  # noqa: F401 - fixtures
    box,
    client,
    connector,
    jwt_credentials,
    make_client,
    private_key,
    sf,
)
from tests.delivery.reconcile.test_pull import jane, landed

CONTACTS = load_reconcile_settings().destinations["salesforce"]


def _push(connector: SalesforceConnector, donor: str) -> str:  # noqa: F811
    [result] = connector.push(
        "contact", Operation.UPSERT, [record(0, donor, {"FirstName": "Jane", "LastName": "Okafor"})]
    )
    assert result.ok, result
    return str(result.remote_id)


def _edit(client: SalesforceClient, contact_id: str, **fields: Any) -> None:  # noqa: F811
    assert client.request("PATCH", f"/sobjects/Contact/{contact_id}", json=fields).status_code == 204
    time.sleep(0.01)


def _pull(db: psycopg.Connection, client: SalesforceClient) -> PullReport:  # noqa: F811
    report = pull_destination(
        db,
        SalesforceReader(client),
        "salesforce",
        CONTACTS,
        rules=load_resolve_rules(),
        actor="crm:salesforce",
        now=dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=5),
    )
    db.commit()
    return report


def _events(db: psycopg.Connection, donor: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT purpose, channel, status, source, evidence FROM core.consent_events WHERE donor_id = %s"
        " ORDER BY channel, purpose",
        [donor],
    ).fetchall()


def test_opt_outs_and_staff_flags_come_back_from_salesforce(
    db: psycopg.Connection,
    connector: SalesforceConnector,  # noqa: F811
    client: SalesforceClient,  # noqa: F811
) -> None:
    donor = jane(db)
    contact_id = _push(connector, donor)
    landed(db, "salesforce", donor, contact_id)
    db.commit()
    _edit(client, contact_id, HasOptedOutOfEmail=True, DoNotCall=True, npsp__Deceased__c=True)

    report = _pull(db, client)
    events = _events(db, donor)
    assert [(e[0], e[1], e[2], e[3]) for e in events] == [
        ("fundraising", "email", "opt_out", "salesforce"),
        ("marketing", "email", "opt_out", "salesforce"),
        ("fundraising", "phone", "opt_out", "salesforce"),
        ("marketing", "phone", "opt_out", "salesforce"),
    ]
    assert events[0][4]["field"] == "HasOptedOutOfEmail"
    assert events[0][4]["remote_id"] == contact_id
    assert "changed_at" in events[0][4]
    assert report.consent["consent_opt_outs_recorded"] == 4
    assert report.metrics()["suppressions_added"] == 1
    assert db.execute(
        "SELECT status FROM core.consent_state WHERE donor_id = %s AND purpose = 'marketing'"
        " AND channel = 'email'",
        [donor],
    ).fetchone() == ("opt_out",)
    assert db.execute(
        "SELECT reason_code, channel, destination, source, source_ref FROM core.suppressions"
        " WHERE donor_id = %s AND lifted_at IS NULL",
        [donor],
    ).fetchall() == [("deceased", "all", "*", "salesforce", contact_id)]

    # Staff edit something else: the opted-out flags are read again but nothing new is recorded;
    # staff clear the deceased flag: the suppression Salesforce reported is lifted.
    _edit(client, contact_id, FirstName="Janet", npsp__Deceased__c=False)
    again = _pull(db, client)
    assert again.consent["consent_opt_outs_recorded"] == 0
    assert again.consent["suppressions_lifted"] == 1
    assert len(_events(db, donor)) == 4
    assert db.execute(
        "SELECT count(*) FROM core.suppressions WHERE donor_id = %s AND lifted_at IS NULL", [donor]
    ).fetchone() == (0,)
    audit = db.execute(
        "SELECT details FROM sync.audit_log WHERE action = 'consent.pulled_back' ORDER BY audit_id"
    ).fetchall()
    assert [a[0]["consent_opt_outs_recorded"] for a in audit] == [4, 0]
