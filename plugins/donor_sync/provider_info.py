"""donor-sync as an Airflow provider: the custom connection types and their forms.

Airflow registers a connection type only from an installed package's provider info: the
``apache_airflow_provider`` entry point (pyproject.toml) names :func:`get_provider_info`, and
``ProvidersManager`` validates what it returns against ``provider_info.schema.json`` and checks
that ``package-name`` equals the installed distribution's name. Plugins cannot add connection
types. Since Airflow 3.2 the form of each type is declared here too (``conn-fields`` and
``ui-field-behaviour``), so the UI builds it without importing the hook.

This module must not import Airflow, nor anything that does (the hook modules import
``airflow.sdk``): Airflow calls :func:`get_provider_info` while it is still loading its own
configuration, and such an import would be circular. So the declarations live here, as plain
data, and the hooks' own copies (``CONNECTION_TYPE_INFO``, ``connection_type_info()``) are
checked against them by tests/unit/test_provider_info.py.
"""

from __future__ import annotations

import copy
from importlib import metadata
from typing import Any

PACKAGE_NAME = "donor-sync"


def _field(label: str, description: str, kind: str = "string", **schema: Any) -> dict[str, Any]:
    """Return one ``conn-fields`` entry: an optional value of JSON type ``kind``."""
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], **schema}}


#: ``salesforce_npsp``: login = integration username (JWT ``sub``), password = consumer secret.
SALESFORCE_NPSP: dict[str, Any] = {
    "connection-type": "salesforce_npsp",
    "hook-class-name": "donor_sync.hooks.salesforce_npsp.SalesforceNpspHook",
    "hook-name": "Salesforce NPSP (donor-sync)",
    "conn-fields": {
        "consumer_key": _field("Consumer key", "The connected app's consumer key (client id)."),
        "private_key": _field(
            "Private key",
            "JWT flow: PEM of the key whose certificate the connected app holds, or a file path.",
            format="password",
        ),
        "auth_flow": _field(
            "Auth flow", "jwt (JWT bearer) or client_credentials.", enum=["jwt", "client_credentials", None]
        ),
        "login_url": _field(
            "Login URL / My Domain",
            "Token endpoint host: https://login.salesforce.com, https://test.salesforce.com or "
            "https://<domain>.my.salesforce.com (client credentials need My Domain).",
        ),
        "instance_url": _field("Instance URL", "The org's URL (the token response's instance_url wins)."),
        "api_version": _field("API version", "Pinned REST API version, e.g. 62.0.", default="62.0"),
        "bulk_threshold": _field(
            "Bulk threshold", "Due records above which pushes use Bulk API 2.0 jobs.", "integer", default=2000
        ),
        "quota_reserve": _field(
            "Quota reserve",
            "Share of the daily API allocation kept for people and other integrations.",
            "number",
            default=0.1,
        ),
        "ca_bundle": _field("CA bundle", "Path of a CA bundle to trust (local emulators)."),
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "extra", "host"],
        "relabeling": {"login": "Username", "password": "Client secret"},
        "placeholders": {
            "login": "integration@example.org",
            "password": "client-credentials flow only",
            "login_url": "https://login.salesforce.com",
            "api_version": "62.0",
        },
    },
}

#: ``hubspot``: host = API base URL, password = private-app access token (OAuth: refresh token).
HUBSPOT: dict[str, Any] = {
    "connection-type": "hubspot",
    "hook-class-name": "donor_sync.hooks.hubspot.HubSpotHook",
    "hook-name": "HubSpot (donor-sync)",
    "conn-fields": {
        "api_version": _field(
            "API version",
            "v3 (/crm/v3, associations /crm/v4) or a dated version such as 2026-03 (/crm/objects/2026-03).",
            default="v3",
        ),
        "contact_id_property": _field(
            "Contact id property",
            "Unique contact property upserts are keyed on: donor_sync_id (created if missing) or email.",
            default="donor_sync_id",
        ),
        "deal_id_property": _field(
            "Deal id property", "Unique deal property holding the gift key.", default="donor_sync_gift_key"
        ),
        "daily_quota_reserve": _field(
            "Daily quota reserve",
            "Share of the daily API limit kept for priority work, e.g. 0.1 or 10%.",
            default="0.1",
        ),
        "rate_limit_max": _field(
            "Requests per interval (override)",
            "Leave empty to use HubSpot's reported limit; set lower when other apps share it.",
            "integer",
        ),
        "rate_limit_interval_ms": _field(
            "Interval in ms (override)", "Leave empty to use HubSpot's reported interval (10000).", "integer"
        ),
        "ca_bundle": _field("CA bundle", "Path of a CA bundle to trust (the sandbox's); empty: system."),
        "client_secret": _field(
            "OAuth client secret",
            "OAuth apps only: login = client id, password = refresh token.",
            format="password",
        ),
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {
            "host": "API base URL",
            "password": "Access token",
            "login": "OAuth client id (OAuth apps only)",
        },
        "placeholders": {"host": "https://api.hubapi.com", "password": "pat-na1-..."},
    },
}


def _version() -> str:
    try:
        return metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "0.0.0"


def connection_types() -> list[dict[str, Any]]:
    """Return the ``connection-types`` entries (fresh copies: Airflow may keep and change them)."""
    return [copy.deepcopy(SALESFORCE_NPSP), copy.deepcopy(HUBSPOT)]


def get_provider_info() -> dict[str, Any]:
    """Return the provider info Airflow reads through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "donor-sync",
        "description": (
            "Connection types of the donor-sync DAG repository: Salesforce NPSP (JWT bearer or client "
            "credentials) and HubSpot (private app or OAuth), each with its sync settings."
        ),
        "versions": [_version()],
        "connection-types": connection_types(),
    }
