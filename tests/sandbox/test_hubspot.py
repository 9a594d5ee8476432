"""The HubSpot emulator behaves as HubSpot documents: auth, limits, batches, search, merge, GDPR,
associations v4 and subscription statuses."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sandbox.common.runner import Running, Sandbox
from sandbox.emulators.hubspot import HubSpotEmulator

TOKEN = "pat-na1-sandbox"


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(HubSpotEmulator())


class Api:
    """A tiny HubSpot client over a session that trusts the sandbox CA."""

    def __init__(self, running: Running, session: requests.Session) -> None:
        self.running = running
        self.session = session

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = TOKEN, **params: Any
    ) -> requests.Response:
        """Send one request to the vendor API."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.session.request(
            method,
            f"{self.running.base_url}{path}",
            json=body,
            params=params or None,
            headers=headers,
            timeout=5,
        )

    def post(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        """POST ``body`` as JSON."""
        return self.call("POST", path, body, **params)

    def settings(self, **changes: Any) -> None:
        """Change emulator settings through the admin API."""
        response = self.session.patch(f"{self.running.admin_url}/settings", json=changes, timeout=5)
        assert response.status_code == 200, response.text

    def upsert(self, object_type: str, inputs: list[dict[str, Any]]) -> requests.Response:
        """Batch-upsert ``inputs``."""
        return self.post(f"/crm/v3/objects/{object_type}/batch/upsert", {"inputs": inputs})

    def contact(self, email: str, **props: Any) -> str:
        """Create a contact and return its id."""
        response = self.post("/crm/v3/objects/contacts", {"properties": {"email": email, **props}})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture
def api(box: Sandbox, https: requests.Session) -> Iterator[Api]:
    running = box["hubspot"]
    emulator = running.emulator
    emulator.reset()
    yield Api(running, https)
    emulator.reset()


def _is_error_body(body: dict[str, Any], category: str) -> None:
    assert body["status"] == "error"
    assert body["category"] == category
    assert body["message"]
    assert len(body["correlationId"]) == 36


# -- auth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "pat-na1-wrong"], ids=["missing", "unknown"])
def test_a_missing_or_unknown_token_is_401_invalid_authentication(api: Api, token: str | None) -> None:
    response = api.call("GET", "/crm/v3/objects/contacts", token=token)
    assert response.status_code == 401
    _is_error_body(response.json(), "INVALID_AUTHENTICATION")
    assert response.json()["message"].startswith("Authentication credentials not found.")


def test_an_expired_token_and_the_expired_token_fault_answer_expired_authentication(api: Api) -> None:
    expired = api.call("GET", "/crm/v3/objects/contacts", token="pat-na1-expired")
    assert expired.status_code == 401
    _is_error_body(expired.json(), "EXPIRED_AUTHENTICATION")
    assert "The OAuth token used to make this call expired" in expired.json()["message"]

    api.session.put(
        f"{api.running.admin_url}/faults", json=[{"kind": "expired_token", "count": 1}], timeout=5
    )
    faulted = api.call("GET", "/crm/v3/objects/contacts")
    assert faulted.status_code == 401
    _is_error_body(faulted.json(), "EXPIRED_AUTHENTICATION")
    assert api.call("GET", "/crm/v3/objects/contacts").status_code == 200


@pytest.mark.parametrize(
    ("status", "category"), [(404, "OBJECT_NOT_FOUND"), (400, "VALIDATION_ERROR"), (503, "INTERNAL_ERROR")]
)
def test_a_status_fault_answers_hubspots_error_shape(api: Api, status: int, category: str) -> None:
    rule = [{"kind": "status", "status": status, "count": 1}]
    api.session.put(f"{api.running.admin_url}/faults", json=rule, timeout=5)
    response = api.call("GET", "/crm/v3/objects/contacts")
    assert response.status_code == status
    _is_error_body(response.json(), category)


def test_a_429_fault_answers_the_rate_limit_body(api: Api) -> None:
    api.session.put(f"{api.running.admin_url}/faults", json=[{"kind": "status", "status": 429}], timeout=5)
    body = api.call("GET", "/crm/v3/objects/contacts").json()
    assert (body["policyName"], body["errorType"]) == ("TEN_SECONDLY_ROLLING", "RATE_LIMIT")


def test_unknown_paths_and_bad_parameters_answer_in_hubspots_shape(api: Api) -> None:
    missing = api.call("GET", "/crm/v3/nothing/here/at/all")
    assert missing.status_code == 404
    _is_error_body(missing.json(), "OBJECT_NOT_FOUND")
    bad = api.call("GET", "/crm/v3/objects/contacts", limit="many")
    assert bad.status_code == 400
    _is_error_body(bad.json(), "VALIDATION_ERROR")
    not_json = api.session.post(
        f"{api.running.base_url}/crm/v3/objects/contacts/batch/upsert",
        data=b"{",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert not_json.status_code == 400
    _is_error_body(not_json.json(), "VALIDATION_ERROR")


# -- limits --------------------------------------------------------------------------------------
def test_every_response_carries_the_rate_limit_headers(api: Api) -> None:
    api.settings(rate_limit_max=7, daily_limit=1000)
    first = api.call("GET", "/crm/v3/objects/contacts")
    second = api.call("GET", "/crm/v3/objects/contacts")
    assert first.headers["X-HubSpot-RateLimit-Max"] == "7"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "1000"
    assert (
        first.headers["X-HubSpot-RateLimit-Remaining"],
        second.headers["X-HubSpot-RateLimit-Remaining"],
    ) == ("6", "5")
    assert second.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "998"
    assert first.headers["X-HubSpot-Correlation-Id"]


def test_the_rolling_window_answers_429_ten_secondly_rolling_then_recovers(api: Api) -> None:
    api.settings(rate_limit_max=3, rate_limit_interval_ms=400)
    statuses = [api.call("GET", "/crm/v3/objects/contacts").status_code for _ in range(3)]
    limited = api.call("GET", "/crm/v3/objects/contacts")
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    body = limited.json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["status"] == "error"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["correlationId"]
    assert body["requestId"]
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    time.sleep(0.45)
    assert api.call("GET", "/crm/v3/objects/contacts").status_code == 200


def test_the_daily_limit_answers_429_daily(api: Api) -> None:
    api.settings(daily_limit=2)
    assert [api.call("GET", "/crm/v3/objects/contacts").status_code for _ in range(2)] == [200, 200]
    limited = api.call("GET", "/crm/v3/objects/contacts")
    assert limited.status_code == 429
    assert limited.json()["policyName"] == "DAILY"
    assert limited.json()["message"] == "You have reached your daily limit."
    assert limited.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


# -- batch ---------------------------------------------------------------------------------------
def test_batch_upsert_by_email_creates_then_updates_and_echoes_trace_ids(api: Api) -> None:
    first = api.upsert(
        "contacts",
        [
            {
                "id": "Ada@Example.org",
                "idProperty": "email",
                "properties": {"firstname": "Ada"},
                "objectWriteTraceId": "r1",
            }
        ],
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "COMPLETE"
    assert body["startedAt"]
    assert body["completedAt"]
    created = body["results"][0]
    assert (created["new"], created["objectWriteTraceId"]) == (True, "r1")
    assert created["properties"]["email"] == "ada@example.org"
    second = api.upsert(
        "contacts", [{"id": "ada@example.org", "idProperty": "email", "properties": {"lastname": "L"}}]
    )
    updated = second.json()["results"][0]
    assert (updated["id"], updated["new"]) == (created["id"], False)
    assert updated["properties"]["firstname"] == "Ada"
    assert updated["properties"]["lastname"] == "L"


def test_batches_over_the_cap_are_400_and_the_cap_is_a_setting(api: Api) -> None:
    inputs = [{"id": f"p{i}@example.org", "idProperty": "email", "properties": {}} for i in range(101)]
    too_many = api.upsert("contacts", inputs)
    assert too_many.status_code == 400
    _is_error_body(too_many.json(), "VALIDATION_ERROR")
    assert api.upsert("contacts", inputs[:100]).status_code == 200
    api.settings(batch_max_inputs=2)
    assert api.post("/crm/v3/objects/contacts/batch/read", {"inputs": [{"id": "1"}] * 3}).status_code == 400


def test_a_partial_failure_is_207_with_per_input_errors_and_num_errors(api: Api) -> None:
    response = api.upsert(
        "contacts",
        [
            {"id": "good@example.org", "idProperty": "email", "properties": {"firstname": "G"}},
            {"id": "not-an-email", "idProperty": "email", "properties": {}},
        ],
    )
    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 1
    assert [r["properties"]["email"] for r in body["results"]] == ["good@example.org"]
    error = body["errors"][0]
    assert (error["status"], error["category"]) == ("error", "VALIDATION_ERROR")
    assert "INVALID_EMAIL" in error["message"]
    assert error["context"]
    assert error["links"] == {}
    assert error["errors"] == []


def test_unknown_properties_are_rejected_until_created(api: Api) -> None:
    item = {"id": "x@example.org", "idProperty": "email", "properties": {"donor_tier": "gold"}}
    rejected = api.upsert("contacts", [item])
    assert rejected.status_code == 207
    assert "PROPERTY_DOESNT_EXIST" in rejected.json()["errors"][0]["message"]
    created = api.post(
        "/crm/v3/properties/contacts", {"name": "donor_tier", "label": "Tier", "type": "string"}
    )
    assert created.status_code == 201
    again = api.post("/crm/v3/properties/contacts", {"name": "donor_tier", "label": "Tier", "type": "string"})
    assert again.status_code == 409
    assert api.upsert("contacts", [item]).status_code == 200


def test_duplicate_ids_in_one_batch_are_400(api: Api) -> None:
    inputs: list[dict[str, Any]] = [
        {"id": e, "idProperty": "email", "properties": {}} for e in ("a@example.org", "A@example.org")
    ]
    response = api.upsert("contacts", inputs)
    assert response.status_code == 400
    assert "Duplicate IDs" in response.json()["message"]


def test_batch_create_is_201_and_a_taken_email_is_a_409_conflict_inside_207(api: Api) -> None:
    ok = api.post(
        "/crm/v3/objects/contacts/batch/create", {"inputs": [{"properties": {"email": "a@example.org"}}]}
    )
    assert ok.status_code == 201
    existing = ok.json()["results"][0]["id"]
    clash = api.post(
        "/crm/v3/objects/contacts/batch/create",
        {"inputs": [{"properties": {"email": "a@example.org"}}, {"properties": {"email": "b@example.org"}}]},
    )
    assert clash.status_code == 207
    error = clash.json()["errors"][0]
    assert error["category"] == "CONFLICT"
    assert error["message"] == f"Contact already exists. Existing ID: {existing}"


def test_batch_read_by_email_reports_missing_ids_as_object_not_found(api: Api) -> None:
    api.contact("a@example.org", firstname="A")
    response = api.post(
        "/crm/v3/objects/contacts/batch/read",
        {
            "idProperty": "email",
            "inputs": [{"id": "a@example.org"}, {"id": "nobody@example.org"}],
            "properties": ["firstname", "phone"],
        },
    )
    assert response.status_code == 207
    body = response.json()
    assert body["results"][0]["properties"] == {"firstname": "A", "phone": None}
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"] == {"ids": ["nobody@example.org"]}
    assert (
        api.post(
            "/crm/v3/objects/contacts/batch/read",
            {"inputs": [{"id": "1"}] * 51, "propertiesWithHistory": ["email"]},
        ).status_code
        == 400
    )


def test_batch_update_and_archive(api: Api) -> None:
    contact_id = api.contact("a@example.org")
    response = api.post(
        "/crm/v3/objects/contacts/batch/update",
        {
            "inputs": [
                {"id": contact_id, "properties": {"firstname": "Z"}},
                {"id": "999999", "properties": {}},
            ]
        },
    )
    assert response.status_code == 207
    assert response.json()["results"][0]["properties"]["firstname"] == "Z"
    assert response.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert (
        api.post("/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": contact_id}]}).status_code
        == 204
    )
    assert api.call("GET", f"/crm/v3/objects/contacts/{contact_id}").status_code == 404


