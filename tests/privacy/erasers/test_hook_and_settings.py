"""erasure.yaml validation, and erasers_for() building every eraser from Airflow connections
(AIRFLOW_CONN_* variables) that erase one donor from every emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from donor_sync.errors import ConfigError
from donor_sync.hooks.privacy_erasers import erasers_for
from donor_sync.privacy.contracts import DestinationEraser
from donor_sync.privacy.erasers.settings import load_erasure_settings
from sandbox.common.runner import Sandbox
from tests.integration.crm import use_connections
from tests.privacy.erasers.conftest import DONOR, pii_found
from tests.privacy.erasers.connections import OUTBOUND_SECRET


def test_the_shipped_settings_load() -> None:
    settings = load_erasure_settings()

    # donor.erased reaches event subscribers through the event pipeline; the direct POST is off
    assert settings.enabled_systems() == ["salesforce", "hubspot", "mailchimp", "braze"]
    assert settings.destinations.mailchimp.method == "delete_permanent"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param(
            "destinations: {salesforce: {method: purge}}", "destinations.salesforce.method", id="method"
        ),
        pytest.param(
            "destinations: {hubspot: {deal_name: '{dealname}'}}",
            "destinations.hubspot.deal_name",
            id="template",
        ),
        pytest.param(
            "destinations: {salesforce: {contact_clear: [LastName]}}",
            "destinations.salesforce.contact_clear",
            id="required-field",
        ),
        pytest.param("destinations: {braze: {by_mail: true}}", "destinations.braze.by_mail", id="typo"),
    ],
)
def test_bad_settings_name_the_file_line_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "erasure.yaml"
    path.write_text(f"version: 1\n{text}\n")

    with pytest.raises(ConfigError) as caught:
        load_erasure_settings(path)

    assert str(path) in str(caught.value)
    assert field in str(caught.value)
    assert "line 2" in str(caught.value)


def test_erasers_for_builds_each_system_from_its_connection_and_erases_everywhere(
    sandbox: Sandbox, connections: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert connections["outbound_receiver"]["password"] == OUTBOUND_SECRET
    use_connections(monkeypatch, connections)
    emulators: Any = {name: sandbox[name].emulator for name in ("hubspot", "mailchimp", "braze")}
    emulators["hubspot"].seed("contacts", [{"email": DONOR.email, "firstname": DONOR.first}])
    emulators["mailchimp"].seed(
        "members", [{"email_address": DONOR.email, "merge_fields": {"FNAME": DONOR.first}}]
    )
    emulators["braze"].seed("users", [{"external_id": DONOR.donor_id, "first_name": DONOR.first}])

    shipped = load_erasure_settings()
    direct = shipped.destinations.outbound_webhooks.model_copy(update={"enabled": True})
    settings = shipped.model_copy(
        update={"destinations": shipped.destinations.model_copy(update={"outbound_webhooks": direct})}
    )
    erasers = erasers_for(settings=settings)

    assert [e.system for e in erasers] == ["salesforce", "hubspot", "mailchimp", "braze", "outbound_webhooks"]
    assert all(isinstance(e, DestinationEraser) for e in erasers)
    receipts = {e.system: e.erase(DONOR.subject()) for e in erasers}
    assert {s: (r.status, r.verified) for s, r in receipts.items()} == dict.fromkeys(receipts, ("done", True))
    assert receipts["salesforce"].action == "not_held"
    assert receipts["hubspot"].action == "gdpr_deleted"
    assert receipts["mailchimp"].action == "permanently_deleted"
    assert receipts["braze"].action == "user_deleted"
    assert receipts["outbound_webhooks"].action == "notified"
    for name in ("hubspot", "mailchimp", "braze"):
        state = emulators[name].snapshot()
        state.pop("gdpr_blocklist", None)
        assert pii_found(state) == [], name
    assert [d["hook"] for d in sandbox["receiver"].emulator.deliveries] == ["donor-erased"]  # type: ignore[attr-defined]


def test_erasers_for_picks_systems_and_refuses_unknown_ones(
    sandbox: Sandbox, connections: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connections(monkeypatch, connections)

    assert [e.system for e in erasers_for(["braze", "mailchimp"])] == ["mailchimp", "braze"]
    with pytest.raises(ValueError, match="no eraser for staging"):
        erasers_for(["staging"])
