"""Types shared by the erasure pipeline and the destination erasers.

:mod:`donor_sync.privacy.erasure` finds everything held about a donor, asks every configured
destination to erase it through a :class:`DestinationEraser`, stores each :class:`Receipt` in
``sync.privacy_receipts``, then purges raw, staging, core and sync and writes the tombstones.

The :class:`ErasureSubject` holds the donor's identifiers in memory only, for as long as the
cascade needs them (a Mailchimp member is addressed by the MD5 of its email); it is never logged,
stored or passed through Airflow (XCom carries request ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from uuid import UUID

ReceiptStatus = Literal["done", "failed"]


@dataclass(frozen=True)
class RemoteRef:
    """A record a destination holds for the donor (``core.donor_sources`` destination rows)."""

    entity: str  # contact, opportunity, member, user...
    remote_id: str

    def as_json(self) -> dict[str, str]:
        """Return the receipt form (``{"entity", "id"}``)."""
        return {"entity": self.entity, "id": self.remote_id}


@dataclass(frozen=True)
class ErasureSubject:
    """Everything a destination needs to find the donor; PII in memory only.

    :param request_id: the privacy request.
    :param donor_ids: the surviving donor and every donor merged into it (each may be an external
        id somewhere: ``donor_sync_id`` in HubSpot, ``Donor_Sync_Id__c`` in Salesforce, Braze
        ``external_id``).
    :param emails: every email the donor has or had, normalized (lower case).
    :param phones: every phone in E.164.
    :param remote_ids: per destination, the records core knows it holds.
    """

    request_id: UUID
    donor_ids: tuple[str, ...]
    emails: tuple[str, ...] = field(default=(), repr=False)
    phones: tuple[str, ...] = field(default=(), repr=False)
    remote_ids: Mapping[str, tuple[RemoteRef, ...]] = field(default_factory=dict)

    def __repr__(self) -> str:  # never show identifiers
        return f"ErasureSubject(request_id={self.request_id}, donors={len(self.donor_ids)})"


@dataclass(frozen=True)
class Receipt:
    """What one system did for a request (``sync.privacy_receipts``)."""

    system: str
    #: deleted, anonymized, gdpr_deleted, permanently_deleted, user_deleted, notified, purged, not_held
    action: str
    status: ReceiptStatus
    remote_refs: tuple[RemoteRef, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)
    verified: bool = False
    verification: str | None = None  # what the read-back asked and got, ids only
    error: str | None = None  # ids and status codes only

    def as_row(self) -> dict[str, Any]:
        """Return the columns of its ``sync.privacy_receipts`` row (without request id)."""
        return {
            "system": self.system,
            "action": self.action,
            "status": self.status,
            "remote_refs": [r.as_json() for r in self.remote_refs],
            "counts": dict(self.counts),
            "verified": self.verified,
            "verification": self.verification,
            "error": self.error,
        }


@runtime_checkable
class DestinationEraser(Protocol):
    """Erases a donor from one system and reads back to prove it.

    ``erase`` must be idempotent: a request retried after a crash finds nothing left and still
    returns a done, verified receipt (action ``not_held`` when the system never had the donor).
    It raises nothing for vendor refusals: a failed receipt says what happened, and the request
    is retried by the next run.
    """

    system: str

    def erase(self, subject: ErasureSubject) -> Receipt:
        """Erase the subject's records here; return the receipt with the read-back check."""
        ...
