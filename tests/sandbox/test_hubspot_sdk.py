"""hubspot-api-client 12, pointed at the emulator over verified HTTPS, works as against HubSpot."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from hubspot import HubSpot
from hubspot.communication_preferences.models import PublicUpdateSubscriptionStatusRequest
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiPost,
    PublicAssociationMultiPost,
    PublicObjectId,
)
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputUpsert,
    Filter,
    FilterGroup,
    PublicGdprDeleteInput,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInputForCreate,
)
from hubspot.discovery.discovery_base import DiscoveryBase
from urllib3.util.retry import Retry

from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.hubspot import HubSpotEmulator

TOKEN = "pat-na1-sandbox"


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(HubSpotEmulator())


class _Pools:
    """Record the SDK's API clients (one per API accessor) so their pooled connections can be closed."""

    def __init__(self) -> None:
        self.clients: list[Any] = []

    def factory(self, package: Any, api_name: str, config: dict[str, Any]) -> Any:
        """Build an API object as the SDK does by default, remembering its ApiClient."""
        api = DiscoveryBase._default_api_factory(package, api_name, config)
        self.clients.append(api.api_client)
        return api

    def close(self) -> None:
        """Close every keep-alive connection (else the server waits for them when it stops).

        urllib3 responses keep their socket open until collected, and each ApiClient keeps its
        ``last_response``: drop those and collect, as well as clearing the pools.
        """
        for api_client in self.clients:
            api_client.rest_client.pool_manager.clear()
            api_client.last_response = None
        self.clients.clear()
        gc.collect()


@pytest.fixture
def pools() -> Iterator[_Pools]:
    tracked = _Pools()
    yield tracked
    tracked.close()


@pytest.fixture
def running(box: Sandbox) -> Iterator[Running]:
    emulator = box["hubspot"].emulator
    emulator.reset()
    yield box["hubspot"]
    emulator.reset()


@pytest.fixture
def make_client(running: Running, sandbox_tls: TlsFiles, pools: _Pools) -> Callable[..., HubSpot]:
    """Return a builder of SDK clients: host is the emulator, ``ssl_ca_cert`` the sandbox CA."""

    def make(token: str = TOKEN, **config: Any) -> HubSpot:
        settings = {"host": running.base_url, "ssl_ca_cert": str(sandbox_tls.ca_cert), **config}
        return HubSpot(access_token=token, api_factory=pools.factory, **settings)

    return make


@pytest.fixture
def client(make_client: Callable[..., HubSpot]) -> HubSpot:
    return make_client()


def _upsert_input(email: str, **props: str) -> SimplePublicObjectBatchInputUpsert:
    return SimplePublicObjectBatchInputUpsert(id=email, id_property="email", properties=props)


def test_batch_upsert_creates_then_updates(client: HubSpot) -> None:
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[_upsert_input("ada@example.org", firstname="Ada")]
    )
    first = client.crm.contacts.batch_api.upsert(batch)
    assert first.status == "COMPLETE"
    assert first.results[0].new is True
    second = client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[_upsert_input("ada@example.org", lastname="Lovelace")]
        )
    )
    assert second.results[0].new is False
    assert second.results[0].id == first.results[0].id
    assert second.results[0].properties["lastname"] == "Lovelace"


def test_a_partial_failure_comes_back_as_the_sdks_207_result(client: HubSpot) -> None:
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[_upsert_input("ok@example.org", firstname="Ok"), _upsert_input("broken-email")]
    )
    result, status, _ = client.crm.contacts.batch_api.upsert_with_http_info(batch)
    assert status == 207
    assert type(result).__name__ == "BatchResponseSimplePublicUpsertObjectWithErrors"
    assert result.num_errors == 1
    assert result.errors[0].category == "VALIDATION_ERROR"
    assert [r.properties["email"] for r in result.results] == ["ok@example.org"]


