"""OAuth against the emulator: JWT bearer and client credentials, renewal on expiry and on age."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from donor_sync.delivery.connectors.salesforce import ClientCredentials, SalesforceClient, default_audience
from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Running
from tests.delivery.connectors.salesforce._support import CLIENT_ID, CLIENT_SECRET, requests_to

MakeClient = Callable[..., SalesforceClient]


def test_jwt_bearer_token_reaches_the_api(sf: Running, client: SalesforceClient) -> None:
    assert client.get_json("/limits")["DailyApiRequests"]["Max"] == 100_000
    assert client.tokens.requests_made == 1
    client.get_json("/limits")
    assert client.tokens.requests_made == 1, "the token is cached between calls"
    assert len(requests_to(sf, "/services/oauth2/token", "POST")) == 1


def test_client_credentials_flow(sf: Running, make_client: MakeClient) -> None:
    client = make_client(credentials=ClientCredentials(CLIENT_ID, CLIENT_SECRET, sf.base_url))
    assert "DailyApiRequests" in client.get_json("/limits")


def test_refused_secret_is_an_auth_failure_without_the_secret(sf: Running, make_client: MakeClient) -> None:
    client = make_client(credentials=ClientCredentials(CLIENT_ID, "wrong-secret-42", sf.base_url))
    with pytest.raises(DestinationUnavailableError) as caught:
        client.get_json("/limits")
    assert caught.value.error_class is FailureClass.AUTH
    assert caught.value.error_code == "invalid_client"
    assert "wrong-secret-42" not in str(caught.value)
    assert "wrong-secret-42" not in repr(client.tokens.credentials)


def test_expired_session_is_renewed_once_transparently(sf: Running, client: SalesforceClient) -> None:
    client.get_json("/limits")
    sf.emulator.faults.set([FaultRule(kind="expired_token", path="/limits", count=1)])
    assert "DailyApiRequests" in client.get_json("/limits")
    assert client.tokens.requests_made == 2


def test_a_session_refused_twice_is_an_auth_failure(sf: Running, client: SalesforceClient) -> None:
    sf.emulator.faults.set([FaultRule(kind="expired_token", path="/limits")])
    with pytest.raises(DestinationUnavailableError) as caught:
        client.get_json("/limits")
    assert (caught.value.error_class, caught.value.error_code) == (FailureClass.AUTH, "INVALID_SESSION_ID")
    assert client.tokens.requests_made == 2, "one renewal, no loop"


def test_token_older_than_max_age_is_renewed_before_use(sf: Running, make_client: MakeClient) -> None:
    client = make_client(token_max_age_s=0.4)
    client.get_json("/limits")
    client.get_json("/limits")
    assert client.tokens.requests_made == 1
    time.sleep(0.5)
    client.get_json("/limits")
    assert client.tokens.requests_made == 2


@pytest.mark.parametrize(
    ("login_url", "audience"),
    [
        pytest.param("https://login.salesforce.com", "https://login.salesforce.com", id="production"),
        pytest.param("https://test.salesforce.com", "https://test.salesforce.com", id="sandbox"),
        pytest.param(
            "https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com", id="sbx-mydomain"
        ),
        pytest.param("https://acme.my.salesforce.com", "https://login.salesforce.com", id="my-domain"),
        pytest.param("https://127.0.0.1:8701/", "https://127.0.0.1:8701", id="emulator"),
    ],
)
def test_default_audience(login_url: str, audience: str) -> None:
    assert default_audience(login_url) == audience
