"""HubSpot erasure against the emulator: GDPR delete of every contact of the donor, deals kept and
renamed when named after them, emails blocklisted, read back, idempotent."""

from __future__ import annotations

from typing import Any

from donor_sync.privacy.contracts import RemoteRef
from donor_sync.privacy.erasers import HubSpotEraser
from donor_sync.privacy.erasers.settings import HubSpotErasure
from sandbox.common.runner import Sandbox
from tests.privacy.erasers.conftest import DONOR, fault, pii_found


def _seed(box: Sandbox, connector: Any) -> dict[str, str]:
    """The donor's contact (by donor id), an old contact of a merged donor (by email only), deals."""
    emulator: Any = box["hubspot"].emulator
    with emulator.lock:
        emulator.seed(
            "contacts",
            [
                {
                    "email": DONOR.email,
                    "firstname": DONOR.first,
                    "lastname": DONOR.last,
                    "phone": DONOR.phone,
                    "address": DONOR.street,
                    "donor_sync_id": DONOR.donor_id,
                },
                {"email": DONOR.old_email, "firstname": DONOR.first},
                {"email": "someone.else@example.com", "firstname": "Amara", "lastname": "Neighbour"},
            ],
        )
        emulator.seed(
            "deals",
            [
                {"dealname": f"{DONOR.first} {DONOR.last} gift", "closedate": "2026-01-05", "amount": "25"},
                {"dealname": "Donation 2026-02-01 spring", "closedate": "2026-02-01", "amount": "40"},
            ],
        )
        kinds = {k.name: k for k in emulator.store.types.values()}
        contacts = {r.properties.get("email"): r.id for r in emulator.store.of(kinds["contacts"]).values()}
        deals = [r.id for r in emulator.store.of(kinds["deals"]).values()]
    for deal in deals:
        connector.client.request(
            "PUT", f"/crm/v4/objects/contacts/{contacts[DONOR.email]}/associations/default/deals/{deal}"
        )
    return {"contact": contacts[DONOR.email], "old": contacts[DONOR.old_email], "deal": deals[0]}


def _state(box: Sandbox) -> dict[str, Any]:
    emulator: Any = box["hubspot"].emulator
    with emulator.lock:
        return emulator.snapshot()  # type: ignore[no-any-return]


def test_gdpr_delete_removes_every_contact_and_renames_the_named_deal(
    sandbox: Sandbox, hubspot_connector: Any
) -> None:
    ids = _seed(sandbox, hubspot_connector)
    eraser = HubSpotEraser(hubspot_connector.client, HubSpotErasure())

    receipt = eraser.erase(DONOR.subject())

    assert (receipt.status, receipt.action, receipt.verified) == ("done", "gdpr_deleted", True), receipt
    state = _state(sandbox)
    blocklist = state.pop("gdpr_blocklist")
    assert pii_found(state) == [], "no contact, deal or status holds the donor's PII"
    assert sorted(blocklist) == sorted([DONOR.email, DONOR.old_email]), "HubSpot's own blocklist"
    assert state["objects"]["contacts"]["count"] == 1, "the other person stays"
    deals = {r["id"]: r["properties"] for r in state["objects"]["deals"]["records"]}
    assert len(deals) == 2, "deals are gifts: kept"
    assert deals[ids["deal"]]["dealname"] == "Donation 2026-01-05"
    assert {r.remote_id for r in receipt.remote_refs if r.entity == "contact"} == {ids["contact"], ids["old"]}
    assert receipt.counts["deals_renamed"] == 1
    assert pii_found(receipt.as_row()) == []

    again = eraser.erase(DONOR.subject({"hubspot": (RemoteRef("contact", ids["contact"]),)}))

    assert (again.status, again.action, again.verified) == ("done", "not_held", True), again


def test_a_gdpr_deleted_email_cannot_be_recreated(sandbox: Sandbox, hubspot_connector: Any) -> None:
    HubSpotEraser(hubspot_connector.client, HubSpotErasure()).erase(DONOR.subject())

    reply = hubspot_connector.client.request(
        "POST", "/crm/v3/objects/contacts", json={"properties": {"email": DONOR.email}}, accept=(400,)
    )

    assert reply.status == 400
    assert "GDPR_BLOCKLISTED" in str(reply.body)


def test_a_lasting_5xx_gives_a_failed_receipt_without_pii(sandbox: Sandbox, hubspot_connector: Any) -> None:
    _seed(sandbox, hubspot_connector)
    fault(sandbox, "hubspot", kind="status", status=502, path="gdpr-delete")

    receipt = HubSpotEraser(hubspot_connector.client, HubSpotErasure()).erase(DONOR.subject())

    assert (receipt.status, receipt.verified) == ("failed", False), receipt
    assert "gdpr-delete: transient HTTP 502" in (receipt.error or "")
    assert pii_found(receipt.as_row()) == []
