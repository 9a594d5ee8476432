"""The Braze emulator (one per module, reset per test), clients and connectors pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import tenacity

from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.connectors.braze.connector import BrazeConnector, BrazeSettings
from donor_sync.delivery.connectors.retrying import default_retry
from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.braze import DEFAULT_API_KEY, EMAIL_GROUP, SMS_GROUP, BrazeEmulator

__all__ = ["EMAIL_GROUP", "SMS_GROUP", "Admin"]


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(BrazeEmulator())


class Admin:
    """The emulator's admin API and its state."""

    def __init__(self, running: Running, session: requests.Session) -> None:
        self.running = running
        self.session = session

    def settings(self, **changes: Any) -> None:
        response = self.session.patch(f"{self.running.admin_url}/settings", json=changes, timeout=5)
        assert response.status_code == 200, response.text

    def request_log(self) -> list[dict[str, Any]]:
        return list(self.session.get(f"{self.running.admin_url}/requests", timeout=5).json())

    def users(self) -> dict[str, dict[str, Any]]:
        """Users by external id."""
        emulator: Any = self.running.emulator
        with emulator.lock:
            return {u["external_id"]: dict(u) for u in emulator.snapshot()["users"] if "external_id" in u}

    def set_group(self, external_id: str, group: str, state: str) -> None:
        """Change a state in Braze itself (a donor unsubscribing from a Braze email)."""
        emulator: Any = self.running.emulator
        with emulator.lock:
            emulator.users[emulator.by_external_id[external_id]]["subscription_groups"][group] = state


@pytest.fixture
def braze(box: Sandbox) -> Iterator[Running]:
    running = box["braze"]
    running.emulator.reset()
    yield running
    running.emulator.reset()


@pytest.fixture
def admin(braze: Running, https: requests.Session) -> Admin:
    return Admin(braze, https)


def fast_retry() -> tenacity.Retrying:
    """The production policy without the fallback waits (vendor hints still honoured)."""
    return default_retry(wait=tenacity.wait_none())


@pytest.fixture
def make_connector(braze: Running, sandbox_tls: TlsFiles) -> Callable[..., BrazeConnector]:
    def make(**settings: Any) -> BrazeConnector:
        ca = str(sandbox_tls.ca_cert)
        client = BrazeClient(braze.base_url, DEFAULT_API_KEY, verify=ca, retry=fast_retry)
        client.session.trust_env = False
        return BrazeConnector(client, BrazeSettings(**settings))

    return make


@pytest.fixture
def connector(make_connector: Callable[..., BrazeConnector]) -> BrazeConnector:
    return make_connector()