# -- single objects ------------------------------------------------------------------------------
def test_single_object_crud_by_id_and_by_email(api: Api) -> None:
    contact_id = api.contact("a@example.org", firstname="A")
    assert api.post("/crm/v3/objects/contacts", {"properties": {"email": "a@example.org"}}).status_code == 409
    by_email = api.call(
        "GET", "/crm/v3/objects/contacts/a@example.org", idProperty="email", properties="firstname"
    )
    assert by_email.json()["id"] == contact_id
    assert by_email.json()["properties"] == {"firstname": "A"}
    patched = api.call(
        "PATCH",
        "/crm/v3/objects/contacts/a@example.org",
        {"properties": {"lastname": "B"}},
        idProperty="email",
    )
    assert patched.json()["properties"]["lastname"] == "B"
    assert api.call("DELETE", f"/crm/v3/objects/contacts/{contact_id}").status_code == 204
    gone = api.call("GET", f"/crm/v3/objects/contacts/{contact_id}")
    assert gone.status_code == 404
    _is_error_body(gone.json(), "OBJECT_NOT_FOUND")


def test_list_pages_with_an_after_cursor(api: Api) -> None:
    ids = [api.contact(f"p{i}@example.org") for i in range(5)]
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        page = api.call("GET", "/crm/v3/objects/contacts", **params).json()
        seen += [r["id"] for r in page["results"]]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            break
    assert seen == ids
    assert api.call("GET", "/crm/v3/objects/contacts", limit=101).status_code == 400


