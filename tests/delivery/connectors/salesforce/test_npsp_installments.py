"""Recurring gifts become the installment Opportunities NPSP created, never parallel ones.

The first test lets the emulator's NPSP automation create installments (as Enhanced Recurring
Donations do); the others turn it off and seed a schedule by hand to pin down the matching rules.
"""

from __future__ import annotations

from typing import Any

import pytest

from donor_sync.delivery.connectors.salesforce import SalesforceClient, SalesforceConnector
from donor_sync.delivery.contracts import FailureClass, Operation, RecordRef
from sandbox.common.runner import Running
from tests.delivery.connectors.salesforce._support import record, rows


@pytest.fixture
def npsp(client: SalesforceClient) -> SalesforceConnector:
    """The connector with its default open-installment condition (``IsClosed = false``)."""
    return SalesforceConnector(client)


def _household_and_contact(npsp: SalesforceConnector) -> None:
    npsp.push(
        "household_account",
        Operation.UPSERT,
        [record(1, "H-1", {"Name": "Lovelace Household"}, entity="household_account")],
    )
    npsp.push(
        "contact",
        Operation.UPSERT,
        [record(1, "D-1", {"LastName": "Lovelace", "Account": {"Donor_Sync_Id__c": "H-1"}})],
    )


@pytest.fixture
def plan(sf: Running, npsp: SalesforceConnector) -> dict[str, str]:
    """A contact, a monthly recurring donation and its installments on the 15th (January paid),
    seeded by hand with NPSP's automation off."""
    sf.emulator.settings["npsp_installments"] = False
    _household_and_contact(npsp)
    [rd] = npsp.push(
        "recurring_donation",
        Operation.UPSERT,
        [
            record(
                2,
                "P-1",
                {"npe03__Contact__r": {"Donor_Sync_Id__c": "D-1"}, "npe03__Amount__c": 25},
                entity="recurring_donation",
            )
        ],
    )
    assert rd.remote_id
    installments = [("2024-01-15", "Closed Won"), ("2024-02-15", "Pledged"), ("2024-03-15", "Pledged")]
    sf.emulator.seed(
        "Opportunity",
        [
            {
                "Name": f"Installment {day}",
                "CloseDate": day,
                "StageName": stage,
                "Amount": 25,
                "npe03__Recurring_Donation__c": rd.remote_id,
            }
            for day, stage in installments
        ],
    )
    ids = {r["CloseDate"]: r["Id"] for r in rows(sf, "Opportunity")}
    return {"rd": rd.remote_id, **ids}


def _gift(outbox_id: int, key: str, day: str, **extra: Any) -> Any:
    payload = {
        "Name": f"Gift {key}",
        "Amount": 25,
        "CloseDate": day,
        "StageName": "Closed Won",
        "npe03__Recurring_Donation__r": {"Donor_Sync_Id__c": "P-1"},
        "npsp__Primary_Contact__r": {"Donor_Sync_Id__c": "D-1"},
    }
    return record(outbox_id, key, payload, entity="opportunity", **extra)


def test_payments_claim_the_installments_npsp_creates(sf: Running, npsp: SalesforceConnector) -> None:
    _household_and_contact(npsp)
    rd_payload = {
        "npe03__Contact__r": {"Donor_Sync_Id__c": "D-1"},
        "npe03__Amount__c": 25,
        "npe03__Installment_Period__c": "Monthly",
        "npe03__Next_Payment_Date__c": "2024-02-15",
    }
    [rd] = npsp.push(
        "recurring_donation", Operation.UPSERT, [record(2, "P-1", rd_payload, entity="recurring_donation")]
    )
    [first] = rows(sf, "Opportunity")
    contact = rows(sf, "Contact")[0]
    assert (first["StageName"], first["CloseDate"], first["Amount"], first["IsClosed"]) == (
        "Pledged",
        "2024-02-15",
        25.0,
        False,
    )
    assert (first["npe03__Recurring_Donation__c"], first["npsp__Primary_Contact__c"]) == (
        rd.remote_id,
        contact["Id"],
    )
    assert first["AccountId"] == contact["AccountId"]
    assert first["Donor_Sync_Id__c"] is None

    [paid] = npsp.push("opportunity", Operation.UPSERT, [_gift(10, "G-FEB", "2024-02-13")])
    assert (paid.ok, paid.remote_id, paid.created) == (True, first["Id"], False)
    stored = sorted(rows(sf, "Opportunity"), key=lambda r: r["CloseDate"])
    assert [(r["CloseDate"], r["StageName"], r["Donor_Sync_Id__c"]) for r in stored] == [
        ("2024-02-13", "Closed Won", "G-FEB"),
        ("2024-03-15", "Pledged", None),
    ], "closing February's installment made NPSP schedule March's"

    [march] = npsp.push("opportunity", Operation.UPSERT, [_gift(11, "G-MAR", "2024-03-16")])
    assert (march.remote_id, march.created) == (stored[1]["Id"], False)
    [again] = npsp.push("opportunity", Operation.UPSERT, [_gift(12, "G-FEB", "2024-02-13")])
    assert (again.remote_id, again.created) == (first["Id"], False)
    stored = sorted(rows(sf, "Opportunity"), key=lambda r: r["CloseDate"])
    assert [(r["Donor_Sync_Id__c"], r["IsClosed"]) for r in stored] == [
        ("G-FEB", True),
        ("G-MAR", True),
        (None, False),
    ]
    assert stored[2]["CloseDate"] == "2024-04-15"


