"""Pushes of up to 200 records through sObject Collections: idempotent upserts, per-record failure
classes with value-free messages, creates, updates by id, deletes and set-if-empty fields."""

from __future__ import annotations

import pytest

from donor_sync.delivery.connectors.salesforce import SalesforceConnector
from donor_sync.delivery.contracts import Connector, FailureClass, Operation, RecordResult
from sandbox.common.runner import Running
from tests.delivery.connectors.salesforce._support import record, requests_to, rows


def test_connector_satisfies_the_protocol(connector: SalesforceConnector) -> None:
    assert isinstance(connector, Connector)
    assert connector.destination == "salesforce"
    assert list(connector.entity_order()) == [
        "household_account",
        "organization_account",
        "contact",
        "recurring_donation",
        "opportunity",
    ]
    assert connector.batch_size("contact", Operation.UPSERT, 150) == 200
    assert connector.batch_size("contact", Operation.UPSERT, 2000) == 200
    assert connector.batch_size("contact", Operation.UPSERT, 2001) == 10_000


def test_upsert_creates_then_updates_without_duplicates(sf: Running, connector: SalesforceConnector) -> None:
    batch = [
        record(1, "D-1", {"FirstName": "Ada", "LastName": "Lovelace"}),
        record(2, "D-2", {"LastName": "Hopper"}),
    ]
    first = connector.push("contact", Operation.UPSERT, batch)
    assert [r.ok for r in first] == [True, True]
    assert [r.created for r in first] == [True, True]
    assert all(r.remote_id and r.remote_id.startswith("003") for r in first)

    again = connector.push(
        "contact", Operation.UPSERT, [record(3, "D-1", {"FirstName": "Ada", "LastName": "King"}), batch[1]]
    )
    assert [r.outbox_id for r in again] == [3, 2]
    assert [r.created for r in again] == [False, False]
    assert [r.remote_id for r in again] == [first[0].remote_id, first[1].remote_id]
    stored = {r["Donor_Sync_Id__c"]: r for r in rows(sf, "Contact")}
    assert len(stored) == 2
    assert len(rows(sf, "Contact")) == 2
    assert stored["D-1"]["LastName"] == "King"


def test_external_id_comes_from_the_record_key(sf: Running, connector: SalesforceConnector) -> None:
    [result] = connector.push(
        "contact", Operation.UPSERT, [record(1, "D-9", {"LastName": "X", "Donor_Sync_Id__c": "stale"})]
    )
    assert result.ok
    assert [r["Donor_Sync_Id__c"] for r in rows(sf, "Contact")] == ["D-9"]


def _failure(result: RecordResult) -> tuple[bool, FailureClass | None, str | None]:
    return result.ok, result.error_class, result.error_code


def test_per_record_failures_are_classified_and_carry_no_values(
    sf: Running, connector: SalesforceConnector
) -> None:
    connector.push(
        "contact",
        Operation.UPSERT,
        [record(1, "D-1", {"LastName": "A", "Stripe_Customer_Id__c": "cus_SECRET1"})],
    )
    results = connector.push(
        "contact",
        Operation.UPSERT,
        [
            record(10, "D-10", {"FirstName": "Grace"}),  # LastName missing
            record(11, "D-11", {"LastName": "B", "Stripe_Customer_Id__c": "cus_SECRET1"}),  # unique clash
            record(12, "D-12", {"LastName": "C", "Email": "not-an-email-PII"}),
            record(13, "D-13", {"LastName": "Fine"}),
        ],
    )
    assert _failure(results[0]) == (False, FailureClass.VALIDATION, "REQUIRED_FIELD_MISSING")
    assert results[0].message == "REQUIRED_FIELD_MISSING on LastName"
    assert _failure(results[1]) == (False, FailureClass.DUPLICATE_RULE, "DUPLICATE_VALUE")
    assert "cus_SECRET1" not in (results[1].message or "")
    assert _failure(results[2]) == (False, FailureClass.VALIDATION, "INVALID_EMAIL_ADDRESS")
    assert "not-an-email-PII" not in (results[2].message or "")
    assert results[3].ok
    assert not any(r.error_class is not None and r.error_class.retryable for r in results[:3])


def test_bad_restricted_picklist_is_validation(sf: Running, connector: SalesforceConnector) -> None:
    connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])
    [result] = connector.push(
        "recurring_donation",
        Operation.UPSERT,
        [
            record(
                2,
                "P-1",
                {
                    "npe03__Contact__r": {"Donor_Sync_Id__c": "D-1"},
                    "npe03__Amount__c": 25,
                    "npe03__Installment_Period__c": "Fortnightly",
                },
                entity="recurring_donation",
            )
        ],
    )
    assert _failure(result) == (False, FailureClass.VALIDATION, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert "Fortnightly" not in (result.message or "")
    assert "npe03__Installment_Period__c" in (result.message or "")


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        pytest.param(0, FailureClass.TRANSIENT, id="young: the parent may still land"),
        pytest.param(3, FailureClass.VALIDATION, id="old: the parent is not coming"),
    ],
)
def test_missing_parent_is_transient_then_validation(
    sf: Running, connector: SalesforceConnector, attempts: int, expected: FailureClass
) -> None:
    gift = {
        "Name": "Gift",
        "CloseDate": "2024-05-01",
        "StageName": "Closed Won",
        "Amount": 10,
        "npsp__Primary_Contact__r": {"Donor_Sync_Id__c": "D-NOT-THERE"},
    }
    [result] = connector.push(
        "opportunity", Operation.UPSERT, [record(1, "G-1", gift, entity="opportunity", attempts=attempts)]
    )
    assert (result.ok, result.error_class) == (False, expected)
    assert result.message == "INVALID_FIELD: the parent lookup Contact.Donor_Sync_Id__c found no records"
    assert rows(sf, "Opportunity") == []