# -- deals and custom objects --------------------------------------------------------------------
def test_deals_upsert_by_a_unique_custom_property(api: Api) -> None:
    created = api.post(
        "/crm/v3/properties/deals",
        {"name": "donation_id", "label": "Donation", "type": "string", "hasUniqueValue": True},
    )
    assert created.json()["hasUniqueValue"] is True
    item = {"id": "don_1", "idProperty": "donation_id", "properties": {"amount": 25, "dealname": "Gift"}}
    first = api.upsert("deals", [item]).json()["results"][0]
    second = api.upsert("deals", [{**item, "properties": {"amount": "30.5"}}]).json()["results"][0]
    assert (first["new"], second["new"], second["id"]) == (True, False, first["id"])
    assert second["properties"]["amount"] == "30.5"
    not_unique = api.upsert("deals", [{"id": "Gift", "idProperty": "dealname", "properties": {}}])
    assert not_unique.status_code == 207
    assert "not a unique property" in not_unique.json()["errors"][0]["message"]


def test_custom_objects_from_a_schema_upsert_by_their_unique_property(api: Api) -> None:
    schema = api.post(
        "/crm-object-schemas/v3/schemas",
        {
            "name": "donation",
            "labels": {"singular": "Donation", "plural": "Donations"},
            "primaryDisplayProperty": "donation_id",
            "requiredProperties": ["donation_id"],
            "properties": [
                {
                    "name": "donation_id",
                    "label": "Donation ID",
                    "type": "string",
                    "fieldType": "text",
                    "hasUniqueValue": True,
                },
                {"name": "amount", "label": "Amount", "type": "number", "fieldType": "number"},
            ],
            "associatedObjects": ["CONTACT"],
        },
    )
    assert schema.status_code == 201, schema.text
    type_id, fqn = schema.json()["objectTypeId"], schema.json()["fullyQualifiedName"]
    assert type_id.startswith("2-")
    assert fqn == "p1234567_donation"
    item = {"id": "d-1", "idProperty": "donation_id", "properties": {"amount": 10}}
    assert api.upsert(type_id, [item]).json()["results"][0]["new"] is True
    assert api.upsert(fqn, [item]).json()["results"][0]["new"] is False
    missing = api.post(f"/crm/v3/objects/{type_id}", {"properties": {"amount": 1}})
    assert missing.status_code == 400
    assert api.upsert("no_such_type", [item]).status_code == 400
    contact = api.contact("donor@example.org")
    donation_id = api.upsert(type_id, [item]).json()["results"][0]["id"]
    linked = api.call(
        "PUT", f"/crm/v4/objects/{type_id}/{donation_id}/associations/default/contacts/{contact}"
    )
    assert linked.status_code == 200
    back = api.call("GET", f"/crm/v4/objects/contacts/{contact}/associations/{fqn}").json()["results"]
    assert [b["toObjectId"] for b in back] == [int(donation_id)]


