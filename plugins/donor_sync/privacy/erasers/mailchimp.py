"""Erase a donor from Mailchimp: every email of the donor, in every configured audience.

``delete_permanent`` (``POST /lists/{id}/members/{hash}/actions/delete-permanent``) forgets the
member for good: Mailchimp then refuses to re-import the email ("Forgotten Email Not
Subscribed"), so no later sync can bring it back. ``archive`` (``DELETE``) only hides the member
and keeps its data; it is offered for audiences under another legal hold, and is not an erasure.

Read back: ``GET /lists/{id}/members/{hash}`` → 404 (archive: status ``archived``).
Receipts name the audience and Mailchimp's ``contact_id`` (or ``unique_email_id``), never the
email or its MD5 (which is the email in thin disguise).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient, subscriber_hash
from donor_sync.delivery.contracts import DeliveryError
from donor_sync.errors import ConfigError
from donor_sync.privacy.contracts import ErasureSubject, Receipt, RemoteRef
from donor_sync.privacy.erasers._common import failed_receipt
from donor_sync.privacy.erasers.settings import MailchimpErasure

log = logging.getLogger(__name__)

SYSTEM = "mailchimp"


class MailchimpEraser:
    """Delete (permanently) or archive the donor's members; see the module docstring.

    :param default_list_id: the connection's ``list_id``, used when the settings name no audience.
    """

    system = SYSTEM

    def __init__(
        self, client: MailchimpClient, settings: MailchimpErasure, *, default_list_id: str | None = None
    ) -> None:
        self.client = client
        self.settings = settings
        self.default_list_id = default_list_id

    def _lists(self) -> list[str]:
        if self.settings.all_lists:
            return self.client.list_ids()
        if self.settings.list_ids:
            return list(self.settings.list_ids)
        if self.default_list_id:
            return [self.default_list_id]
        raise ConfigError(
            "erasure.yaml: destinations.mailchimp.list_ids is empty and the mailchimp connection has no "
            "list_id extra: name the audiences to erase from (or set all_lists: true)"
        )

    def erase(self, subject: ErasureSubject) -> Receipt:
        """Erase the subject's members and read back; never raises for vendor refusals."""
        permanent = self.settings.method == "delete_permanent"
        action = "permanently_deleted" if permanent else "archived"
        step = "find"
        refs: list[RemoteRef] = []
        acted = 0
        try:
            lists = self._lists()
            hashes = sorted({subscriber_hash(e) for e in subject.emails})
            targets: list[tuple[str, str]] = []
            for list_id in lists:
                for member_hash in hashes:
                    member = self.client.get_member(list_id, member_hash)
                    if member is None or (not permanent and member.get("status") == "archived"):
                        continue
                    vendor_id = str(member.get("contact_id") or member.get("unique_email_id") or "member")
                    refs.append(RemoteRef("member", f"{list_id}:{vendor_id}"))
                    targets.append((list_id, member_hash))
            step = "delete-permanent" if permanent else "archive"
            for list_id, member_hash in targets:
                done = (
                    self.client.delete_member_permanently(list_id, member_hash)
                    if permanent
                    else self.client.archive_member(list_id, member_hash)
                )
                acted += int(done)
            step = "read-back"
            verified, verification = self._read_back(lists, hashes, permanent)
        except (DeliveryError, ConfigError, ValueError) as exc:
            log.warning("Mailchimp erasure for request %s failed at %s", subject.request_id, step)
            return failed_receipt(SYSTEM, action, exc, refs, step)
        return Receipt(
            system=SYSTEM,
            action=action if targets else "not_held",
            status="done",
            remote_refs=tuple(refs),
            counts={"audiences": len(lists), "emails": len(hashes), "members": acted},
            verified=verified,
            verification=verification,
        )

    def _read_back(self, lists: Sequence[str], hashes: Sequence[str], permanent: bool) -> tuple[bool, str]:
        left: list[str] = []
        for list_id in lists:
            for member_hash in hashes:
                member = self.client.get_member(list_id, member_hash)
                if member is not None and (permanent or member.get("status") != "archived"):
                    left.append(list_id)
        asked = len(lists) * len(hashes)
        what = "404" if permanent else "archived"
        note = (
            f"GET member by subscriber hash: {asked} asked in {len(lists)} audiences, "
            f"{asked - len(left)} {what}"
        )
        if left:
            note += f"; still held in audiences {', '.join(sorted(set(left)))}"
        return not left, note
