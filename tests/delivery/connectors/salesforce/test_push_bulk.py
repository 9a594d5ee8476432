"""Pushes above 200 records through Bulk API 2.0 jobs: results mapped back by external id,
explicit nulls as ``#N/A``, unprocessed rows transient, whole-job failures rejected."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from donor_sync.delivery.connectors.salesforce import PollPolicy, SalesforceClient, SalesforceConnector
from donor_sync.delivery.connectors.salesforce.bulk import flatten, to_csv
from donor_sync.delivery.connectors.salesforce.errors import parse_bulk_error
from donor_sync.delivery.contracts import BatchRejectedError, FailureClass, Operation
from sandbox.common.runner import Running
from tests.delivery.connectors.salesforce._support import record, requests_to, rows


def test_flatten_turns_references_into_dotted_columns() -> None:
    payload = {
        "Name": "Gift",
        "npsp__Primary_Contact__r": {"attributes": {"type": "Contact"}, "Donor_Sync_Id__c": "D-1"},
        "attributes": {"type": "Opportunity"},
    }
    assert flatten(payload) == {"Name": "Gift", "npsp__Primary_Contact__r.Donor_Sync_Id__c": "D-1"}
    assert "attributes" in payload, "the input is not changed"


def test_csv_blanks_only_explicit_nulls() -> None:
    columns, text = to_csv([{"A": "x", "B": None}, {"A": True, "C": 'say "hi", then\r\nleave'}])
    assert columns == ["A", "B", "C"]
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed == [["A", "B", "C"], ["x", "#N/A", ""], ["true", "", 'say "hi", then\nleave']]
    assert "\r\n" not in text


@pytest.mark.parametrize(
    ("cell", "code", "fields"),
    [
        (
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --",
            "REQUIRED_FIELD_MISSING",
            ("LastName",),
        ),
        ("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--", "UNABLE_TO_LOCK_ROW", ()),
        ("DUPLICATE_VALUE:duplicate value found: A duplicates value", "DUPLICATE_VALUE", ()),
    ],
)
def test_parse_bulk_error(cell: str, code: str, fields: tuple[str, ...]) -> None:
    error = parse_bulk_error(cell)
    assert (error.code, error.fields) == (code, fields)


def _contacts(n: int, start: int = 0) -> list[Any]:
    return [
        record(start + i, f"D-{i:05d}", {"LastName": f"Donor {i}", "Phone": "+1 555 0100"}) for i in range(n)
    ]


def test_bulk_upsert_maps_every_row_back_to_its_outbox_record(
    sf: Running, connector: SalesforceConnector
) -> None:
    pending = 2_100
    size = connector.batch_size("contact", Operation.UPSERT, pending)
    assert size == 10_000
    batch = _contacts(pending)
    bad = {
        7: {"FirstName": "NoLast"},  # required LastName missing
        1500: {"LastName": "X", "Email": "broken"},
        2099: {"LastName": "Y", "npe01__Preferred_Email__c": "Pigeon"},  # unrestricted picklist: accepted
    }
    for index, payload in bad.items():
        batch[index] = record(batch[index].outbox_id, batch[index].record_key, payload)
    batch.reverse()  # results come back in any order; the mapping must not rely on it

    results = connector.push("contact", Operation.UPSERT, batch)

    assert len(requests_to(sf, "/jobs/ingest", "POST")) == 1
    assert not requests_to(sf, "/composite/sobjects")
    by_outbox = {r.outbox_id: r for r in results}
    assert [r.outbox_id for r in results] == [r.outbox_id for r in batch]
    assert (by_outbox[7].error_class, by_outbox[7].error_code) == (
        FailureClass.VALIDATION,
        "REQUIRED_FIELD_MISSING",
    )
    assert by_outbox[7].message == "REQUIRED_FIELD_MISSING on LastName"
    assert by_outbox[1500].error_code == "INVALID_EMAIL_ADDRESS"
    assert "broken" not in (by_outbox[1500].message or "")
    ok = [r for r in results if r.ok]
    assert len(ok) == pending - 2
    assert all(r.created for r in ok)
    stored = {r["Donor_Sync_Id__c"]: r["Id"] for r in rows(sf, "Contact")}
    assert len(stored) == pending - 2
    assert all(
        stored[b.record_key] == by_outbox[b.outbox_id].remote_id for b in batch if by_outbox[b.outbox_id].ok
    )

    again = connector.push("contact", Operation.UPSERT, _contacts(pending, start=10_000))
    assert sum(r.created is True for r in again) == 2, "only the two that failed before are new"
    assert len(rows(sf, "Contact")) == pending


def test_bulk_null_blanks_a_field_and_absence_keeps_it(sf: Running, connector: SalesforceConnector) -> None:
    connector.push("contact", Operation.UPSERT, _contacts(250))
    update = [record(1000 + i, f"D-{i:05d}", {"LastName": f"Donor {i}"}) for i in range(250)]
    update[0] = record(1000, "D-00000", {"LastName": "Donor 0", "Phone": None})
    results = connector.push("contact", Operation.UPSERT, update)
    assert all(r.ok and r.created is False for r in results)
    phones = {r["Donor_Sync_Id__c"]: r["Phone"] for r in rows(sf, "Contact")}
    assert phones["D-00000"] is None
    assert phones["D-00001"] == "+1 555 0100"


def test_bulk_references_by_external_id(sf: Running, connector: SalesforceConnector) -> None:
    connector.push("contact", Operation.UPSERT, _contacts(3))
    gifts = [
        record(
            100 + i,
            f"G-{i}",
            {
                "Name": f"Gift {i}",
                "Amount": 5 + i,
                "CloseDate": "2024-06-01",
                "StageName": "Closed Won",
                "npsp__Primary_Contact__r": {"Donor_Sync_Id__c": f"D-{i % 4:05d}"},
            },
            entity="opportunity",
        )
        for i in range(240)
    ]
    results = connector.push("opportunity", Operation.UPSERT, gifts)
    missing_parent = [r for r in results if not r.ok]
    assert len(missing_parent) == 60, "every fourth gift names D-00003, which never landed"
    assert {r.error_class for r in missing_parent} == {FailureClass.TRANSIENT}
    contact_ids = {r["Donor_Sync_Id__c"]: r["Id"] for r in rows(sf, "Contact")}
    stored = {r["Donor_Sync_Id__c"]: r for r in rows(sf, "Opportunity")}
    assert stored["G-5"]["npsp__Primary_Contact__c"] == contact_ids["D-00001"]


def test_rows_left_unprocessed_by_an_aborted_job_are_transient(sf: Running, client: SalesforceClient) -> None:
    sf.emulator.settings["bulk_processing_s"] = 30.0
    connector = SalesforceConnector(
        client, bulk_poll=PollPolicy(first_wait_s=0.05, max_wait_between_s=0.1, deadline_s=0.5)
    )
    results = connector.push("contact", Operation.UPSERT, _contacts(300))
    done = [r for r in results if r.ok]
    waiting = [r for r in results if not r.ok]
    assert done, "rows processed before the deadline keep their results"
    assert waiting
    assert {(r.error_class, r.error_code) for r in waiting} == {(FailureClass.TRANSIENT, "NOT_PROCESSED")}
    assert len(rows(sf, "Contact")) == len(done)
    assert requests_to(sf, "/jobs/ingest/", "PATCH")[-1]["status"] == 200  # the abort


def test_a_job_that_fails_as_a_whole_rejects_the_batch(sf: Running, connector: SalesforceConnector) -> None:
    batch = [record(i, f"D-{i}", {"LastName": "A", "No_Such_Field__c": "v"}) for i in range(201)]
    with pytest.raises(BatchRejectedError) as caught:
        connector.push("contact", Operation.UPSERT, batch)
    assert caught.value.error_code == "InvalidBatch"
    assert rows(sf, "Contact") == []