# -- search --------------------------------------------------------------------------------------
def _donors(api: Api, count: int) -> None:
    inputs = [
        {
            "id": f"d{i}@example.org",
            "idProperty": "email",
            "properties": {"firstname": f"Name{i}", "city": "Oslo" if i % 2 else "Bergen"},
        }
        for i in range(count)
    ]
    assert api.upsert("contacts", inputs).status_code == 200


def test_search_filter_groups_are_or_of_and_with_sorts(api: Api) -> None:
    _donors(api, 10)
    body = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "city", "operator": "EQ", "value": "oslo"},
                    {"propertyName": "firstname", "operator": "IN", "values": ["Name1", "Name3"]},
                ]
            },
            {"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "d8*"}]},
        ],
        "sorts": [{"propertyName": "firstname", "direction": "DESCENDING"}],
        "properties": ["firstname"],
    }
    response = api.post("/crm/v3/objects/contacts/search", body)
    assert response.status_code == 200
    assert response.json()["total"] == 3
    assert [r["properties"]["firstname"] for r in response.json()["results"]] == ["Name8", "Name3", "Name1"]
    has = {"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "HAS_PROPERTY"}]}]}
    assert api.post("/crm/v3/objects/contacts/search", has).json()["total"] == 0
    ranged = {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "hs_object_id",
                        "operator": "BETWEEN",
                        "value": "1002",
                        "highValue": "1004",
                    }
                ]
            }
        ]
    }
    assert api.post("/crm/v3/objects/contacts/search", ranged).json()["total"] == 3
    assert api.post("/crm/v3/objects/contacts/search", {"query": "name7"}).json()["total"] == 1