def test_search_pages_through_every_match(client: HubSpot) -> None:
    inputs = [_upsert_input(f"d{i}@example.org", city="Oslo" if i % 3 else "Bergen") for i in range(25)]
    client.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
    oslo = FilterGroup(filters=[Filter(property_name="city", operator="EQ", value="Oslo")])
    emails: list[str] = []
    after: str | None = None
    while True:
        request = PublicObjectSearchRequest(
            filter_groups=[oslo], properties=["email"], limit=5, after=after, sorts=["email"]
        )
        page = client.crm.contacts.search_api.do_search(public_object_search_request=request)
        assert page.total == 16
        emails += [r.properties["email"] for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert emails == sorted(f"d{i}@example.org" for i in range(25) if i % 3)


def test_associations_v4_labelled_default_and_batch(client: HubSpot) -> None:
    contact = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "a@example.org"})
    )
    deal_api = client.crm.deals.basic_api
    from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealInput

    deals = [
        deal_api.create(DealInput(properties={"dealname": f"Gift {i}", "amount": "10"})) for i in range(2)
    ]
    v4 = client.crm.associations.v4
    spec = AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=4)
    pair = v4.basic_api.create("contacts", contact.id, "deals", deals[0].id, [spec])
    assert (pair.from_object_id, pair.to_object_id, pair.labels) == (contact.id, deals[0].id, [])
    v4.basic_api.create_default("deals", deals[1].id, "contacts", contact.id)
    batch = BatchInputPublicAssociationMultiPost(
        inputs=[
            PublicAssociationMultiPost(
                _from=PublicObjectId(id=contact.id), to=PublicObjectId(id=deals[1].id), types=[spec]
            )
        ]
    )
    created = v4.batch_api.create("contacts", "deals", batch)
    assert created.status == "COMPLETE"
    page = v4.basic_api.get_page("contacts", contact.id, "deals")
    assert sorted(r.to_object_id for r in page.results) == sorted([deals[0].id, deals[1].id])
    assert all(t.type_id == 4 for r in page.results for t in r.association_types)


def test_merge_and_gdpr_delete(client: HubSpot) -> None:
    api = client.crm.contacts.basic_api
    primary = api.create(SimplePublicObjectInputForCreate(properties={"email": "p@example.org"}))
    other = api.create(SimplePublicObjectInputForCreate(properties={"email": "o@example.org", "phone": "5"}))
    merged = api.merge(PublicMergeInput(primary_object_id=primary.id, object_id_to_merge=other.id))
    assert merged.id == primary.id
    assert merged.properties["phone"] == "5"
    api.purge(PublicGdprDeleteInput(object_id="p@example.org", id_property="email"))
    with pytest.raises(ApiException) as caught:
        api.get_by_id(primary.id)
    assert caught.value.status == 404
    with pytest.raises(ApiException) as blocked:
        api.create(SimplePublicObjectInputForCreate(properties={"email": "p@example.org"}))
    assert blocked.value.status == 400


def test_subscription_statuses_through_the_v3_api(client: HubSpot) -> None:
    status_api = client.communication_preferences.status_api
    request = PublicUpdateSubscriptionStatusRequest(
        email_address="a@example.org",
        subscription_id="1001",
        legal_basis="CONSENT_WITH_NOTICE",
        legal_basis_explanation="Form",
    )
    assert status_api.subscribe(public_update_subscription_status_request=request).status == "SUBSCRIBED"
    statuses = status_api.get_email_status("a@example.org")
    assert {s.id: s.status for s in statuses.subscription_statuses}["1001"] == "SUBSCRIBED"
    definitions = client.communication_preferences.definition_api.get_page()
    assert len(definitions.subscription_definitions) == 3


def test_verification_stays_on_without_the_sandbox_ca(make_client: Callable[..., HubSpot]) -> None:
    with pytest.raises(urllib3.exceptions.MaxRetryError) as caught:
        make_client(ssl_ca_cert=None, retry=Retry(total=0)).crm.contacts.basic_api.get_page()
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_bad_token_expiry_and_rate_limit_surface_as_api_exceptions(
    running: Running, make_client: Callable[..., HubSpot]
) -> None:
    with pytest.raises(ApiException) as bad:
        make_client(token="pat-na1-wrong").crm.contacts.basic_api.get_page()
    assert bad.value.status == 401
    assert json.loads(bad.value.body)["category"] == "INVALID_AUTHENTICATION"
    with pytest.raises(ApiException) as expired:
        make_client(token="pat-na1-expired").crm.contacts.basic_api.get_page()
    assert json.loads(expired.value.body)["category"] == "EXPIRED_AUTHENTICATION"

    running.emulator.settings["rate_limit_max"] = 1
    client = make_client()
    client.crm.contacts.basic_api.get_page()
    with pytest.raises(ApiException) as limited:
        client.crm.contacts.basic_api.get_page()
    assert limited.value.status == 429
    assert json.loads(limited.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert limited.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
