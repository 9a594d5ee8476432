"""Braze REST API: the HTTP client (Bearer key, retries honouring the rate-limit reset, errors).

Issue 7 needs only user deletion and the ``/users/export/ids`` read-back (erasure); issue 8
builds the full connector (``/users/track``, subscription groups, triggers) on :class:`BrazeClient`.
"""

from __future__ import annotations

from donor_sync.delivery.connectors.braze.client import (
    DELETE_KINDS,
    BrazeClient,
    Reply,
    client_from_connection,
)
from donor_sync.delivery.connectors.retrying import default_retry

__all__ = ["DELETE_KINDS", "BrazeClient", "Reply", "client_from_connection", "default_retry"]