def test_search_pages_with_after_and_the_result_cap_is_an_error(api: Api) -> None:
    _donors(api, 7)
    api.settings(search_result_cap=5)
    emails: list[str] = []
    after: str | None = None
    for _ in range(5):
        page = api.post(
            "/crm/v3/objects/contacts/search", {"limit": 2, "after": after, "properties": ["email"]}
        ).json()
        assert page["total"] == 7
        emails += [r["properties"]["email"] for r in page["results"]]
        after = page.get("paging", {}).get("next", {}).get("after")
        if after is None:
            break
    assert emails == [f"d{i}@example.org" for i in range(5)], "paging stops at the cap"
    past = api.post("/crm/v3/objects/contacts/search", {"limit": 2, "after": "5"})
    assert past.status_code == 400
    _is_error_body(past.json(), "VALIDATION_ERROR")
    assert api.post("/crm/v3/objects/contacts/search", {"limit": 201}).status_code == 400
    six = {"filterGroups": [{"filters": [{"propertyName": "city", "operator": "EQ", "value": "x"}]}] * 6}
    assert api.post("/crm/v3/objects/contacts/search", six).status_code == 400


# -- merge and GDPR ------------------------------------------------------------------------------
def test_merge_keeps_the_primary_fills_blanks_and_redirects_the_merged_id(api: Api) -> None:
    primary = api.contact("p@example.org", firstname="Pat")
    other = api.contact("o@example.org", firstname="Other", phone="555")
    deal = api.post("/crm/v3/objects/deals", {"properties": {"dealname": "Gift"}}).json()["id"]
    api.call("PUT", f"/crm/v4/objects/contacts/{other}/associations/default/deals/{deal}")
    merged = api.post(
        "/crm/v3/objects/contacts/merge", {"primaryObjectId": primary, "objectIdToMerge": other}
    )
    assert merged.status_code == 200
    props = merged.json()["properties"]
    assert (props["firstname"], props["phone"], props["email"]) == ("Pat", "555", "p@example.org")
    assert api.call("GET", f"/crm/v3/objects/contacts/{other}").json()["id"] == primary
    again = api.upsert("contacts", [{"id": "o@example.org", "idProperty": "email", "properties": {}}])
    assert again.json()["results"][0]["id"] == primary
    links = api.call("GET", f"/crm/v4/objects/contacts/{primary}/associations/deals").json()["results"]
    assert [link["toObjectId"] for link in links] == [int(deal)]
    itself = api.post(
        "/crm/v3/objects/contacts/merge", {"primaryObjectId": primary, "objectIdToMerge": primary}
    )
    assert itself.status_code == 400


