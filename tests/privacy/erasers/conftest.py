"""One sandbox (Salesforce, HubSpot, Mailchimp, Braze, receiver) for the package, reset per test,
a donor with the same PII seeded in each system, and clients pointed at the emulators."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import tenacity

from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.connectors.braze.client import default_retry as braze_retry
from donor_sync.delivery.connectors.hubspot.factory import connector_from_connection
from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient, base_url_for
from donor_sync.delivery.connectors.mailchimp.client import default_retry as mailchimp_retry
from donor_sync.delivery.connectors.salesforce import ClientCredentials, SalesforceClient
from donor_sync.delivery.connectors.salesforce.client import default_retry as salesforce_retry
from donor_sync.privacy.contracts import ErasureSubject, RemoteRef
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox
from sandbox.emulators.braze import DEFAULT_API_KEY as BRAZE_KEY
from sandbox.emulators.mailchimp import DEFAULT_API_KEY as MAILCHIMP_KEY
from sandbox.emulators.salesforce import SalesforceEmulator
from tests.privacy.erasers.connections import privacy_connections

NAMES = ("salesforce", "hubspot", "mailchimp", "braze", "receiver")


@dataclass(frozen=True)
class Donor:
    """The donor every test erases: PII values that appear nowhere else in the sandbox."""

    donor_id: str = "9f1d6c0e-7b1a-4d55-9e0e-2f3c4b5a6d70"
    merged_id: str = "0c2e4a6b-8d0f-4e21-a3b5-c7d9e1f30405"
    first: str = "Zanele"
    last: str = "Okonkwo"
    email: str = "zanele.okonkwo@example.org"
    old_email: str = "z.okonkwo.old@example.net"
    phone: str = "+15557654321"
    street: str = "77 Jacaranda Lane"

    def pii(self) -> list[str]:
        return [self.first, self.last, self.email, self.old_email, "5557654321", self.street]

    def subject(self, remote_ids: dict[str, tuple[RemoteRef, ...]] | None = None) -> ErasureSubject:
        return ErasureSubject(
            request_id=uuid.UUID("6b1e2c3d-4f50-4a61-b7c8-d9e0f1a2b3c4"),
            donor_ids=(self.donor_id, self.merged_id),
            emails=(self.email, self.old_email),
            phones=(self.phone,),
            remote_ids=remote_ids or {},
        )


DONOR = Donor()


def pii_found(state: Any, donor: Donor = DONOR) -> list[str]:
    """Return the donor's PII strings found anywhere in ``state`` (JSON), case-insensitive."""
    text = json.dumps(state, default=str).lower()
    digits = re.sub(r"\D", "", text)
    found = [value for value in donor.pii() if not value.isdigit() and value.lower() in text]
    return found + [value for value in donor.pii() if value.isdigit() and value in digits]


@pytest.fixture(scope="package")
def box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox(
        *NAMES,
        hubspot={
            "rate_limit_max": 10_000,
            "unique_properties": {"contacts": ["donor_sync_id"], "deals": ["donor_sync_gift_key"]},
        },
        salesforce={"bulk_queued_s": 0.0, "bulk_processing_s": 0.0},
    )


@pytest.fixture
def sandbox(box: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, every emulator reset before and after the test."""
    for name in NAMES:
        box[name].emulator.reset()
    yield box
    for name in NAMES:
        box[name].emulator.reset()


def fault(box: Sandbox, name: str, **rule: Any) -> None:
    """Inject one fault rule into an emulator."""
    box[name].emulator.faults.set([FaultRule(**rule)])


def no_wait(policy: Callable[..., tenacity.Retrying], attempts: int = 3) -> Callable[[], tenacity.Retrying]:
    return lambda: policy(attempts=attempts, wait=tenacity.wait_none())


@pytest.fixture
def connections(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return privacy_connections(sandbox)


@pytest.fixture
def salesforce_client(sandbox: Sandbox) -> SalesforceClient:
    settings = SalesforceEmulator.default_settings
    base = sandbox["salesforce"].base_url
    return SalesforceClient(
        ClientCredentials(settings["client_id"], settings["client_secret"], base),
        verify=str(sandbox.tls.ca_cert),
        retry=salesforce_retry(attempts=3, wait=tenacity.wait_none()),
    )


@pytest.fixture
def hubspot_connector(sandbox: Sandbox) -> Any:
    from donor_sync.delivery.connectors.hubspot.client import default_retry as hubspot_retry
    from donor_sync.delivery.connectors.hubspot.connector import build_client
    from donor_sync.delivery.connectors.hubspot.settings import settings_from_connection

    extra = {"ca_bundle": str(sandbox.tls.ca_cert)}
    connector = connector_from_connection(sandbox["hubspot"].base_url, None, "pat-na1-sandbox", extra)
    connector.client = build_client(
        settings_from_connection(sandbox["hubspot"].base_url, extra),
        connector.client.tokens,
        retry=no_wait(hubspot_retry),
    )
    return connector


@pytest.fixture
def mailchimp_client(sandbox: Sandbox) -> MailchimpClient:
    return MailchimpClient(
        base_url_for(MAILCHIMP_KEY, sandbox["mailchimp"].base_url),
        MAILCHIMP_KEY,
        verify=str(sandbox.tls.ca_cert),
        retry=no_wait(mailchimp_retry),
    )


@pytest.fixture
def braze_client(sandbox: Sandbox) -> BrazeClient:
    return BrazeClient(
        sandbox["braze"].base_url, BRAZE_KEY, verify=str(sandbox.tls.ca_cert), retry=no_wait(braze_retry)
    )
