"""Describe, unique-property setup and the changed-since search used by nightly reconciliation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from donor_sync.delivery.connectors.hubspot import HubSpotConnector
from donor_sync.delivery.contracts import Operation
from donor_sync.errors import ConfigError
from tests.delivery.connectors.hubspot.conftest import Admin, contact


def test_ensure_properties_creates_the_unique_keys_once(
    make_connector: Callable[..., HubSpotConnector], admin: Admin
) -> None:
    fresh = make_connector()
    names = {p["name"] for p in fresh.describe("contacts")["results"]}
    assert "donor_sync_id" not in names
    assert fresh.ensure_properties() == {"contacts": ["donor_sync_id"], "deals": ["donor_sync_gift_key"]}
    assert fresh.ensure_properties() == {"contacts": [], "deals": []}
    described = {p["name"]: p for p in fresh.describe("contact")["results"]}
    assert described["donor_sync_id"]["hasUniqueValue"] is True
    assert {p["name"]: p for p in fresh.describe("deals")["results"]}["donor_sync_gift_key"]["hasUniqueValue"]


def test_two_workers_creating_the_keys_at_once_both_go_on(
    make_connector: Callable[..., HubSpotConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other worker creates the property between this one's read and its create (409)."""
    from donor_sync.delivery.connectors.hubspot import properties

    first, second = make_connector(), make_connector()
    real = properties.describe
    stale = {"results": []}
    calls: list[str] = []

    def racing_describe(client: object, object_type: str) -> dict[str, object]:
        calls.append(object_type)
        if len(calls) == 1:  # this worker's first read sees nothing ... and then the other one wins
            first.ensure_properties()
            return stale
        return real(client, object_type)  # type: ignore[arg-type]

    monkeypatch.setattr(properties, "describe", racing_describe)
    assert second.ensure_properties() == {"contacts": [], "deals": []}


def test_ensure_properties_refuses_a_key_that_is_not_unique(
    make_connector: Callable[..., HubSpotConnector], admin: Admin
) -> None:
    admin.api("POST", "/crm/v3/properties/contacts", {"name": "legacy_id", "type": "string"})
    with pytest.raises(ConfigError, match="not unique"):
        make_connector(contact_id_property="legacy_id").ensure_properties()


def test_changed_since_pages_past_the_result_cap_without_gaps_or_repeats(
    connector: HubSpotConnector, admin: Admin
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    records = [contact(i, f"d{i}", f"p{i}@example.org", firstname=f"F{i}") for i in range(1, 12)]
    landed = connector.push("contact", Operation.UPSERT, records)
    admin.settings(search_result_cap=4, search_max_limit=3)
    # The connector does not know the emulator's cap of 4: it finds out when paging stops short.
    found = list(connector.changed_since("contacts", ["firstname"], before, page_size=3))
    assert sorted(r["id"] for r in found) == sorted(str(r.remote_id) for r in landed)
    assert {r["properties"]["firstname"] for r in found} == {f"F{i}" for i in range(1, 12)}
    searches = [r for r in admin.request_log() if r["path"].endswith("/search")]
    assert all(r["status"] == 200 for r in searches)
    assert len(searches) >= 4
    assert (
        list(
            connector.changed_since(
                "contact", ["firstname"], datetime.now(UTC) + timedelta(hours=1), page_size=3
            )
        )
        == []
    )