def test_payment_claims_the_nearest_open_installment(
    sf: Running, npsp: SalesforceConnector, plan: dict[str, str]
) -> None:
    [result] = npsp.push("opportunity", Operation.UPSERT, [_gift(10, "G-1", "2024-02-13")])
    assert (result.ok, result.remote_id, result.created) == (True, plan["2024-02-15"], False)
    stored = {r["Id"]: r for r in rows(sf, "Opportunity")}
    assert len(stored) == 3, "no parallel Opportunity"
    assert stored[plan["2024-02-15"]]["Donor_Sync_Id__c"] == "G-1"
    assert stored[plan["2024-02-15"]]["StageName"] == "Closed Won"

    [again] = npsp.push("opportunity", Operation.UPSERT, [_gift(11, "G-1", "2024-02-13")])
    assert (again.remote_id, again.created) == (plan["2024-02-15"], False)
    assert len(rows(sf, "Opportunity")) == 3


def test_each_gift_takes_its_own_installment_and_strays_are_inserted(
    sf: Running, npsp: SalesforceConnector, plan: dict[str, str]
) -> None:
    refs = {RecordRef("recurring_donation", "P-1"): plan["rd"]}
    results = npsp.push(
        "opportunity",
        Operation.UPSERT,
        [
            _gift(10, "G-MAR", "2024-03-16", remote_refs=refs),
            _gift(11, "G-FEB", "2024-02-20"),
            _gift(12, "G-JAN", "2024-01-15"),  # January's installment is closed: nothing to claim
            _gift(13, "G-JUL", "2024-07-15"),  # no installment within a month
        ],
    )
    assert [r.ok for r in results] == [True, True, True, True]
    assert results[0].remote_id == plan["2024-03-15"]
    assert results[1].remote_id == plan["2024-02-15"]
    assert results[2].remote_id not in plan.values()
    assert results[2].created
    assert results[3].created
    stored = rows(sf, "Opportunity")
    assert len(stored) == 5
    assert sorted(r["Donor_Sync_Id__c"] or "-" for r in stored) == ["-", "G-FEB", "G-JAN", "G-JUL", "G-MAR"]


def test_two_payments_near_one_installment_do_not_share_it(
    sf: Running, npsp: SalesforceConnector, plan: dict[str, str]
) -> None:
    results = npsp.push(
        "opportunity",
        Operation.UPSERT,
        [_gift(10, "G-A", "2024-02-14"), _gift(11, "G-B", "2024-02-16")],
    )
    assert {r.remote_id for r in results} == {plan["2024-02-15"], plan["2024-03-15"]}
    assert len(rows(sf, "Opportunity")) == 3


def test_failed_claim_holds_the_gift_back(
    sf: Running, npsp: SalesforceConnector, plan: dict[str, str]
) -> None:
    sf.emulator.settings["unable_to_lock_keys"] = [plan["2024-02-15"]]
    [result] = npsp.push("opportunity", Operation.UPSERT, [_gift(10, "G-1", "2024-02-13")])
    assert (result.ok, result.error_class, result.error_code) == (
        False,
        FailureClass.TRANSIENT,
        "UNABLE_TO_LOCK_ROW",
    )
    assert len(rows(sf, "Opportunity")) == 3, "not inserted beside the installment it could not claim"
