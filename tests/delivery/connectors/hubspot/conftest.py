"""The HubSpot emulator (one per module, reset per test) and connectors pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import tenacity

from donor_sync.delivery.connectors.hubspot import HubSpotConnector, HubSpotSettings, StaticToken
from donor_sync.delivery.connectors.hubspot.client import default_retry
from donor_sync.delivery.connectors.hubspot.connector import build_client
from donor_sync.delivery.contracts import Operation, OutboundRecord
from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.hubspot import HubSpotEmulator

TOKEN = "pat-na1-sandbox"


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    # A high limit by default so tests are quick; rate-limit tests lower it.
    return start_emulators(HubSpotEmulator({"rate_limit_max": 10_000}))


class Admin:
    """The emulator's admin API: settings, faults, state and the request log."""

    def __init__(self, running: Running, session: requests.Session) -> None:
        self.running = running
        self.session = session

    def settings(self, **changes: Any) -> None:
        response = self.session.patch(f"{self.running.admin_url}/settings", json=changes, timeout=5)
        assert response.status_code == 200, response.text

    def faults(self, *rules: dict[str, Any]) -> None:
        response = self.session.put(f"{self.running.admin_url}/faults", json=list(rules), timeout=5)
        assert response.status_code == 200, response.text

    def state(self) -> dict[str, Any]:
        return dict(self.session.get(f"{self.running.admin_url}/state", timeout=5).json())

    def request_log(self) -> list[dict[str, Any]]:
        return list(self.session.get(f"{self.running.admin_url}/requests", timeout=5).json())

    def api(self, method: str, path: str, body: Any = None) -> requests.Response:
        """Call the vendor API directly (to check what landed)."""
        return self.session.request(
            method,
            f"{self.running.base_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )

    def contacts(self) -> list[dict[str, Any]]:
        return list(self.state()["objects"]["contacts"]["records"])


@pytest.fixture
def hubspot(box: Sandbox) -> Iterator[Running]:
    running = box["hubspot"]
    running.emulator.reset()
    yield running
    running.emulator.reset()


@pytest.fixture
def admin(hubspot: Running, https: requests.Session) -> Admin:
    return Admin(hubspot, https)


def fast_retry() -> tenacity.Retrying:
    """The production policy without the waits (attempts unchanged)."""
    return default_retry(wait=tenacity.wait_none())


@pytest.fixture
def make_connector(hubspot: Running, sandbox_tls: TlsFiles) -> Callable[..., HubSpotConnector]:
    """Build a connector for the emulator; keyword arguments override :class:`HubSpotSettings`."""

    def make(*, token: str = TOKEN, **overrides: Any) -> HubSpotConnector:
        on_deprecation = overrides.pop("on_deprecation", None)
        settings = HubSpotSettings(base_url=hubspot.base_url, verify=str(sandbox_tls.ca_cert), **overrides)
        tokens = StaticToken(token)
        client = build_client(settings, tokens, retry=fast_retry, on_deprecation=on_deprecation)
        return HubSpotConnector(settings, tokens, client=client)

    return make


@pytest.fixture
def connector(make_connector: Callable[..., HubSpotConnector]) -> HubSpotConnector:
    """A connector whose account has the unique id properties (created through the connector)."""
    made = make_connector()
    made.ensure_properties()
    return made


def contact(outbox_id: int, donor_id: str, email: str | None = None, **props: Any) -> OutboundRecord:
    """An outbox contact record keyed by donor id."""
    payload = {**({"email": email} if email else {}), **props}
    return OutboundRecord(outbox_id, "contact", donor_id, Operation.UPSERT, payload, donor_id=donor_id)


def deal(outbox_id: int, gift_key: str, **props: Any) -> OutboundRecord:
    """An outbox deal record keyed by gift key."""
    return OutboundRecord(outbox_id, "deal", gift_key, Operation.UPSERT, {"dealname": gift_key, **props})