def test_gdpr_delete_removes_the_contact_and_blocklists_its_email(api: Api) -> None:
    contact_id = api.contact("gone@example.org")
    response = api.post(
        "/crm/v3/objects/contacts/gdpr-delete", {"objectId": "gone@example.org", "idProperty": "email"}
    )
    assert response.status_code == 204
    assert api.call("GET", f"/crm/v3/objects/contacts/{contact_id}").status_code == 404
    recreated = api.upsert("contacts", [{"id": "gone@example.org", "idProperty": "email", "properties": {}}])
    assert recreated.status_code == 207
    assert "GDPR" in recreated.json()["errors"][0]["message"]
    assert (
        api.post("/crm/v3/objects/contacts", {"properties": {"email": "GONE@example.org"}}).status_code == 400
    )

    never = api.post(
        "/crm/v3/objects/contacts/gdpr-delete", {"objectId": "never@example.org", "idProperty": "email"}
    )
    assert never.status_code == 204, "unknown emails are blocklisted anyway"
    assert (
        api.post("/crm/v3/objects/contacts", {"properties": {"email": "never@example.org"}}).status_code
        == 400
    )
    assert api.post("/crm/v3/objects/contacts/gdpr-delete", {"objectId": "424242"}).status_code == 404
    state = api.session.get(f"{api.running.admin_url}/state", timeout=5).json()
    assert state["gdpr_blocklist"] == ["gone@example.org", "never@example.org"]


# -- associations v4 -----------------------------------------------------------------------------
def test_default_association_is_created_in_both_directions(api: Api) -> None:
    contact = api.contact("a@example.org")
    deal = api.post("/crm/v3/objects/deals", {"properties": {"dealname": "Gift"}}).json()["id"]
    response = api.call("PUT", f"/crm/v4/objects/contact/{contact}/associations/default/deal/{deal}")
    assert response.status_code == 200
    specs = [r["associationSpec"]["associationTypeId"] for r in response.json()["results"]]
    assert specs == [4, 3]
    back = api.call("GET", f"/crm/v4/objects/deals/{deal}/associations/contacts").json()["results"]
    assert back == [
        {
            "toObjectId": int(contact),
            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}],
        }
    ]
    assert (
        api.call("PUT", f"/crm/v4/objects/contacts/{contact}/associations/default/deals/999999").status_code
        == 404
    )


