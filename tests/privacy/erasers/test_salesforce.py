"""Salesforce NPSP erasure against the emulator: the Contact anonymized or hard-deleted, gifts kept
with their PII-bearing names replaced, the household anonymized, read back, idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from donor_sync.delivery.connectors.salesforce import PollPolicy, SalesforceClient
from donor_sync.privacy.contracts import DestinationEraser, RemoteRef
from donor_sync.privacy.erasers import SalesforceEraser
from donor_sync.privacy.erasers.settings import SalesforceErasure
from sandbox.common.runner import Sandbox
from tests.privacy.erasers.conftest import DONOR, fault, pii_found

FAST_POLL = PollPolicy(first_wait_s=0.02, max_wait_between_s=0.2, deadline_s=20)


def _seed(box: Sandbox) -> dict[str, Any]:
    """A household, the donor's Contact, a gift named after them, a plain gift, a recurring
    donation (whose NPSP installment is named after them), and a neighbour in another household."""
    emulator: Any = box["salesforce"].emulator
    store = emulator.store
    with emulator.lock:
        emulator.seed(
            "Account",
            [
                {
                    "Name": f"{DONOR.last} Household",
                    "Type": "Household",
                    "BillingStreet": DONOR.street,
                    "BillingCity": "Springfield",
                    "Donor_Sync_Id__c": "hh-1",
                },
                {"Name": "Other Household", "Type": "Household", "Donor_Sync_Id__c": "hh-2"},
            ],
        )
        household = store.match(store_obj("Account"), "Donor_Sync_Id__c", "hh-1")[0]
        other_household = store.match(store_obj("Account"), "Donor_Sync_Id__c", "hh-2")[0]
        emulator.seed(
            "Contact",
            [
                {
                    "FirstName": DONOR.first,
                    "LastName": DONOR.last,
                    "Email": DONOR.email,
                    "npe01__HomeEmail__c": DONOR.email,
                    "Phone": DONOR.phone,
                    "MailingStreet": DONOR.street,
                    "MailingCity": "Springfield",
                    "AccountId": household,
                    "Donor_Sync_Id__c": DONOR.donor_id,
                },
                {"FirstName": "Amara", "LastName": "Neighbour", "AccountId": other_household},
            ],
        )
        contact = store.match(store_obj("Contact"), "Donor_Sync_Id__c", DONOR.donor_id)[0]
        emulator.seed(
            "Opportunity",
            [
                {
                    "Name": f"{DONOR.first} {DONOR.last} Donation 2026-01-05",
                    "StageName": "Closed Won",
                    "CloseDate": "2026-01-05",
                    "Amount": 25,
                    "AccountId": household,
                    "npsp__Primary_Contact__c": contact,
                    "Donor_Sync_Id__c": "gift-1",
                },
                {
                    "Name": "Donation 2026-02-01 spring",
                    "StageName": "Closed Won",
                    "CloseDate": "2026-02-01",
                    "Amount": 40,
                    "AccountId": household,
                    "npsp__Primary_Contact__c": contact,
                    "Donor_Sync_Id__c": "gift-2",
                },
            ],
        )
        emulator.seed(
            "npe03__Recurring_Donation__c",
            [
                {
                    "Name": f"{DONOR.first} {DONOR.last} $10 - Recurring",
                    "npe03__Contact__c": contact,
                    "npe03__Amount__c": 10,
                    "npsp__Status__c": "Active",
                    "npe03__Next_Payment_Date__c": "2026-03-01",
                }
            ],
        )
    return {"household": household, "contact": contact, "other_household": other_household}


def store_obj(name: str) -> Any:
    from sandbox.emulators.salesforce.objects import SOBJECTS

    return SOBJECTS[name]


def _eraser(client: SalesforceClient, **settings: Any) -> SalesforceEraser:
    return SalesforceEraser(client, SalesforceErasure(**settings), poll=FAST_POLL)


def _state(box: Sandbox) -> dict[str, Any]:
    emulator: Any = box["salesforce"].emulator
    with emulator.lock:
        return {
            "live": {n: list(t.values()) for n, t in emulator.store.tables.items()},
            "recycle_bin": {n: list(t.values()) for n, t in emulator.store.recycle_bin.items()},
        }


def test_anonymize_keeps_gifts_without_pii_and_a_second_run_finds_nothing(
    sandbox: Sandbox, salesforce_client: SalesforceClient
) -> None:
    ids = _seed(sandbox)
    gifts_before = len(_state(sandbox)["live"]["Opportunity"])
    assert gifts_before == 3, "two gifts and NPSP's first installment"
    assert pii_found(_state(sandbox)), "the seed holds the donor's PII"
    eraser = _eraser(salesforce_client)
    assert isinstance(eraser, DestinationEraser)

    receipt = eraser.erase(DONOR.subject())

    assert (receipt.status, receipt.action, receipt.verified) == ("done", "anonymized", True), receipt
    state = _state(sandbox)
    assert pii_found(state) == [], "no PII of the donor is left in the org"
    assert pii_found(receipt.as_row()) == []
    assert len(state["live"]["Opportunity"]) == gifts_before, "gifts are financial records: all kept"
    contact = next(c for c in state["live"]["Contact"] if c["Id"] == ids["contact"])
    assert contact["LastName"] == "Anonymized"
    assert contact["Email"] is None
    assert contact["npsp__Do_Not_Contact__c"] is True
    household = next(a for a in state["live"]["Account"] if a["Id"] == ids["household"])
    assert household["Name"] == "Anonymized Household"
    assert household["BillingStreet"] is None
    other = next(a for a in state["live"]["Account"] if a["Id"] == ids["other_household"])
    assert other["Name"] == "Other Household", "another household is not touched"
    assert receipt.counts["opportunities_renamed"] == 2, "the named gift and the NPSP installment"
    assert receipt.counts["recurring_donations_renamed"] == 1
    assert RemoteRef("contact", ids["contact"]) in receipt.remote_refs
    assert "queryAll Contact by Id" in (receipt.verification or "")

    again = eraser.erase(DONOR.subject({"salesforce": (RemoteRef("contact", ids["contact"]),)}))

    assert (again.status, again.action, again.verified) == ("done", "not_held", True), again


def test_delete_hard_deletes_the_contact_and_keeps_its_gifts(
    sandbox: Sandbox, salesforce_client: SalesforceClient
) -> None:
    ids = _seed(sandbox)

    receipt = _eraser(salesforce_client, method="delete").erase(DONOR.subject())

    assert (receipt.status, receipt.action, receipt.verified) == ("done", "deleted", True), receipt
    state = _state(sandbox)
    assert all(c["Id"] != ids["contact"] for c in state["live"]["Contact"])
    assert all(c["Id"] != ids["contact"] for c in state["recycle_bin"]["Contact"]), "hard delete"
    assert pii_found(state) == []
    gifts = state["live"]["Opportunity"]
    assert len(gifts) == 3
    assert all(g["npsp__Primary_Contact__c"] is None for g in gifts)
    assert sum(g["Amount"] or 0 for g in gifts) == 75

    again = _eraser(salesforce_client, method="delete").erase(
        DONOR.subject({"salesforce": (RemoteRef("contact", ids["contact"]),)})
    )
    assert (again.status, again.action, again.verified) == ("done", "not_held", True), again


def test_soft_delete_leaves_only_a_blank_copy_in_the_recycle_bin(
    sandbox: Sandbox, salesforce_client: SalesforceClient
) -> None:
    ids = _seed(sandbox)

    receipt = _eraser(salesforce_client, method="delete", hard_delete=False).erase(DONOR.subject())

    assert (receipt.status, receipt.verified) == ("done", True), receipt
    state = _state(sandbox)
    assert [c["Id"] for c in state["recycle_bin"]["Contact"]] == [ids["contact"]]
    assert pii_found(state) == [], "the copy in the recycle bin was blanked before the delete"


def test_a_donor_the_org_never_had_is_not_held(sandbox: Sandbox, salesforce_client: SalesforceClient) -> None:
    receipt = _eraser(salesforce_client).erase(DONOR.subject())

    assert (receipt.status, receipt.action, receipt.verified) == ("done", "not_held", True), receipt
    assert "Contact by Donor_Sync_Id__c: 0 found" in (receipt.verification or "")


def test_a_transient_503_is_retried(sandbox: Sandbox, salesforce_client: SalesforceClient) -> None:
    _seed(sandbox)
    fault(sandbox, "salesforce", kind="status", status=503, path="/composite/sobjects", count=1)

    receipt = _eraser(salesforce_client).erase(DONOR.subject())

    assert (receipt.status, receipt.verified) == ("done", True), receipt
    assert pii_found(_state(sandbox)) == []


@pytest.mark.parametrize("status", [503, 403])
def test_a_lasting_refusal_gives_a_failed_receipt_without_pii(
    sandbox: Sandbox, salesforce_client: SalesforceClient, status: int
) -> None:
    _seed(sandbox)
    fault(sandbox, "salesforce", kind="status", status=status, path="/composite/sobjects", method="PATCH")

    receipt = _eraser(salesforce_client).erase(DONOR.subject())

    assert (receipt.status, receipt.verified) == ("failed", False), receipt
    assert f"HTTP {status}" in (receipt.error or "")
    assert pii_found(receipt.as_row()) == []