def test_row_lock_is_retried_once_inside_the_call(sf: Running, connector: SalesforceConnector) -> None:
    sf.emulator.settings["unable_to_lock_keys"] = ["D-LOCKED"]
    results = connector.push(
        "contact",
        Operation.UPSERT,
        [record(1, "D-1", {"LastName": "A"}), record(2, "D-LOCKED", {"LastName": "B"})],
    )
    assert results[0].ok
    assert _failure(results[1]) == (False, FailureClass.TRANSIENT, "UNABLE_TO_LOCK_ROW")
    assert len(requests_to(sf, "/composite/sobjects/Contact/Donor_Sync_Id__c", "PATCH")) == 2

    sf.emulator.settings.update(unable_to_lock_keys=[], unable_to_lock_rate=0.5, lock_seed=3)
    sf.emulator.reset_state()
    batch = [record(i, f"D-{i}", {"LastName": "N"}) for i in range(40)]
    results = connector.push("contact", Operation.UPSERT, batch)
    locked_after_retry = sum(not r.ok for r in results)
    assert len(batch) - locked_after_retry > 0, "the retry recovered records"
    assert all(r.error_code == "UNABLE_TO_LOCK_ROW" for r in results if not r.ok)
    assert locked_after_retry < 40 * 0.5, "fewer than the first pass alone would leave"


def test_repeated_key_in_one_batch_waits_for_the_next(sf: Running, connector: SalesforceConnector) -> None:
    results = connector.push(
        "contact",
        Operation.UPSERT,
        [record(1, "D-1", {"LastName": "A"}), record(2, "D-1", {"LastName": "B"})],
    )
    assert results[0].ok
    assert _failure(results[1]) == (False, FailureClass.TRANSIENT, "RETRY_NEXT_BATCH")
    assert len(rows(sf, "Contact")) == 1


def test_create_is_idempotent_through_the_external_id(sf: Running, connector: SalesforceConnector) -> None:
    batch = [
        record(
            1, "H-1", {"Name": "Lovelace Household"}, entity="household_account", operation=Operation.CREATE
        )
    ]
    [first] = connector.push("household_account", Operation.CREATE, batch)
    assert first.ok
    assert first.created
    [again] = connector.push("household_account", Operation.CREATE, batch)
    assert (again.ok, again.created, again.remote_id) == (True, False, first.remote_id)
    assert len(rows(sf, "Account")) == 1


def test_update_by_id(sf: Running, connector: SalesforceConnector) -> None:
    [landed] = connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])
    results = connector.push(
        "contact",
        Operation.UPDATE,
        [
            record(2, "D-1", {"LastName": "Renamed"}, operation=Operation.UPDATE, remote_id=landed.remote_id),
            record(3, "D-2", {"LastName": "Nobody"}, operation=Operation.UPDATE),
        ],
    )
    assert results[0].ok
    assert results[0].remote_id == landed.remote_id
    assert _failure(results[1]) == (False, FailureClass.VALIDATION, "MISSING_REMOTE_ID")
    assert [r["LastName"] for r in rows(sf, "Contact")] == ["Renamed"]


def test_delete_by_id_or_key_and_again(sf: Running, connector: SalesforceConnector) -> None:
    landed = connector.push(
        "contact",
        Operation.UPSERT,
        [record(1, "D-1", {"LastName": "A"}), record(2, "D-2", {"LastName": "B"})],
    )
    deletes = [
        record(3, "D-1", {}, operation=Operation.DELETE, remote_id=landed[0].remote_id),
        record(4, "D-2", {}, operation=Operation.DELETE),  # found by its external id
        record(5, "D-3", {}, operation=Operation.DELETE),  # never landed
    ]
    results = connector.push("contact", Operation.DELETE, deletes)
    assert [r.ok for r in results] == [True, True, True]
    assert results[1].remote_id == landed[1].remote_id
    assert rows(sf, "Contact") == []
    again = connector.push("contact", Operation.DELETE, deletes[:1])
    assert again[0].ok, "deleting what is gone is done"


def test_unsupported_operation_is_permanent(connector: SalesforceConnector) -> None:
    [result] = connector.push("contact", Operation.MERGE, [record(1, "D-1", {}, operation=Operation.MERGE)])
    assert _failure(result) == (False, FailureClass.PERMANENT, "OPERATION_NOT_SUPPORTED")


def test_set_if_empty_fields_keep_the_crm_value(sf: Running, connector: SalesforceConnector) -> None:
    connector.push(
        "contact",
        Operation.UPSERT,
        [record(1, "D-1", {"LastName": "A", "Phone": "+1 555 0100"}), record(2, "D-2", {"LastName": "B"})],
    )
    keep = frozenset({"Phone"})
    connector.push(
        "contact",
        Operation.UPSERT,
        [
            record(3, "D-1", {"LastName": "A2", "Phone": "+1 555 0199"}, set_if_empty=keep),
            record(4, "D-2", {"LastName": "B2", "Phone": "+1 555 0142"}, set_if_empty=keep),
        ],
    )
    stored = {r["Donor_Sync_Id__c"]: r for r in rows(sf, "Contact")}
    assert (stored["D-1"]["LastName"], stored["D-1"]["Phone"]) == ("A2", "+1 555 0100")
    assert (stored["D-2"]["LastName"], stored["D-2"]["Phone"]) == ("B2", "+1 555 0142")
