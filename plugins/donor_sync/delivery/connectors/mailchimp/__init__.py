"""Mailchimp Marketing API 3.0: the HTTP client (auth, data centre, retries, error taxonomy).

Issue 7 needs only member reads and deletions (erasure); issue 8 builds the full connector
(batch subscribe, /batches, tags, journeys) on :class:`MailchimpClient`.
"""

from __future__ import annotations

from donor_sync.delivery.connectors.mailchimp.client import (
    MailchimpClient,
    Reply,
    base_url_for,
    client_from_connection,
    data_centre,
    subscriber_hash,
)
from donor_sync.delivery.connectors.retrying import default_retry

__all__ = [
    "MailchimpClient",
    "Reply",
    "base_url_for",
    "client_from_connection",
    "data_centre",
    "default_retry",
    "subscriber_hash",
]
