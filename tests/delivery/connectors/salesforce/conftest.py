"""Fixtures: the Salesforce emulator over HTTPS (one per package) and clients/connectors on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from donor_sync.delivery.connectors.salesforce import (
    JwtBearer,
    PollPolicy,
    SalesforceClient,
    SalesforceConnector,
)
from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.salesforce import SalesforceEmulator
from tests.delivery.connectors.salesforce._support import (
    CLIENT_ID,
    USER,
    fast_retry,
    private_pem,
    public_pem,
)


@pytest.fixture(scope="package")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="package")
def box(start_emulators: Callable[..., Sandbox], private_key: rsa.RSAPrivateKey) -> Sandbox:
    return start_emulators(SalesforceEmulator({"jwt_public_key": public_pem(private_key)}))


@pytest.fixture
def sf(box: Sandbox) -> Iterator[Running]:
    """The running emulator, reset before and after the test."""
    running = box["salesforce"]
    emulator = running.emulator
    saved = dict(emulator.settings)
    emulator.reset()
    yield running
    emulator.settings.clear()
    emulator.settings.update(saved)
    emulator.reset()


@pytest.fixture
def jwt_credentials(sf: Running, private_key: rsa.RSAPrivateKey) -> JwtBearer:
    return JwtBearer(CLIENT_ID, USER, private_pem(private_key), sf.base_url, sf.base_url)


@pytest.fixture
def make_client(sandbox_tls: TlsFiles, jwt_credentials: JwtBearer) -> Callable[..., SalesforceClient]:
    def make(**options: Any) -> SalesforceClient:
        options.setdefault("retry", fast_retry())
        options.setdefault("verify", str(sandbox_tls.ca_cert))
        credentials = options.pop("credentials", jwt_credentials)
        return SalesforceClient(credentials, **options)

    return make


@pytest.fixture
def client(make_client: Callable[..., SalesforceClient]) -> SalesforceClient:
    return make_client()


@pytest.fixture
def connector(client: SalesforceClient) -> SalesforceConnector:
    return SalesforceConnector(
        client, bulk_poll=PollPolicy(first_wait_s=0.02, max_wait_between_s=0.2, deadline_s=20)
    )
