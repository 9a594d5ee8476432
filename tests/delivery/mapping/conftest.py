"""The Salesforce and HubSpot emulators, and plain-requests fetchers of their metadata documents."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
import requests

from sandbox.common.runner import Sandbox
from sandbox.emulators.hubspot import HubSpotEmulator
from sandbox.emulators.salesforce import SalesforceEmulator

HUBSPOT_TOKEN = "pat-na1-sandbox"
Fetch = Callable[[str], Mapping[str, Any] | None]


@pytest.fixture(scope="module")
def crm(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    """Both CRMs; HubSpot with the unique properties the mapping keys on (the connector creates them)."""
    unique = {"contacts": ["donor_sync_id"], "deals": ["donor_sync_gift_key"]}
    return start_emulators(SalesforceEmulator(), HubSpotEmulator({"unique_properties": unique}))


@pytest.fixture
def salesforce_fetch(crm: Sandbox, https: requests.Session) -> Fetch:
    """GET .../sobjects/{name}/describe with a client-credentials token (None for an unknown object)."""
    base = crm["salesforce"].base_url
    token = https.post(
        f"{base}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "donor-sync-consumer-key",
            "client_secret": "donor-sync-consumer-secret",
        },
        timeout=5,
    ).json()["access_token"]

    def fetch(name: str) -> Mapping[str, Any] | None:
        response = https.get(
            f"{base}/services/data/v62.0/sobjects/{name}/describe",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    return fetch


@pytest.fixture
def hubspot_fetch(crm: Sandbox, https: requests.Session) -> Fetch:
    """GET /crm/v3/properties/{objectType} with the private-app token (None for an unknown type)."""
    base = crm["hubspot"].base_url

    def fetch(name: str) -> Mapping[str, Any] | None:
        response = https.get(
            f"{base}/crm/v3/properties/{name}",
            headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
            timeout=5,
        )
        if response.status_code in (400, 404):
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    return fetch
