"""Erase a donor from Braze: ``/users/delete`` of every profile that identifies them.

1. Find profiles with ``/users/export/ids``: by external id (every donor id, merged ones
   included), and by email (``by_email``) and phone (``by_phone``) for profiles Braze holds
   without an external id (email-only captures, SDK sign-ups).
2. ``POST /users/delete``: ``external_ids`` for the donor's own ids, ``braze_ids`` for every other
   profile found (one identifier kind per request, 50 per call). Deletion is irreversible.
3. Read back with ``/users/export/ids`` again: no profile left. Braze deletes asynchronously, so
   a profile still listed makes the receipt unverified (done, ``verified`` false): the request
   stays open and the next run asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.contracts import DeliveryError
from donor_sync.privacy.contracts import ErasureSubject, Receipt, RemoteRef
from donor_sync.privacy.erasers._common import failed_receipt
from donor_sync.privacy.erasers.settings import BrazeErasure

log = logging.getLogger(__name__)

SYSTEM = "braze"


class BrazeEraser:
    """Delete a donor's Braze profiles; see the module docstring."""

    system = SYSTEM

    def __init__(self, client: BrazeClient, settings: BrazeErasure) -> None:
        self.client = client
        self.settings = settings

    def _profiles(self, subject: ErasureSubject) -> dict[str, dict[str, Any]]:
        """Return the profiles Braze holds for the subject, by braze_id."""
        found = self.client.export_users(external_ids=list(subject.donor_ids))
        if self.settings.by_email:
            for email in subject.emails:
                found += self.client.export_users(email_address=email)
        if self.settings.by_phone:
            for phone in subject.phones:
                found += self.client.export_users(phone=phone)
        return {str(u.get("braze_id")): u for u in found if u.get("braze_id")}

    def erase(self, subject: ErasureSubject) -> Receipt:
        """Delete the subject's profiles and read back; never raises for vendor refusals."""
        step = "find"
        refs: list[RemoteRef] = []
        try:
            profiles = self._profiles(subject)
            donor_ids = set(subject.donor_ids)
            by_external = sorted(
                {str(u["external_id"]) for u in profiles.values() if u.get("external_id") in donor_ids}
            )
            by_braze_id = sorted(b for b, u in profiles.items() if u.get("external_id") not in donor_ids)
            refs = [RemoteRef("user", b) for b in sorted(profiles)]
            step = "users-delete"
            accepted = 0
            if by_external:
                accepted += self.client.users_delete("external_ids", by_external)
            if by_braze_id:
                accepted += self.client.users_delete("braze_ids", by_braze_id)
            step = "read-back"
            left = self._profiles(subject)
        except DeliveryError as exc:
            log.warning("Braze erasure for request %s failed at %s", subject.request_id, step)
            return failed_receipt(SYSTEM, "user_deleted", exc, refs, step)
        return Receipt(
            system=SYSTEM,
            action="user_deleted" if profiles else "not_held",
            status="done",
            remote_refs=tuple(refs),
            counts={
                "profiles_found": len(profiles),
                "deleted_by_external_id": len(by_external),
                "deleted_by_braze_id": len(by_braze_id),
                "accepted": accepted,
            },
            verified=not left,
            verification=self._note(subject, left),
        )

    def _note(self, subject: ErasureSubject, left: dict[str, dict[str, Any]]) -> str:
        kinds: Sequence[str] = [
            "external_id",
            *(["email"] if self.settings.by_email else []),
            *(["phone"] if self.settings.by_phone else []),
        ]
        note = f"/users/export/ids by {'/'.join(kinds)}: {len(left)} profiles found"
        if left:
            note += f" (braze_id {', '.join(sorted(left)[:5])}; Braze deletes asynchronously)"
        return note
