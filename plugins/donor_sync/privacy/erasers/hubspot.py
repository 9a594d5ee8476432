"""Erase a donor from HubSpot: a GDPR delete of each contact; deals stay, renamed if named after them.

1. Find the donor's contacts: by the ids core knows, by the unique ``donor_sync_id`` property
   (every donor id) and by email (a batch read with ``idProperty=email``: the email goes in the
   request's body, never in a URL).
2. Deals are gifts (financial records) and stay: each deal associated with those contacts (and
   each deal core knows) whose ``dealname`` holds the donor's name, email or phone is renamed.
3. ``POST /crm/v3/objects/contacts/gdpr-delete`` per contact (by id): HubSpot deletes it for
   good and blocklists its emails. Emails no contact holds are GDPR-deleted by email too (when
   ``blocklist_unmatched_emails``), so HubSpot refuses to re-create them from a form or import.
4. Read back: each contact by id, by ``donor_sync_id`` and by email → not found; the deals'
   names hold no PII.

HubSpot keeps the blocklisted emails itself: that list is what stops a re-creation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from donor_sync.delivery.connectors.hubspot.client import HubSpotClient
from donor_sync.delivery.contracts import DeliveryError
from donor_sync.privacy.contracts import ErasureSubject, Receipt, RemoteRef
from donor_sync.privacy.erasers._common import PiiMatcher, failed_receipt
from donor_sync.privacy.erasers.settings import HubSpotErasure

log = logging.getLogger(__name__)

SYSTEM = "hubspot"
_CONTACT_PROPERTIES = "firstname,lastname,email,phone,hs_additional_emails"


def _seg(value: str) -> str:
    return quote(str(value), safe="")


class HubSpotEraser:
    """GDPR-delete a donor's HubSpot contacts; see the module docstring.

    :param client: a :class:`HubSpotClient` (``HubSpotConnector.client``).
    :param contact_id_property: the unique property holding the donor id (connection extra).
    """

    system = SYSTEM

    def __init__(
        self, client: HubSpotClient, settings: HubSpotErasure, *, contact_id_property: str = "donor_sync_id"
    ) -> None:
        self.client = client
        self.settings = settings
        self.contact_id_property = contact_id_property

    @property
    def _contacts_path(self) -> str:
        return self.client.paths.objects("contacts")

    def erase(self, subject: ErasureSubject) -> Receipt:
        """Erase the subject here and read back; never raises for vendor refusals."""
        step = "find"
        refs: list[RemoteRef] = []
        try:
            contacts = self._find_contacts(subject)
            matcher = PiiMatcher(
                names=[p.get(n) for p in contacts.values() for n in ("firstname", "lastname")],
                emails=[*subject.emails, *(p.get("email") for p in contacts.values())],
                phones=[*subject.phones, *(p.get("phone") for p in contacts.values())],
                ignore=["Donation"],
            )
            step = "deals"
            deals = self._deals(subject, contacts)
            renamed = self._rename_deals(deals, matcher)
            refs += [RemoteRef("deal", d) for d in renamed]
            step = "gdpr-delete"
            for contact_id in sorted(contacts):
                self.client.post(f"{self._contacts_path}/gdpr-delete", {"objectId": contact_id})
                refs.append(RemoteRef("contact", contact_id))
            held = {
                e.strip().lower()
                for p in contacts.values()
                for e in [p.get("email") or "", *(p.get("hs_additional_emails") or "").split(";")]
                if e.strip()
            }
            blocklisted = 0
            if self.settings.blocklist_unmatched_emails:
                for email in sorted(set(subject.emails) - held):
                    self.client.post(
                        f"{self._contacts_path}/gdpr-delete", {"objectId": email, "idProperty": "email"}
                    )
                    blocklisted += 1
            step = "read-back"
            verified, verification = self._read_back(subject, sorted(contacts), deals, matcher)
        except DeliveryError as exc:
            log.warning("HubSpot erasure for request %s failed at %s", subject.request_id, step)
            return failed_receipt(SYSTEM, "gdpr_deleted", exc, refs, step)
        return Receipt(
            system=SYSTEM,
            action="gdpr_deleted" if contacts or renamed else "not_held",
            status="done",
            remote_refs=tuple(refs),
            counts={
                "contacts_deleted": len(contacts),
                "deals_renamed": len(renamed),
                "emails_blocklisted_without_contact": blocklisted,
            },
            verified=verified,
            verification=verification,
        )

    # -- finding ---------------------------------------------------------------------------------
    def _get_contact(self, value: str, id_property: str | None) -> tuple[str, dict[str, Any]] | None:
        if id_property == "email":  # in a body, never a URL (request logs, proxies keep URLs)
            return self._get_contact_by_email(value)
        params: dict[str, Any] = {"properties": _CONTACT_PROPERTIES}
        if id_property:
            params["idProperty"] = id_property
        reply = self.client.request(
            "GET", f"{self._contacts_path}/{_seg(value)}", params=params, accept=(404,)
        )
        if reply.status == 404 or not isinstance(reply.body, dict):
            return None
        return str(reply.body["id"]), dict(reply.body.get("properties") or {})

    def _get_contact_by_email(self, email: str) -> tuple[str, dict[str, Any]] | None:
        properties = _CONTACT_PROPERTIES.split(",")
        body = {"idProperty": "email", "inputs": [{"id": email}], "properties": properties}
        reply = self.client.request("POST", f"{self._contacts_path}/batch/read", json=body, accept=(404,))
        results = reply.body.get("results") if isinstance(reply.body, dict) else None
        if not results:
            return None
        return str(results[0]["id"]), dict(results[0].get("properties") or {})

    def _lookups(self, subject: ErasureSubject) -> list[tuple[str, str | None]]:
        known = [r.remote_id for r in subject.remote_ids.get(SYSTEM, ()) if r.entity == "contact"]
        return [
            *((i, None) for i in known if i.isdigit()),
            *((d, self.contact_id_property) for d in subject.donor_ids),
            *((e, "email") for e in subject.emails),
        ]

    def _find_contacts(self, subject: ErasureSubject) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for value, id_property in self._lookups(subject):
            hit = self._get_contact(value, id_property)
            if hit is not None:
                found[hit[0]] = hit[1]
        return found

    def _deals(self, subject: ErasureSubject, contacts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        ids = {r.remote_id for r in subject.remote_ids.get(SYSTEM, ()) if r.entity == "deal"}
        for contact_id in sorted(contacts):
            after: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 500, **({"after": after} if after else {})}
                body = self.client.get(
                    f"/crm/v4/objects/contacts/{_seg(contact_id)}/associations/deals", params=params
                )
                ids |= {
                    str(item["toObjectId"])
                    for item in (body or {}).get("results", [])
                    if "toObjectId" in item
                }
                after = ((body or {}).get("paging") or {}).get("next", {}).get("after")
                if not after:
                    break
        deals: dict[str, dict[str, Any]] = {}
        path = self.client.paths.objects("deals")
        for deal_id in sorted(i for i in ids if i.isdigit()):
            reply = self.client.request(
                "GET", f"{path}/{deal_id}", params={"properties": "dealname,closedate"}, accept=(404,)
            )
            if reply.status == 200 and isinstance(reply.body, dict):
                deals[deal_id] = dict(reply.body.get("properties") or {})
        return deals

    def _rename_deals(self, deals: Mapping[str, Mapping[str, Any]], matcher: PiiMatcher) -> list[str]:
        path = self.client.paths.objects("deals")
        renamed: list[str] = []
        for deal_id, props in sorted(deals.items()):
            if matcher.found_in(str(props.get("dealname") or "")):
                name = self.settings.deal_name.format(
                    closedate=str(props.get("closedate") or "")[:10]
                ).strip()
                self.client.request("PATCH", f"{path}/{deal_id}", json={"properties": {"dealname": name}})
                renamed.append(deal_id)
        return renamed

    # -- reading back ----------------------------------------------------------------------------
    def _read_back(
        self,
        subject: ErasureSubject,
        contact_ids: Sequence[str],
        deals: Mapping[str, Any],
        matcher: PiiMatcher,
    ) -> tuple[bool, str]:
        lookups = [(i, None) for i in contact_ids] + [
            (v, p) for v, p in self._lookups(subject) if not (p is None and v in contact_ids)
        ]
        still = [hit[0] for value, prop in lookups for hit in [self._get_contact(value, prop)] if hit]
        notes = [
            f"GET contact by id/{self.contact_id_property}/email: {len(lookups)} asked, {len(still)} found"
        ]
        named: list[str] = []
        path = self.client.paths.objects("deals")
        for deal_id in sorted(deals):
            reply = self.client.request(
                "GET", f"{path}/{deal_id}", params={"properties": "dealname"}, accept=(404,)
            )
            props = (reply.body or {}).get("properties") or {} if isinstance(reply.body, dict) else {}
            if matcher.found_in(str(props.get("dealname") or "")):
                named.append(deal_id)
        if deals:
            notes.append(f"deal names: {len(deals)} checked, {len(named)} with PII")
        if still:
            notes.append(f"contacts still found: {', '.join(sorted(set(still))[:5])}")
        if named:
            notes.append(f"deals still named with PII: {', '.join(named[:5])}")
        return not still and not named, "; ".join(notes)
