"""SalesforceReader: staff edits, deletions and merges read back over HTTPS from the emulator, and
pulled into core by reconciliation."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import psycopg
import pytest

from donor_sync.delivery.connectors.salesforce import SalesforceClient, SalesforceConnector
from donor_sync.delivery.connectors.salesforce.reader import SalesforceReader, parse_modstamp
from donor_sync.delivery.contracts import Operation
from donor_sync.delivery.reconcile import load_reconcile_settings, pull_destination
from donor_sync.delivery.reconcile.settings import DestinationReconcile, FieldRule
from donor_sync.errors import ConfigError
from donor_sync.resolve import load_resolve_rules
from sandbox.common.runner import Running
from tests.delivery.connectors.salesforce._support import record, requests_to, salesforce
from tests.delivery.reconcile.test_pull import golden, jane, landed
from tests.resolve.test_donors_support import donor_of, new_batch, run, stage
from tests.resolve.test_review import MARCUS

CONTACTS = load_reconcile_settings().destinations["salesforce"]
FAR = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def reader(client: SalesforceClient) -> SalesforceReader:
    return SalesforceReader(client)


def _push(connector: SalesforceConnector, *people: tuple[str, dict[str, Any]]) -> list[str]:
    """Upsert contacts keyed by donor id; return their Salesforce ids."""
    results = connector.push(
        "contact", Operation.UPSERT, [record(i, key, payload) for i, (key, payload) in enumerate(people)]
    )
    assert all(r.ok for r in results)
    return [str(r.remote_id) for r in results]


def _edit(client: SalesforceClient, contact_id: str, **fields: Any) -> None:
    """A staff member editing a contact in the Salesforce UI."""
    assert client.request("PATCH", f"/sobjects/Contact/{contact_id}", json=fields).status_code == 204


def _merge(sf: Running, master: str, *losers: str) -> None:
    """A staff member merging contacts in the Salesforce UI (the emulator's admin API)."""
    salesforce(sf).merge("Contact", master, list(losers))


def test_a_staff_edit_is_read_back(
    sf: Running, connector: SalesforceConnector, client: SalesforceClient, reader: SalesforceReader
) -> None:
    ada, grace = _push(
        connector, ("D-1", {"FirstName": "Ada", "LastName": "Lovelace"}), ("D-2", {"LastName": "Hopper"})
    )
    time.sleep(0.01)  # SystemModstamp has millisecond precision
    since = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    _edit(client, ada, FirstName="Augusta", npsp__Do_Not_Contact__c=True)

    [edited] = reader.changed_records(CONTACTS, since, dt.datetime.now(dt.UTC))
    assert (edited.remote_id, edited.key, edited.deleted, edited.master_remote_id) == (
        ada,
        "D-1",
        False,
        None,
    )
    assert edited.values is not None
    assert set(edited.values) == set(CONTACTS.fields)
    assert (edited.values["FirstName"], edited.values["LastName"]) == ("Augusta", "Lovelace")
    assert edited.values["npsp__Do_Not_Contact__c"] is True
    assert edited.modified_at.tzinfo is not None
    assert edited.modified_at.utcoffset() == dt.timedelta(0)
    assert since < edited.modified_at <= dt.datetime.now(dt.UTC)
    [query] = requests_to(sf, "/queryAll", "GET")
    assert query["status"] == 200
    assert grace not in {r.remote_id for r in reader.changed_records(CONTACTS, since, FAR)}


def test_the_window_is_honoured_to_the_millisecond_and_paged(
    sf: Running, connector: SalesforceConnector, reader: SalesforceReader
) -> None:
    for i in range(5):
        _push(connector, (f"D-{i}", {"LastName": f"N{i}"}))
        time.sleep(0.005)
    everything = list(reader.changed_records(CONTACTS, None, FAR))
    assert [r.key for r in everything] == [f"D-{i}" for i in range(5)], "oldest first"
    stamps = [r.modified_at for r in everything]
    assert stamps == sorted(stamps)

    sf.emulator.settings["query_batch_size"] = 2
    window = list(reader.changed_records(CONTACTS, stamps[1], stamps[4]))
    assert [r.key for r in window] == ["D-1", "D-2", "D-3"], "since inclusive, until exclusive"
    assert len(requests_to(sf, "/query/", "GET")) >= 1, "followed nextRecordsUrl"
    assert list(reader.changed_records(CONTACTS, stamps[4] + dt.timedelta(milliseconds=1), FAR)) == []
    naive = stamps[2].replace(tzinfo=None)
    assert [r.key for r in reader.changed_records(CONTACTS, naive, FAR)] == ["D-2", "D-3", "D-4"]


def test_deletions_and_merges_come_back_with_the_master(
    sf: Running, connector: SalesforceConnector, client: SalesforceClient, reader: SalesforceReader
) -> None:
    winner, loser, dropped = _push(
        connector, ("D-1", {"LastName": "Doe"}), ("D-2", {"LastName": "Doe"}), ("D-3", {"LastName": "Roe"})
    )
    time.sleep(0.01)
    since = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    _merge(sf, winner, loser)
    assert client.request("DELETE", f"/sobjects/Contact/{dropped}").status_code == 204

    read = {r.remote_id: r for r in reader.changed_records(CONTACTS, since, dt.datetime.now(dt.UTC))}
    assert set(read) == {winner, loser, dropped}
    assert (read[loser].deleted, read[loser].master_remote_id, read[loser].key) == (True, winner, "D-2")
    assert (read[winner].deleted, read[winner].master_remote_id) == (False, None), "the master moved too"
    assert (read[dropped].deleted, read[dropped].master_remote_id) == (True, None)


def test_objects_without_master_record_and_unknown_fields(
    connector: SalesforceConnector, reader: SalesforceReader
) -> None:
    gift = {"Name": "Gift", "Amount": 10, "CloseDate": "2024-05-01", "StageName": "Closed Won"}
    connector.push("opportunity", Operation.UPSERT, [record(1, "G-1", gift, entity="opportunity")])
    gifts = DestinationReconcile(
        entity="opportunity", object="Opportunity", key_field="Donor_Sync_Id__c", fields={}
    )
    [read] = reader.changed_records(gifts, None, FAR)
    assert (read.key, read.master_remote_id, read.values) == ("G-1", None, {})

    wrong = DestinationReconcile(
        entity="contact",
        object="Contact",
        key_field="Donor_Sync_Id__c",
        fields={"Shoe_Size__c": FieldRule(to="first_name", policy="pull")},
    )
    with pytest.raises(ConfigError, match="Contact has no field Shoe_Size__c"):
        list(reader.changed_records(wrong, None, FAR))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05.123+0000", dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=dt.UTC)),
        ("2024-01-02T03:04:05Z", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        ("2024-01-02T05:04:05.000+0200", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
    ],
)
def test_modstamps_parse_to_utc(text: str, expected: dt.datetime) -> None:
    parsed = parse_modstamp(text)
    assert parsed == expected
    assert parsed.tzinfo is dt.UTC


def test_pull_brings_staff_edits_and_merges_into_core(
    db: psycopg.Connection,
    sf: Running,
    connector: SalesforceConnector,
    client: SalesforceClient,
    reader: SalesforceReader,
) -> None:
    jane_id = jane(db)
    batch = new_batch()
    stage(db, batch, "classy", "m-1", **MARCUS)
    run(db, batch)
    marcus_id = donor_of(db, "classy", "m-1")
    jane_sf, marcus_sf = _push(
        connector,
        (jane_id, {"FirstName": "Jane", "LastName": "Okafor", "Email": "jane.okafor@example.org"}),
        (marcus_id, {"FirstName": "Marcus", "LastName": "Whitfield"}),
    )
    landed(db, "salesforce", jane_id, jane_sf)
    landed(db, "salesforce", marcus_id, marcus_sf)
    db.commit()
    _edit(client, jane_sf, FirstName="Janet", npsp__Do_Not_Contact__c=True)
    _merge(sf, jane_sf, marcus_sf)

    now = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=5)
    report = pull_destination(
        db, reader, "salesforce", CONTACTS, rules=load_resolve_rules(), actor="crm-test", now=now
    )
    db.commit()
    assert (report.read, report.deleted, report.merges, report.merge_conflicts) == (2, 1, 1, 0)
    assert report.field_changes["first_name"] == 1
    assert str(golden(db, marcus_id)["merged_into"]) == jane_id, "the CRM merge merged the donors"
    survivor = golden(db, jane_id)
    assert (survivor["first_name"], survivor["do_not_contact"]) == ("Janet", True)
    assert db.execute(
        "SELECT remote_deleted_at IS NOT NULL FROM sync.destination_state WHERE remote_id = %s", [marcus_sf]
    ).fetchone() == (True,)
    stamps = client.get_json("/queryAll", {"q": "SELECT SystemModstamp FROM Contact"})["records"]
    newest = max(parse_modstamp(r["SystemModstamp"]) for r in stamps)
    assert report.watermark == newest