def test_labelled_associations_batch_create_read_and_archive(api: Api) -> None:
    contacts = [api.contact(f"c{i}@example.org") for i in range(2)]
    deal = api.post("/crm/v3/objects/deals", {"properties": {"dealname": "Gift"}}).json()["id"]
    label = api.post(
        "/crm/v4/associations/contacts/deals/labels", {"label": "Soft credit", "name": "soft_credit"}
    )
    type_id = label.json()["results"][0]["typeId"]
    labels = api.call("GET", "/crm/v4/associations/contacts/deals/labels").json()["results"]
    assert {"category": "USER_DEFINED", "typeId": type_id, "label": "Soft credit"} in labels
    spec = {"associationCategory": "USER_DEFINED", "associationTypeId": type_id}
    inputs = [{"from": {"id": c}, "to": {"id": deal}, "types": [spec]} for c in contacts]
    created = api.post("/crm/v4/associations/contacts/deals/batch/create", {"inputs": inputs})
    assert created.status_code == 201
    assert created.json()["results"][0]["labels"] == ["Soft credit"]
    bad = api.post(
        "/crm/v4/associations/contacts/deals/batch/create",
        {"inputs": [inputs[0], {"from": {"id": "999999"}, "to": {"id": deal}, "types": [spec]}]},
    )
    assert (bad.status_code, bad.json()["numErrors"]) == (207, 1)
    wrong_type = api.call(
        "PUT",
        f"/crm/v4/objects/contacts/{contacts[0]}/associations/deals/{deal}",
        [{**spec, "associationTypeId": 77777}],
    )
    assert wrong_type.status_code == 400

    read = api.post("/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": deal}]}).json()[
        "results"
    ][0]
    assert sorted(t["toObjectId"] for t in read["to"]) == sorted(int(c) for c in contacts)
    assert read["to"][0]["associationTypes"][0]["category"] == "USER_DEFINED"
    api.settings(association_batch_read_max_inputs=2)
    assert (
        api.post("/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": deal}] * 3}).status_code
        == 400
    )

    archive = {"inputs": [{"from": {"id": contacts[0]}, "to": [{"id": deal}]}]}
    assert api.post("/crm/v4/associations/contacts/deals/batch/archive", archive).status_code == 204
    remove_label = {"inputs": [{"from": {"id": contacts[1]}, "to": {"id": deal}, "types": [spec]}]}
    assert (
        api.post("/crm/v4/associations/contacts/deals/batch/labels/archive", remove_label).status_code == 204
    )
    assert api.call("GET", f"/crm/v4/objects/deals/{deal}/associations/contacts").json()["results"] == []


def test_batch_create_can_associate_on_create(api: Api) -> None:
    contact = api.contact("a@example.org")
    response = api.post(
        "/crm/v3/objects/deals/batch/create",
        {
            "inputs": [
                {
                    "properties": {"dealname": "Gift"},
                    "associations": [
                        {
                            "to": {"id": contact},
                            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                        }
                    ],
                }
            ]
        },
    )
    assert response.status_code == 201, response.text
    deal = response.json()["results"][0]["id"]
    links = api.call("GET", f"/crm/v4/objects/contacts/{contact}/associations/deals").json()["results"]
    assert links[0]["toObjectId"] == int(deal)


