"""HubSpot CRM destination: batch upserts of contacts and deals, associations, merges.

``HubSpotConnector`` implements ``delivery.contracts.Connector``; ``HubSpotClient`` makes the
calls (rate limiting, retries, quota, error classes). See docs/connectors/hubspot.md.
"""

from __future__ import annotations

from donor_sync.delivery.connectors.hubspot.auth import OAuthRefreshToken, StaticToken
from donor_sync.delivery.connectors.hubspot.client import ApiUsage, HubSpotClient
from donor_sync.delivery.connectors.hubspot.connector import HubSpotConnector, build_client
from donor_sync.delivery.connectors.hubspot.deprecation import DeprecationNotice
from donor_sync.delivery.connectors.hubspot.settings import (
    AssociationType,
    HubSpotSettings,
    settings_from_connection,
)

__all__ = [
    "ApiUsage",
    "AssociationType",
    "DeprecationNotice",
    "HubSpotClient",
    "HubSpotConnector",
    "HubSpotSettings",
    "OAuthRefreshToken",
    "StaticToken",
    "build_client",
    "settings_from_connection",
]
