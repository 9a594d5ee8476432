"""Airflow connections to the Salesforce and HubSpot emulators of a test sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.common.runner import Sandbox
from sandbox.emulators.salesforce.emulator import SalesforceEmulator


def crm_connections(box: Sandbox) -> dict[str, dict[str, Any]]:
    """The salesforce_npsp (client-credentials flow) and hubspot connections of ``box``."""
    ca = str(box.tls.ca_cert)
    salesforce = box["salesforce"]
    settings = SalesforceEmulator.default_settings
    return {
        "salesforce_npsp": {
            "conn_type": "salesforce_npsp",
            "host": salesforce.base_url,
            "password": settings["client_secret"],
            "extra": {
                "auth_flow": "client_credentials",
                "consumer_key": settings["client_id"],
                "login_url": salesforce.base_url,
                "ca_bundle": ca,
            },
        },
        "hubspot": {
            "conn_type": "hubspot",
            "host": box["hubspot"].base_url,
            "password": "pat-na1-sandbox",
            "extra": {"ca_bundle": ca},
        },
    }


def use_connections(monkeypatch: pytest.MonkeyPatch, connections: dict[str, dict[str, Any]]) -> None:
    """Expose connections to Airflow as ``AIRFLOW_CONN_*`` variables."""
    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