# -- subscriptions -------------------------------------------------------------------------------
def test_v3_subscribe_needs_a_legal_basis_and_reports_status(api: Api) -> None:
    body = {"emailAddress": "a@example.org", "subscriptionId": "1001"}
    missing = api.post("/communication-preferences/v3/subscribe", body)
    assert missing.status_code == 400
    _is_error_body(missing.json(), "VALIDATION_ERROR")
    ok = api.post(
        "/communication-preferences/v3/subscribe",
        {**body, "legalBasis": "CONSENT_WITH_NOTICE", "legalBasisExplanation": "Form"},
    )
    assert ok.status_code == 200
    assert (ok.json()["status"], ok.json()["legalBasis"]) == ("SUBSCRIBED", "CONSENT_WITH_NOTICE")
    again = api.post("/communication-preferences/v3/subscribe", {**body, "legalBasis": "CONSENT_WITH_NOTICE"})
    assert again.status_code == 400
    bad_basis = api.post(
        "/communication-preferences/v3/subscribe", {**body, "subscriptionId": "1002", "legalBasis": "BECAUSE"}
    )
    assert bad_basis.status_code == 400
    statuses = api.call("GET", "/communication-preferences/v3/status/email/a@example.org").json()
    assert {s["id"]: s["status"] for s in statuses["subscriptionStatuses"]} == {
        "1001": "SUBSCRIBED",
        "1002": "NOT_SUBSCRIBED",
        "1003": "NOT_SUBSCRIBED",
    }
    assert api.post("/communication-preferences/v3/unsubscribe", body).json()["status"] == "NOT_SUBSCRIBED"
    definitions = api.call("GET", "/communication-preferences/v3/definitions").json()[
        "subscriptionDefinitions"
    ]
    assert [d["id"] for d in definitions] == ["1001", "1002", "1003"]


def test_v4_batch_write_read_and_unsubscribe_all(api: Api) -> None:
    inputs = [
        {
            "subscriberIdString": "a@example.org",
            "subscriptionId": 1001,
            "statusState": "SUBSCRIBED",
            "channel": "EMAIL",
            "legalBasis": "LEGITIMATE_INTEREST_CLIENT",
            "legalBasisExplanation": "Donor",
        },
        {
            "subscriberIdString": "b@example.org",
            "subscriptionId": 9999,
            "statusState": "SUBSCRIBED",
            "channel": "EMAIL",
            "legalBasis": "NON_GDPR",
        },
    ]
    written = api.post("/communication-preferences/v4/statuses/batch/write", {"inputs": inputs})
    assert written.status_code == 207
    assert written.json()["numErrors"] == 1
    assert written.json()["results"][0]["legalBasis"] == "LEGITIMATE_INTEREST_CLIENT"
    read = api.post(
        "/communication-preferences/v4/statuses/batch/read", {"inputs": ["a@example.org"]}, channel="EMAIL"
    )
    states = {r["subscriptionId"]: r["status"] for r in read.json()["results"]}
    assert states == {1001: "SUBSCRIBED", 1002: "NOT_SPECIFIED", 1003: "NOT_SPECIFIED"}
    api.post("/communication-preferences/v4/statuses/a@example.org/unsubscribe-all", channel="EMAIL")
    after = api.call("GET", "/communication-preferences/v4/statuses/a@example.org", channel="EMAIL").json()[
        "results"
    ]
    assert {r["status"] for r in after} == {"UNSUBSCRIBED"}


# -- admin ---------------------------------------------------------------------------------------
def test_seed_loads_records_visible_through_the_api_and_state(api: Api) -> None:
    seeded = api.session.post(
        f"{api.running.admin_url}/seed/contacts",
        json=[{"email": "s@example.org", "firstname": "S", "donor_segment": "major"}],
        timeout=5,
    )
    assert seeded.json() == {"loaded": 1}
    found = api.post(
        "/crm/v3/objects/contacts/search",
        {
            "filterGroups": [
                {"filters": [{"propertyName": "donor_segment", "operator": "EQ", "value": "major"}]}
            ]
        },
    )
    assert found.json()["total"] == 1
    state = api.session.get(f"{api.running.admin_url}/state", timeout=5).json()
    assert state["objects"]["contacts"]["count"] == 1
    assert api.session.post(f"{api.running.admin_url}/seed/widgets", json=[], timeout=5).status_code == 404
