"""Read HubSpot communication-subscription statuses (v4 batch read), for consent pull-back.

``POST /communication-preferences/v4/statuses/batch/read?channel=EMAIL`` with up to 100 emails
per call returns every subscription type's status of each: ``SUBSCRIBED``, ``UNSUBSCRIBED`` or
``NOT_SPECIFIED``, with the legal basis and when it was set. A portal-wide unsubscribe shows as
``UNSUBSCRIBED`` on every type. Emails are sent to HubSpot (which keys statuses by them) and never
logged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from donor_sync.delivery.connectors.hubspot.client import HubSpotClient

__all__ = ["BATCH", "STATUS_PATH", "SubscriptionStatus", "read_email_statuses"]

STATUS_PATH = "/communication-preferences/v4/statuses/batch/read"
BATCH = 100


@dataclass(frozen=True)
class SubscriptionStatus:
    """One email's status for one subscription type (``email`` is PII: memory only)."""

    email: str
    subscription_id: str
    status: str
    legal_basis: str | None
    timestamp: str | None


def read_email_statuses(
    client: HubSpotClient, emails: Sequence[str], *, batch: int = BATCH
) -> Iterator[SubscriptionStatus]:
    """Yield the status of every subscription type for each of ``emails`` (100 per request).

    :raises DestinationUnavailableError: HubSpot refused or failed (from the client).
    """
    unique = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
    for start in range(0, len(unique), batch):
        chunk = unique[start : start + batch]
        reply = client.request("POST", STATUS_PATH, json={"inputs": chunk}, params={"channel": "EMAIL"})
        body: Any = reply.body or {}
        for item in body.get("results") or []:
            if not isinstance(item, dict):
                continue
            yield SubscriptionStatus(
                email=str(item.get("subscriberIdString") or "").strip().lower(),
                subscription_id=str(item.get("subscriptionId")),
                status=str(item.get("status") or ""),
                legal_basis=item.get("legalBasis"),
                timestamp=item.get("timestamp"),
            )
