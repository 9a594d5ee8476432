"""Reads for other parts: describe (mapping cache) and changed_since (nightly reconciliation)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from donor_sync.delivery.connectors.salesforce import SalesforceConnector
from donor_sync.delivery.connectors.salesforce.soql import ident, literal
from donor_sync.delivery.contracts import Operation
from sandbox.common.runner import Running
from tests.delivery.connectors.salesforce._support import record, requests_to


def test_describe_returns_the_raw_document(sf: Running, connector: SalesforceConnector) -> None:
    body = connector.describe("Contact")
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["Donor_Sync_Id__c"]["externalId"] is True
    assert fields["Donor_Sync_Id__c"]["unique"] is True
    with pytest.raises(ValueError, match="not a Salesforce API name"):
        connector.describe("Contact/describe?x=")


def test_changed_since_pages_through_a_window_oldest_first(
    sf: Running, connector: SalesforceConnector
) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    connector.push(
        "contact", Operation.UPSERT, [record(i, f"D-{i}", {"LastName": f"L{i}"}) for i in range(5)]
    )
    time.sleep(1.05)  # bounds go out at whole seconds
    middle = dt.datetime.now(dt.UTC)
    connector.push("contact", Operation.UPSERT, [record(9, "D-9", {"LastName": "Late"})])
    sf.emulator.settings["query_batch_size"] = 2

    first = list(connector.changed_since("Contact", ["Donor_Sync_Id__c", "LastName"], start, middle))
    assert [r["Donor_Sync_Id__c"] for r in first] == [f"D-{i}" for i in range(5)]
    assert set(first[0]) == {"Id", "SystemModstamp", "Donor_Sync_Id__c", "LastName"}
    stamps = [r["SystemModstamp"] for r in first]
    assert stamps == sorted(stamps)
    assert len(requests_to(sf, "/query/", "GET")) == 2, "three pages: two nextRecordsUrl follow-ups"

    later = list(
        connector.changed_since("Contact", ["Donor_Sync_Id__c"], middle, middle + dt.timedelta(hours=1))
    )
    assert [r["Donor_Sync_Id__c"] for r in later] == ["D-9"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("O'Brien", "'O\\'Brien'"),
        ("a\\' OR Name != '", "'a\\\\\\' OR Name != \\''"),
        (None, "null"),
        (True, "true"),
        (dt.date(2024, 2, 1), "2024-02-01"),
        (dt.datetime(2024, 2, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2024-02-01T10:30:00Z"),
    ],
)
def test_soql_literals_cannot_break_out(value: object, expected: str) -> None:
    assert literal(value) == expected


def test_soql_identifiers_are_checked() -> None:
    assert ident("npsp__Primary_Contact__r.Donor_Sync_Id__c") == "npsp__Primary_Contact__r.Donor_Sync_Id__c"
    with pytest.raises(ValueError, match="not a Salesforce API name"):
        ident("Name FROM Contact WHERE")
