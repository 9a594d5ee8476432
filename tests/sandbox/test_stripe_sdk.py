"""The official stripe-python SDK (16.x) works against the Stripe emulator over HTTPS with the sandbox CA."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests
import stripe

from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.stripe import StripeEmulator

KEY = "sk_test_sandbox"
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def api(start_emulators: Callable[..., Sandbox]) -> Running:
    return start_emulators(StripeEmulator()).running["stripe"]


@pytest.fixture
def make_client(
    api: Running, sandbox_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], stripe.StripeClient]]:
    """Build StripeClients on the emulator that trust the sandbox CA (and verify certificates).

    stripe-python's RequestsClient passes ``verify=stripe.ca_bundle_path`` on every request, so the
    CA is given there (for this test only); a session's own ``verify`` would be overridden.
    """
    api.emulator.reset()
    monkeypatch.setattr(stripe, "ca_bundle_path", str(sandbox_tls.ca_cert))
    with requests.Session() as session:
        session.trust_env = False
        http_client = stripe.RequestsClient(session=session, timeout=10)

        def make(key: str) -> stripe.StripeClient:
            return stripe.StripeClient(key, base_addresses={"api": api.base_url}, http_client=http_client)

        yield make


@pytest.fixture
def client(make_client: Callable[[str], stripe.StripeClient]) -> stripe.StripeClient:
    return make_client(KEY)


def test_auto_paging_with_a_created_filter_walks_every_page(
    api: Running, client: stripe.StripeClient
) -> None:
    emulator = api.emulator
    assert isinstance(emulator, StripeEmulator)
    ids = [c["id"] for c in emulator.generate("charges", 30, T0, step=60)]
    pages = client.v1.charges.list(params={"limit": 7, "created": {"gte": T0 + 5 * 60}})
    assert pages.has_more is True
    assert len(pages.data) == 7
    walked = [charge.id for charge in pages.auto_paging_iter()]
    assert walked == list(reversed(ids[5:])), "newest first, no gaps or repeats across 4 pages"
    requests_made = [r for r in emulator.request_log if r["path"] == "/v1/charges"]
    assert len(requests_made) == 4


def test_retrieve_returns_a_typed_charge(api: Running, client: stripe.StripeClient) -> None:
    emulator = api.emulator
    assert isinstance(emulator, StripeEmulator)
    emulator.store("charges", [{"id": "ch_sdk", "amount": 1234, "currency": "eur", "created": T0}])
    charge = client.v1.charges.retrieve("ch_sdk")
    assert isinstance(charge, stripe.Charge)
    assert (charge.id, charge.amount, charge.currency, charge.created) == ("ch_sdk", 1234, "eur", T0)


def test_sdk_raises_its_own_errors_for_emulator_errors(
    client: stripe.StripeClient, make_client: Callable[[str], stripe.StripeClient]
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.charges.retrieve("ch_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.AuthenticationError) as denied:
        make_client("sk_test_bad").v1.customers.list()
    assert denied.value.http_status == 401


def test_sdk_sees_the_rate_limit(api: Running, client: stripe.StripeClient) -> None:
    api.emulator.settings.update({"read_requests_per_second": 1, "rate_limit_window_s": 2.0})
    try:
        client.v1.events.list()
        client.v1.events.list()
        with pytest.raises(stripe.RateLimitError) as limited:
            client.v1.events.list()
        assert limited.value.http_status == 429
        body = limited.value.json_body
        assert isinstance(body, dict)
        assert body["error"]["code"] == "rate_limit"
    finally:
        api.emulator.settings.update({"read_requests_per_second": 25, "rate_limit_window_s": 1.0})
