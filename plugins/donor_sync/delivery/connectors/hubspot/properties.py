"""Property definitions: the raw ``describe`` for the mapping's cache, and the unique id properties.

donor-sync upserts contacts and deals on custom ``hasUniqueValue`` properties
(``donor_sync_id``, ``donor_sync_gift_key``); :func:`ensure_unique_properties` creates them in a
new account and refuses an existing one that is not unique (HubSpot cannot upsert on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from donor_sync.delivery.connectors.hubspot.client import HubSpotClient
from donor_sync.delivery.contracts import DeliveryError
from donor_sync.errors import ConfigError

_GROUPS = {"contacts": "contactinformation", "deals": "dealinformation", "companies": "companyinformation"}


def describe(client: HubSpotClient, object_type: str) -> dict[str, Any]:
    """Return HubSpot's property definitions of ``object_type`` as it sends them."""
    body = client.get(client.paths.properties(object_type))
    return body if isinstance(body, dict) else {"results": body or []}


def unique_property(object_type: str, name: str) -> dict[str, Any]:
    """Return the definition of a unique text property holding donor-sync's key."""
    return {
        "name": name,
        "label": name.replace("_", " ").capitalize(),
        "description": "Key donor-sync upserts on (set by the integration; do not edit).",
        "type": "string",
        "fieldType": "text",
        "groupName": _GROUPS.get(object_type, f"{object_type}information"),
        "hasUniqueValue": True,
        "formField": False,
    }


def ensure_unique_properties(client: HubSpotClient, object_type: str, names: Sequence[str]) -> list[str]:
    """Create the unique properties ``names`` of ``object_type`` that are missing; return those created.

    :raises ConfigError: a property of that name exists without ``hasUniqueValue``.
    """
    existing = {str(p.get("name")): p for p in describe(client, object_type).get("results") or []}
    created: list[str] = []
    for name in names:
        current = existing.get(name)
        if current is None:
            try:
                client.post(client.paths.properties(object_type), unique_property(object_type, name))
                created.append(name)
                continue
            except DeliveryError as exc:
                # Another worker created it between our read and our write (409): read it again.
                if exc.http_status != 409:
                    raise
                current = {
                    str(p.get("name")): p for p in describe(client, object_type).get("results") or []
                }.get(name)
                if current is None:
                    raise
        if not current.get("hasUniqueValue"):
            raise ConfigError(
                f"HubSpot {object_type} property {name!r} exists but is not unique (hasUniqueValue); "
                "HubSpot cannot upsert on it. Pick another id property on the connection."
            )
    return created
