"""The Salesforce emulator behaves like Salesforce: OAuth, REST and Collections upserts, Bulk API 2.0,
SOQL paging, describe, limits and the documented error bodies."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.common.runner import Running, Sandbox
from sandbox.emulators.salesforce import SalesforceEmulator

V = "/services/data/v59.0"
CLIENT_ID = "donor-sync-consumer-key"
USER = "integration@donor-sync.test"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox], private_key: rsa.RSAPrivateKey) -> Sandbox:
    return start_emulators(SalesforceEmulator({"jwt_public_key": _public_pem(private_key)}))


@pytest.fixture
def sf(box: Sandbox) -> Iterator[Running]:
    running = box["salesforce"]
    emulator = running.emulator
    saved = dict(emulator.settings)
    emulator.reset()
    yield running
    emulator.settings.clear()
    emulator.settings.update(saved)
    emulator.reset()


def _assertion(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    body = {
        "iss": CLIENT_ID,
        "sub": USER,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
    }
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256")


def _token(https: requests.Session, sf: Running, **form: str) -> requests.Response:
    return https.post(f"{sf.base_url}/services/oauth2/token", data=form, timeout=5)


def _jwt_token(
    https: requests.Session, sf: Running, key: rsa.RSAPrivateKey, **claims: Any
) -> requests.Response:
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    return _token(https, sf, grant_type=grant, assertion=_assertion(key, **claims))


@pytest.fixture
def api(sf: Running, https: requests.Session) -> requests.Session:
    """A session authenticated with client credentials."""
    token = _token(
        https,
        sf,
        grant_type="client_credentials",
        client_id=CLIENT_ID,
        client_secret="donor-sync-consumer-secret",
    ).json()["access_token"]
    https.headers["Authorization"] = f"Bearer {token}"
    return https


def _settings(sf: Running, **changes: Any) -> None:
    sf.emulator.settings.update(changes)


def _upsert(
    api: requests.Session, sf: Running, obj: str, key: str, body: dict[str, Any], v: str = V
) -> requests.Response:
    return api.patch(f"{sf.base_url}{v}/sobjects/{obj}/Donor_Sync_Id__c/{key}", json=body, timeout=5)


# -- OAuth -------------------------------------------------------------------------------------


def test_jwt_bearer_checks_the_signature_against_the_configured_key(
    sf: Running, https: requests.Session, private_key: rsa.RSAPrivateKey
) -> None:
    ok = _jwt_token(https, sf, private_key)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["instance_url"] == sf.base_url
    assert body["token_type"] == "Bearer"
    assert {"access_token", "id", "issued_at", "signature", "scope"} <= set(body)
    assert "refresh_token" not in body, "the JWT bearer flow issues no refresh token"

    forged = _jwt_token(https, sf, _key())
    assert (forged.status_code, forged.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "invalid assertion"},
    )


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        pytest.param({"aud": "https://evil.example"}, "invalid_grant", "audience is invalid", id="audience"),
        pytest.param(
            {"exp": int(time.time()) - 60}, "invalid_grant", "expired authorization code", id="expired"
        ),
        pytest.param({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid", id="issuer"),
        pytest.param(
            {"sub": "nobody@x.org"}, "invalid_grant", "user hasn't approved this consumer", id="user"
        ),
    ],
)
def test_jwt_bearer_rejections(
    sf: Running,
    https: requests.Session,
    private_key: rsa.RSAPrivateKey,
    claims: dict[str, Any],
    error: str,
    description: str,
) -> None:
    response = _jwt_token(https, sf, private_key, **claims)
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_jwt_audience_may_be_the_instance_itself(
    sf: Running, https: requests.Session, private_key: rsa.RSAPrivateKey
) -> None:
    assert _jwt_token(https, sf, private_key, aud=sf.base_url).status_code == 200


def test_client_credentials_in_the_form_or_basic_auth(sf: Running, https: requests.Session) -> None:
    secret = "donor-sync-consumer-secret"
    assert _token(https, sf, grant_type="client_credentials", client_id=CLIENT_ID, client_secret=secret).ok
    basic = https.post(
        f"{sf.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, secret),
        timeout=5,
    )
    assert basic.ok
    bad = _token(https, sf, grant_type="client_credentials", client_id=CLIENT_ID, client_secret="wrong")
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_client")


def test_refresh_token_grant_and_unsupported_grants(sf: Running, https: requests.Session) -> None:
    _settings(sf, refresh_tokens=["5Aep861-refresh"])
    ok = _token(https, sf, grant_type="refresh_token", refresh_token="5Aep861-refresh", client_id=CLIENT_ID)
    assert ok.status_code == 200
    assert ok.json()["access_token"]
    unknown = _token(https, sf, grant_type="refresh_token", refresh_token="nope", client_id=CLIENT_ID)
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")
    password = _token(https, sf, grant_type="authorization_code", code="x")
    assert password.json() == {
        "error": "unsupported_grant_type",
        "error_description": "grant type not supported",
    }


# -- sessions and the API allocation -------------------------------------------------------------

INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_missing_bad_and_expired_tokens_are_401_invalid_session_id(
    sf: Running, https: requests.Session, api: requests.Session
) -> None:
    url = f"{sf.base_url}{V}/limits"
    assert api.get(url, timeout=5).status_code == 200
    anonymous = requests.get(url, verify=https.verify, timeout=5)
    assert (anonymous.status_code, anonymous.json()) == (401, INVALID_SESSION)
    bogus = requests.get(url, headers={"Authorization": "Bearer 00Dxx!nope"}, verify=https.verify, timeout=5)
    assert (bogus.status_code, bogus.json()) == (401, INVALID_SESSION)
    _settings(sf, token_ttl_s=0.2)
    short = _token(
        https,
        sf,
        grant_type="client_credentials",
        client_id=CLIENT_ID,
        client_secret="donor-sync-consumer-secret",
    ).json()["access_token"]
    time.sleep(0.3)
    expired = requests.get(url, headers={"Authorization": f"Bearer {short}"}, verify=https.verify, timeout=5)
    assert (expired.status_code, expired.json()) == (401, INVALID_SESSION)


def test_expired_token_fault_answers_exactly_invalid_session_id(sf: Running, api: requests.Session) -> None:
    api.put(
        f"{sf.admin_url}/faults", json=[{"kind": "expired_token", "count": 1, "path": "/query"}], timeout=5
    )
    response = api.get(f"{sf.base_url}{V}/query", params={"q": "SELECT Id FROM Contact"}, timeout=5)
    assert (response.status_code, response.json()) == (401, INVALID_SESSION)
    assert api.get(f"{sf.base_url}{V}/query", params={"q": "SELECT Id FROM Contact"}, timeout=5).ok


def test_status_fault_uses_the_json_array_error_shape(sf: Running, api: requests.Session) -> None:
    api.put(f"{sf.admin_url}/faults", json=[{"kind": "status", "status": 503, "count": 1}], timeout=5)
    response = api.get(f"{sf.base_url}{V}/limits", timeout=5)
    assert response.status_code == 503
    assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_limit_info_header_on_every_response_and_limits_resource(sf: Running, api: requests.Session) -> None:
    first = api.get(f"{sf.base_url}{V}/limits", timeout=5)
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert first.json()["DailyApiRequests"] == {"Max": 100000, "Remaining": 99999}
    assert {"DailyBulkApiBatches", "DailyBulkV2QueryJobs"} <= set(first.json())
    failing = api.get(f"{sf.base_url}{V}/query", params={"q": "SELECT Nope FROM Contact"}, timeout=5)
    assert failing.status_code == 400
    assert failing.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    versions = api.get(f"{sf.base_url}/services/data", timeout=5)
    assert versions.headers["Sforce-Limit-Info"] == "api-usage=2/100000", "the versions list is not counted"
    assert {"version": "59.0", "label": "v59.0", "url": "/services/data/v59.0"} in versions.json()


def test_daily_allocation_spent_is_403_request_limit_exceeded_without_retry_after(
    sf: Running, api: requests.Session
) -> None:
    _settings(sf, daily_api_requests=3)
    statuses = [api.get(f"{sf.base_url}{V}/limits", timeout=5) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 403]
    limited = statuses[3]
    assert limited.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert "Retry-After" not in limited.headers
    assert limited.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    _settings(sf, api_window_s=0.2)
    time.sleep(0.3)
    assert api.get(f"{sf.base_url}{V}/limits", timeout=5).status_code == 200, "the window is rolling"


def test_unsupported_api_version_is_404(sf: Running, api: requests.Session) -> None:
    response = api.get(f"{sf.base_url}/services/data/v12.0/limits", timeout=5)
    assert response.status_code == 404
    assert response.json()[0]["errorCode"] == "NOT_FOUND"


# -- REST upsert by external id ---------------------------------------------------------------------


def test_upsert_creates_201_then_updates_200_with_body(sf: Running, api: requests.Session) -> None:
    created = _upsert(api, sf, "Contact", "D-1", {"LastName": "Lovelace", "Email": "ada@example.org"})
    assert created.status_code == 201
    body = created.json()
    assert body["created"] is True
    assert body["success"] is True
    assert body["errors"] == []
    assert body["id"].startswith("003")
    assert len(body["id"]) == 18
    updated = _upsert(api, sf, "Contact", "D-1", {"FirstName": "Ada"})
    assert updated.status_code == 200
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    record = api.get(f"{sf.base_url}{V}/sobjects/Contact/{body['id']}", timeout=5).json()
    assert (record["Name"], record["Email"], record["Donor_Sync_Id__c"]) == (
        "Ada Lovelace",
        "ada@example.org",
        "D-1",
    )


def test_upsert_update_before_api_46_is_204_no_content(sf: Running, api: requests.Session) -> None:
    created = _upsert(api, sf, "Contact", "D-1", {"LastName": "L"}, v="/services/data/v45.0")
    assert created.status_code == 201
    assert "created" not in created.json(), "the created flag arrived in API 46.0"
    old = _upsert(api, sf, "Contact", "D-1", {"LastName": "M"}, v="/services/data/v45.0")
    assert (old.status_code, old.content) == (204, b"")


def test_upsert_with_several_matches_is_300_and_writes_nothing(sf: Running, api: requests.Session) -> None:
    api.post(
        f"{sf.admin_url}/seed/Contact",
        json=[{"LastName": "A", "Legacy_Id__c": "L-1"}, {"LastName": "B", "Legacy_Id__c": "L-1"}],
        timeout=5,
    )
    response = api.patch(
        f"{sf.base_url}{V}/sobjects/Contact/Legacy_Id__c/L-1", json={"LastName": "C"}, timeout=5
    )
    assert response.status_code == 300
    urls = response.json()
    assert len(urls) == 2
    assert all(u.startswith(f"{V}/sobjects/Contact/003") for u in urls)
    names = sorted(r["LastName"] for r in sf.emulator.snapshot()["records"]["Contact"])
    assert names == ["A", "B"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        pytest.param("Contact/Donor_Sync_Id__c/D-9", {"Id": "003x"}, 400, "INVALID_FIELD", id="id-in-body"),
        pytest.param(
            "Contact/Donor_Sync_Id__c/D-9", {"Nope__c": 1}, 400, "INVALID_FIELD", id="unknown-field"
        ),
        pytest.param(
            "Contact/Donor_Sync_Id__c/D-9", {"Email": "x@y.org"}, 400, "REQUIRED_FIELD_MISSING", id="required"
        ),
        pytest.param(
            "Contact/Donor_Sync_Id__c/D-9",
            {"LastName": "x", "Email": "not-an-email"},
            400,
            "INVALID_EMAIL_ADDRESS",
            id="email",
        ),
        pytest.param(
            "Contact/Donor_Sync_Id__c/D-9",
            {"LastName": "x", "CreatedDate": "2020-01-01T00:00:00Z"},
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            id="read-only",
        ),
        pytest.param(
            "npe03__Recurring_Donation__c/Donor_Sync_Id__c/R-1",
            {"npe03__Installment_Period__c": "Fortnightly"},
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            id="restricted-picklist",
        ),
        pytest.param(
            "Opportunity/Donor_Sync_Id__c/O-1",
            {"Name": "Gift", "StageName": "Closed Won", "CloseDate": "2024-13-45"},
            400,
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            id="bad-date",
        ),
        pytest.param("Contact/Email/x@y.org", {"LastName": "x"}, 404, "NOT_FOUND", id="not-external-id"),
        pytest.param("Nope__c/Donor_Sync_Id__c/1", {"LastName": "x"}, 404, "NOT_FOUND", id="unknown-object"),
    ],
)
def test_upsert_errors_are_json_arrays(
    sf: Running, api: requests.Session, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    response = api.patch(f"{sf.base_url}{V}/sobjects/{path}", json=body, timeout=5)
    assert response.status_code == status, response.text
    errors = response.json()
    assert isinstance(errors, list)
    assert errors[0]["errorCode"] == code
    assert errors[0]["message"]


def test_upsert_update_only_does_not_create(sf: Running, api: requests.Session) -> None:
    url = f"{sf.base_url}{V}/sobjects/Contact/Donor_Sync_Id__c/D-404?updateOnly=true"
    assert api.patch(url, json={"LastName": "x"}, timeout=5).status_code == 404


def test_duplicate_value_on_a_unique_field(sf: Running, api: requests.Session) -> None:
    first = _upsert(api, sf, "Contact", "D-1", {"LastName": "A", "Stripe_Customer_Id__c": "cus_1"}).json()[
        "id"
    ]
    clash = _upsert(api, sf, "Contact", "D-2", {"LastName": "B", "Stripe_Customer_Id__c": "CUS_1"})
    assert clash.status_code == 400
    error = clash.json()[0]
    assert error["errorCode"] == "DUPLICATE_VALUE"
    assert error["message"] == (
        f"duplicate value found: Stripe_Customer_Id__c duplicates value on record with id: {first}"
    )
    assert error["fields"] == ["Stripe_Customer_Id__c"]


def test_unable_to_lock_row_for_listed_keys_and_at_a_rate(sf: Running, api: requests.Session) -> None:
    _settings(sf, unable_to_lock_keys=["D-LOCKED"])
    locked = _upsert(api, sf, "Contact", "D-LOCKED", {"LastName": "x"})
    assert (locked.status_code, locked.json()[0]["errorCode"]) == (400, "UNABLE_TO_LOCK_ROW")
    assert _upsert(api, sf, "Contact", "D-FREE", {"LastName": "x"}).status_code == 201
    batch = api.patch(
        f"{sf.base_url}{V}/composite/sobjects/Contact/Donor_Sync_Id__c",
        json={"records": [_contact("D-LOCKED"), _contact("D-OTHER")]},
        timeout=5,
    ).json()
    assert [r["success"] for r in batch] == [False, True]
    assert batch[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    _settings(sf, unable_to_lock_keys=[], unable_to_lock_rate=1.0)
    assert (
        _upsert(api, sf, "Contact", "D-FREE", {"LastName": "y"}).json()[0]["errorCode"]
        == "UNABLE_TO_LOCK_ROW"
    )


def test_relationship_by_external_id_links_a_contact_to_its_household(
    sf: Running, api: requests.Session
) -> None:
    household = _upsert(
        api, sf, "Account", "H-1", {"Name": "Lovelace Household", "RecordTypeId": None}
    ).json()
    contact = _upsert(
        api, sf, "Contact", "D-1", {"LastName": "L", "Account": {"Donor_Sync_Id__c": "H-1"}}
    ).json()
    record = api.get(f"{sf.base_url}{V}/sobjects/Contact/{contact['id']}", timeout=5).json()
    assert record["AccountId"] == household["id"]
    missing = _upsert(api, sf, "Contact", "D-2", {"LastName": "L", "Account": {"Donor_Sync_Id__c": "H-404"}})
    assert missing.json()[0]["errorCode"] == "INVALID_FIELD"


def test_accounts_default_to_the_household_record_type(sf: Running, api: requests.Session) -> None:
    created = _upsert(api, sf, "Account", "H-1", {"Name": "Doe Household"}).json()
    account = api.get(f"{sf.base_url}{V}/sobjects/Account/{created['id']}", timeout=5).json()
    describe = api.get(f"{sf.base_url}{V}/sobjects/Account/describe", timeout=5).json()
    household = next(rt for rt in describe["recordTypeInfos"] if rt["name"] == "Household Account")
    assert account["RecordTypeId"] == household["recordTypeId"]
    assert household["defaultRecordTypeMapping"] is True
    wrong = _upsert(api, sf, "Account", "H-2", {"Name": "X", "RecordTypeId": "012000000000XXXAAA"})
    assert wrong.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_recurring_donation_with_npsp_fields(sf: Running, api: requests.Session) -> None:
    contact = _upsert(api, sf, "Contact", "D-1", {"LastName": "Doe"}).json()["id"]
    body = {
        "npe03__Contact__c": contact,
        "npe03__Amount__c": 25,
        "npe03__Installment_Period__c": "Monthly",
        "npsp__Status__c": "Active",
        "npe03__Date_Established__c": "2024-01-15",
    }
    created = _upsert(api, sf, "npe03__Recurring_Donation__c", "R-1", body)
    assert created.status_code == 201, created.text
    record = api.get(
        f"{sf.base_url}{V}/sobjects/npe03__Recurring_Donation__c/Donor_Sync_Id__c/R-1", timeout=5
    ).json()
    assert (record["npe03__Amount__c"], record["npe03__Contact__c"]) == (25.0, contact)
    assert record["attributes"]["type"] == "npe03__Recurring_Donation__c"
    dangling = _upsert(
        api, sf, "npe03__Recurring_Donation__c", "R-2", {"npe03__Contact__c": "003000000000999AAA"}
    )
    assert dangling.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_get_by_external_id_404_and_300(sf: Running, api: requests.Session) -> None:
    missing = api.get(f"{sf.base_url}{V}/sobjects/Contact/Donor_Sync_Id__c/D-404", timeout=5)
    assert (missing.status_code, missing.json()[0]["errorCode"]) == (404, "NOT_FOUND")
    api.post(
        f"{sf.admin_url}/seed/Contact",
        json=[{"LastName": "A", "Legacy_Id__c": "L-1"}, {"LastName": "B", "Legacy_Id__c": "l-1"}],
        timeout=5,
    )
    several = api.get(f"{sf.base_url}{V}/sobjects/Contact/Legacy_Id__c/L-1", timeout=5)
    assert several.status_code == 300
    assert len(several.json()) == 2


def test_seed_validates_records_and_state_counts_them(sf: Running, api: requests.Session) -> None:
    bad = api.post(f"{sf.admin_url}/seed/Contact", json=[{"Email": "x@y.org"}], timeout=5)
    assert bad.status_code == 400
    assert api.post(f"{sf.admin_url}/seed/Nope__c", json=[], timeout=5).status_code == 404
    api.post(f"{sf.admin_url}/seed/Account", json=[{"Name": "Household"}], timeout=5)
    state = api.get(f"{sf.admin_url}/state", timeout=5).json()
    assert state["name"] == "salesforce"
    assert state["counts"] == {
        "Account": 1,
        "Contact": 0,
        "Opportunity": 0,
        "npe03__Recurring_Donation__c": 0,
    }


# -- sObject Collections ----------------------------------------------------------------------------


def _collection(
    api: requests.Session, sf: Running, records: list[dict[str, Any]], all_or_none: bool
) -> requests.Response:
    return api.patch(
        f"{sf.base_url}{V}/composite/sobjects/Contact/Donor_Sync_Id__c",
        json={"allOrNone": all_or_none, "records": records},
        timeout=5,
    )


def _contact(key: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Contact"}, "Donor_Sync_Id__c": key, "LastName": "Doe", **fields}


def test_collection_upsert_results_in_input_order_with_partial_success(
    sf: Running, api: requests.Session
) -> None:
    _upsert(api, sf, "Contact", "D-2", {"LastName": "Existing"})
    response = _collection(
        api, sf, [_contact("D-1"), _contact("D-2"), _contact("D-3", Email="broken"), _contact("D-4")], False
    )
    assert response.status_code == 200
    results = response.json()
    assert [r["success"] for r in results] == [True, True, False, True]
    assert [r.get("created") for r in results] == [True, False, None, True]
    assert results[2]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert sf.emulator.snapshot()["counts"]["Contact"] == 3


def test_collection_all_or_none_rolls_everything_back(sf: Running, api: requests.Session) -> None:
    _upsert(api, sf, "Contact", "D-2", {"LastName": "Before"})
    results = _collection(
        api, sf, [_contact("D-1"), _contact("D-2", LastName="After"), _contact("D-3", LastName=None)], True
    ).json()
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    records = sf.emulator.snapshot()["records"]["Contact"]
    assert [(r["Donor_Sync_Id__c"], r["LastName"]) for r in records] == [("D-2", "Before")]


def test_collection_cap_is_a_setting_and_enforced(sf: Running, api: requests.Session) -> None:
    assert sf.emulator.settings["collections_max_records"] == 200
    too_many = _collection(api, sf, [_contact(f"D-{i}") for i in range(201)], False)
    assert too_many.status_code == 400
    assert too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert _collection(api, sf, [_contact(f"D-{i}") for i in range(200)], False).status_code == 200
    _settings(sf, collections_max_records=2)
    assert _collection(api, sf, [_contact(f"D-{i}") for i in range(3)], False).status_code == 400


def test_collection_duplicate_external_ids_in_one_request_fail(sf: Running, api: requests.Session) -> None:
    results = _collection(api, sf, [_contact("D-1"), _contact("d-1"), _contact("D-2")], False).json()
    assert [r["success"] for r in results] == [False, False, True]
    assert results[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"


def _create(api: requests.Session, sf: Running, records: list[dict[str, Any]], all_or_none: bool) -> Any:
    body = {"allOrNone": all_or_none, "records": records}
    return api.post(f"{sf.base_url}{V}/composite/sobjects", json=body, timeout=5)


def _update(api: requests.Session, sf: Running, records: list[dict[str, Any]], all_or_none: bool) -> Any:
    body = {"allOrNone": all_or_none, "records": records}
    return api.patch(f"{sf.base_url}{V}/composite/sobjects", json=body, timeout=5)


def _delete(api: requests.Session, sf: Running, ids: list[str], all_or_none: bool = False) -> Any:
    params = {"ids": ",".join(ids), "allOrNone": str(all_or_none).lower()}
    return api.delete(f"{sf.base_url}{V}/composite/sobjects", params=params, timeout=5)


def test_collection_create_of_several_types_answers_in_order(sf: Running, api: requests.Session) -> None:
    household = {"attributes": {"type": "Account"}, "Name": "Doe Household"}
    response = _create(
        api,
        sf,
        [
            household,
            {"attributes": {"type": "Contact"}, "LastName": "Doe", "Email": "broken"},
            {"attributes": {"type": "Contact"}, "LastName": "Roe", "Donor_Sync_Id__c": "D-1"},
            {"attributes": {"type": "Contact"}, "LastName": "Poe", "Id": "003000000000001AAA"},
            {"LastName": "No type"},
        ],
        False,
    )
    assert response.status_code == 200
    results = response.json()
    assert [r["success"] for r in results] == [True, False, True, False, False]
    assert results[0]["id"].startswith("001")
    assert results[2]["id"].startswith("003")
    assert results[0] == {"id": results[0]["id"], "success": True, "errors": []}, "no created flag"
    assert results[1] == {
        "success": False,
        "errors": [
            {
                "statusCode": "INVALID_EMAIL_ADDRESS",
                "message": "Email: invalid email address: broken",
                "fields": ["Email"],
            }
        ],
    }
    assert results[3]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert results[4]["errors"][0]["statusCode"] == "INVALID_TYPE"
    counts = sf.emulator.snapshot()["counts"]
    assert (counts["Account"], counts["Contact"]) == (1, 1)

    again = _create(
        api, sf, [{"attributes": {"type": "Contact"}, "LastName": "X", "Donor_Sync_Id__c": "d-1"}], False
    )
    error = again.json()[0]["errors"][0]
    assert (error["statusCode"], error["fields"]) == ("DUPLICATE_VALUE", ["Donor_Sync_Id__c"])
    assert error["message"].endswith(f"duplicates value on record with id: {results[2]['id']}")


def test_collection_create_all_or_none_keeps_nothing(sf: Running, api: requests.Session) -> None:
    records = [_contact("D-1"), _contact("D-2", LastName=None)]
    results = _create(api, sf, records, True).json()
    assert [r["errors"][0]["statusCode"] for r in results] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "REQUIRED_FIELD_MISSING",
    ]
    assert sf.emulator.snapshot()["counts"]["Contact"] == 0
    assert _create(api, sf, [_contact(f"D-{i}") for i in range(201)], False).status_code == 400


def test_collection_update_by_id(sf: Running, api: requests.Session) -> None:
    first = _upsert(api, sf, "Contact", "D-1", {"LastName": "Doe"}).json()["id"]
    gone = _upsert(api, sf, "Contact", "D-2", {"LastName": "Gone"}).json()["id"]
    assert _delete(api, sf, [gone]).json()[0]["success"] is True
    never = "003000000000999AAA"
    response = _update(
        api,
        sf,
        [
            {"attributes": {"type": "Contact"}, "Id": first, "FirstName": "Jane"},
            {"attributes": {"type": "Contact"}, "Id": gone, "FirstName": "X"},
            {"attributes": {"type": "Contact"}, "Id": never, "FirstName": "X"},
            {"attributes": {"type": "Contact"}, "Id": "001000000000001AAA", "FirstName": "X"},
            {"attributes": {"type": "Contact"}, "FirstName": "No id"},
        ],
        False,
    )
    results = response.json()
    assert results[0] == {"id": first, "success": True, "errors": []}
    assert [(r.get("id"), r["errors"][0]["statusCode"]) for r in results[1:]] == [
        (gone, "ENTITY_IS_DELETED"),
        (never, "INVALID_CROSS_REFERENCE_KEY"),
        ("001000000000001AAA", "MALFORMED_ID"),
        (None, "MISSING_ARGUMENT"),
    ]
    record = api.get(f"{sf.base_url}{V}/sobjects/Contact/{first}", timeout=5).json()
    assert (record["Name"], record["Donor_Sync_Id__c"]) == ("Jane Doe", "D-1")

    rolled = _update(
        api,
        sf,
        [
            {"attributes": {"type": "Contact"}, "Id": first, "FirstName": "Janet"},
            {"attributes": {"type": "Contact"}, "Id": first, "Email": "broken"},
        ],
        True,
    ).json()
    assert rolled[0] == {
        "id": first,
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                "AllOrNone header",
                "fields": [],
            }
        ],
    }
    assert api.get(f"{sf.base_url}{V}/sobjects/Contact/{first}", timeout=5).json()["FirstName"] == "Jane"


def test_collection_delete_by_ids(sf: Running, api: requests.Session) -> None:
    ids = [_upsert(api, sf, "Contact", f"D-{i}", {"LastName": "Doe"}).json()["id"] for i in range(3)]
    household = _upsert(api, sf, "Account", "H-1", {"Name": "Doe Household"}).json()["id"]
    results = _delete(api, sf, [ids[0], household, "not-an-id"]).json()
    assert results[:2] == [
        {"id": ids[0], "success": True, "errors": []},
        {"id": household, "success": True, "errors": []},
    ]
    assert results[2]["errors"][0]["statusCode"] == "MALFORMED_ID"
    again = _delete(api, sf, [ids[0]]).json()
    assert (again[0]["id"], again[0]["success"], again[0]["errors"][0]["statusCode"]) == (
        ids[0],
        False,
        "ENTITY_IS_DELETED",
    )
    rolled = _delete(api, sf, [ids[1], ids[0]], all_or_none=True).json()
    assert [r["errors"][0]["statusCode"] for r in rolled] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "ENTITY_IS_DELETED",
    ]
    live = {r["Id"] for r in sf.emulator.snapshot()["records"]["Contact"]}
    assert live == {ids[1], ids[2]}, "the rolled-back delete left D-1 in place"
    _settings(sf, collections_max_records=2)
    assert _delete(api, sf, ids).json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert _delete(api, sf, []).status_code == 400


def test_collection_retrieve_by_ids(sf: Running, api: requests.Session) -> None:
    first = _upsert(api, sf, "Contact", "D-1", {"LastName": "Doe", "Email": "jd@example.org"}).json()["id"]
    response = api.get(
        f"{sf.base_url}{V}/composite/sobjects/Contact",
        params={"ids": f"{first},003000000000999AAA", "fields": "email,LastName"},
        timeout=5,
    )
    assert response.json() == [
        {
            "attributes": {"type": "Contact", "url": f"{V}/sobjects/Contact/{first}"},
            "Email": "jd@example.org",
            "LastName": "Doe",
        },
        None,
    ]
    bad = api.get(
        f"{sf.base_url}{V}/composite/sobjects/Contact", params={"ids": first, "fields": "Nope"}, timeout=5
    )
    assert (bad.status_code, bad.json()[0]["errorCode"]) == (400, "INVALID_FIELD")


def test_single_record_create_update_and_delete_by_id(sf: Running, api: requests.Session) -> None:
    url = f"{sf.base_url}{V}/sobjects/Contact"
    created = api.post(url, json={"LastName": "Doe", "Donor_Sync_Id__c": "D-1"}, timeout=5)
    assert created.status_code == 201
    record_id = created.json()["id"]
    assert created.json() == {"id": record_id, "success": True, "errors": []}
    missing = api.post(url, json={"Email": "x@example.org"}, timeout=5)
    assert (missing.status_code, missing.json()[0]["errorCode"]) == (400, "REQUIRED_FIELD_MISSING")
    assert missing.json()[0]["fields"] == ["LastName"]

    edited = api.patch(f"{url}/{record_id}", json={"FirstName": "Jane"}, timeout=5)
    assert (edited.status_code, edited.content) == (204, b"")
    assert api.get(f"{url}/{record_id}", timeout=5).json()["Name"] == "Jane Doe"
    read_only = api.patch(f"{url}/{record_id}", json={"Name": "X"}, timeout=5)
    assert read_only.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    assert api.delete(f"{url}/{record_id}", timeout=5).status_code == 204
    for response in (
        api.get(f"{url}/{record_id}", timeout=5),
        api.patch(f"{url}/{record_id}", json={"FirstName": "X"}, timeout=5),
        api.delete(f"{url}/{record_id}", timeout=5),
    ):
        assert (response.status_code, response.json()[0]["errorCode"]) == (404, "ENTITY_IS_DELETED")
    nope = api.post(f"{sf.base_url}{V}/sobjects/Nope__c", json={"LastName": "x"}, timeout=5)
    assert (nope.status_code, nope.json()[0]["errorCode"]) == (404, "NOT_FOUND")


# -- Bulk API 2.0 --------------------------------------------------------------------------------


def _create_job(api: requests.Session, sf: Running, **spec: Any) -> requests.Response:
    body = {
        "object": "Contact",
        "operation": "upsert",
        "externalIdFieldName": "Donor_Sync_Id__c",
        "contentType": "CSV",
    }
    body.update(spec)
    return api.post(f"{sf.base_url}{V}/jobs/ingest", json=body, timeout=5)


def _upload(api: requests.Session, sf: Running, job: str, data: str) -> requests.Response:
    return api.put(
        f"{sf.base_url}{V}/jobs/ingest/{job}/batches",
        data=data.encode(),
        headers={"Content-Type": "text/csv"},
        timeout=5,
    )


def _state(api: requests.Session, sf: Running, job: str, state: str) -> requests.Response:
    return api.patch(f"{sf.base_url}{V}/jobs/ingest/{job}", json={"state": state}, timeout=5)


def _job(api: requests.Session, sf: Running, job: str) -> dict[str, Any]:
    return dict(api.get(f"{sf.base_url}{V}/jobs/ingest/{job}", timeout=5).json())


def _results(api: requests.Session, sf: Running, job: str, kind: str) -> list[dict[str, str]]:
    response = api.get(f"{sf.base_url}{V}/jobs/ingest/{job}/{kind}/", timeout=5)
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


CSV = "Donor_Sync_Id__c,LastName,Email\nD-1,Lovelace,ada@example.org\nD-2,Hopper,broken\nD-3,Turing,\n"


def test_bulk_ingest_lifecycle_and_result_csvs(sf: Running, api: requests.Session) -> None:
    _upsert(api, sf, "Contact", "D-3", {"LastName": "Old", "Email": "alan@example.org"})
    _settings(sf, bulk_queued_s=0.5, bulk_processing_s=0.5)
    created = _create_job(api, sf)
    assert created.status_code == 200
    info = created.json()
    assert (info["state"], info["object"], info["operation"], info["contentType"]) == (
        "Open",
        "Contact",
        "upsert",
        "CSV",
    )
    assert info["id"].startswith("750")
    assert info["contentUrl"] == f"services/data/v59.0/jobs/ingest/{info['id']}/batches"
    job = info["id"]
    upload = _upload(api, sf, job, CSV)
    assert (upload.status_code, upload.content) == (201, b"")
    assert _state(api, sf, job, "UploadComplete").json()["state"] == "UploadComplete"
    assert _job(api, sf, job)["state"] == "UploadComplete"
    time.sleep(0.6)
    assert _job(api, sf, job)["state"] == "InProgress"
    time.sleep(0.5)
    done = _job(api, sf, job)
    assert done["state"] == "JobComplete"
    assert (done["numberRecordsProcessed"], done["numberRecordsFailed"], done["jobType"]) == (
        3,
        1,
        "V2Ingest",
    )

    successful = _results(api, sf, job, "successfulResults")
    assert [(r["Donor_Sync_Id__c"], r["sf__Created"]) for r in successful] == [
        ("D-1", "true"),
        ("D-3", "false"),
    ]
    assert list(successful[0])[:2] == ["sf__Id", "sf__Created"]
    assert successful[0]["sf__Id"].startswith("003")
    failed = _results(api, sf, job, "failedResults")
    assert list(failed[0])[:2] == ["sf__Id", "sf__Error"]
    assert failed[0]["sf__Error"].startswith(
        "INVALID_EMAIL_ADDRESS:Email: invalid email address: broken:Email"
    )
    assert _results(api, sf, job, "unprocessedrecords") == []
    contacts = {r["Donor_Sync_Id__c"]: r for r in sf.emulator.snapshot()["records"]["Contact"]}
    assert contacts["D-3"]["Email"] == "alan@example.org", "an empty CSV value leaves the field unchanged"


def test_bulk_job_with_an_unknown_column_fails_and_leaves_rows_unprocessed(
    sf: Running, api: requests.Session
) -> None:
    job = _create_job(api, sf).json()["id"]
    _upload(api, sf, job, "Donor_Sync_Id__c,LastName,Shoe_Size__c\nD-1,A,9\nD-2,B,10\n")
    _state(api, sf, job, "UploadComplete")
    info = _job(api, sf, job)
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Shoe_Size__c"
    assert [r["Donor_Sync_Id__c"] for r in _results(api, sf, job, "unprocessedrecords")] == ["D-1", "D-2"]


def test_bulk_abort_leaves_the_rest_unprocessed(sf: Running, api: requests.Session) -> None:
    job = _create_job(api, sf).json()["id"]
    _upload(api, sf, job, CSV)
    aborted = _state(api, sf, job, "Aborted")
    assert aborted.json()["state"] == "Aborted"
    assert _job(api, sf, job)["state"] == "Aborted"
    assert len(_results(api, sf, job, "unprocessedrecords")) == 3
    again = _state(api, sf, job, "UploadComplete")
    assert (again.status_code, again.json()[0]["errorCode"]) == (400, "INVALIDJOBSTATE")


def test_bulk_abort_in_progress_keeps_what_was_processed(sf: Running, api: requests.Session) -> None:
    _settings(sf, bulk_processing_s=1.0)
    job = _create_job(api, sf).json()["id"]
    rows = "".join(f"D-{i},Name{i},\n" for i in range(10))
    _upload(api, sf, job, "Donor_Sync_Id__c,LastName,Email\n" + rows)
    _state(api, sf, job, "UploadComplete")
    time.sleep(0.45)
    _state(api, sf, job, "Aborted")
    info = _job(api, sf, job)
    processed = info["numberRecordsProcessed"]
    assert info["state"] == "Aborted"
    assert 0 < processed < 10
    assert len(_results(api, sf, job, "successfulResults")) == processed
    assert len(_results(api, sf, job, "unprocessedrecords")) == 10 - processed


def test_bulk_relationship_columns_duplicates_and_locks(sf: Running, api: requests.Session) -> None:
    _upsert(api, sf, "Account", "H-1", {"Name": "Doe Household"})
    _settings(sf, unable_to_lock_keys=["D-9"])
    job = _create_job(api, sf).json()["id"]
    data = (
        "Donor_Sync_Id__c,LastName,Account.Donor_Sync_Id__c\n"
        "D-1,Doe,H-1\nD-2,Roe,H-1\nd-2,Roe,H-1\nD-9,Lock,\n"
    )
    _upload(api, sf, job, data)
    _state(api, sf, job, "UploadComplete")
    assert _job(api, sf, job)["state"] == "JobComplete"
    errors = {r["Donor_Sync_Id__c"]: r["sf__Error"] for r in _results(api, sf, job, "failedResults")}
    assert errors["D-2"].startswith("DUPLICATE_VALUE:Duplicate external id specified: D-2")
    assert errors["d-2"].startswith("DUPLICATE_VALUE")
    assert errors["D-9"].startswith("UNABLE_TO_LOCK_ROW:")
    account = sf.emulator.snapshot()["records"]["Account"][0]["Id"]
    contacts = sf.emulator.snapshot()["records"]["Contact"]
    assert [(c["Donor_Sync_Id__c"], c["AccountId"]) for c in contacts] == [("D-1", account)]


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        pytest.param({"externalIdFieldName": None}, "INVALIDJOB", id="upsert-without-external-id"),
        pytest.param({"externalIdFieldName": "Email"}, "INVALIDJOB", id="not-an-external-id"),
        pytest.param({"object": "Nope__c"}, "INVALIDJOB", id="unknown-object"),
        pytest.param({"operation": "merge"}, "INVALIDJOB", id="unknown-operation"),
    ],
)
def test_bulk_job_creation_is_validated(
    sf: Running, api: requests.Session, spec: dict[str, Any], code: str
) -> None:
    response = _create_job(api, sf, **spec)
    assert (response.status_code, response.json()[0]["errorCode"]) == (400, code)


def test_bulk_upload_rules(sf: Running, api: requests.Session) -> None:
    job = _create_job(api, sf).json()["id"]
    crlf = _upload(api, sf, job, "Donor_Sync_Id__c,LastName\r\nD-1,A\r\n")
    assert crlf.status_code == 400
    assert "LineEnding" in crlf.json()[0]["message"]
    _settings(sf, bulk_max_upload_bytes=10)
    assert _upload(api, sf, job, CSV).status_code == 400
    _settings(sf, bulk_max_upload_bytes=1000)
    assert _upload(api, sf, job, CSV).status_code == 201
    _state(api, sf, job, "UploadComplete")
    late = _upload(api, sf, job, CSV)
    assert (late.status_code, late.json()[0]["errorCode"]) == (409, "INVALIDJOBSTATE")
    assert api.get(f"{sf.base_url}{V}/jobs/ingest/750000000000zzzAAA", timeout=5).status_code == 404
    assert api.delete(f"{sf.base_url}{V}/jobs/ingest/{job}", timeout=5).status_code == 204
    assert api.get(f"{sf.base_url}{V}/jobs/ingest", timeout=5).json()["records"] == []


def test_bulk_batches_count_against_the_daily_allocation(sf: Running, api: requests.Session) -> None:
    _settings(sf, daily_bulk_batches=1)
    first = _create_job(api, sf).json()["id"]
    assert _upload(api, sf, first, CSV).status_code == 201
    second = _create_job(api, sf).json()["id"]
    refused = _upload(api, sf, second, CSV)
    assert refused.status_code == 400
    limits = api.get(f"{sf.base_url}{V}/limits", timeout=5).json()
    assert limits["DailyBulkApiBatches"] == {"Max": 1, "Remaining": 0}


# -- SOQL and describe ----------------------------------------------------------------------------


def _query(api: requests.Session, sf: Running, soql: str, **headers: str) -> requests.Response:
    return api.get(f"{sf.base_url}{V}/query/", params={"q": soql}, headers=headers, timeout=5)


@pytest.fixture
def donations(sf: Running, api: requests.Session) -> None:
    gifts = [
        {
            "Name": "G1",
            "Amount": 10,
            "CloseDate": "2024-01-05",
            "StageName": "Closed Won",
            "Donor_Sync_Id__c": "O-1",
        },
        {
            "Name": "G2",
            "Amount": 25.5,
            "CloseDate": "2024-02-05",
            "StageName": "Pledged",
            "Donor_Sync_Id__c": "O-2",
        },
        {
            "Name": "G3",
            "Amount": 5,
            "CloseDate": "2024-03-05",
            "StageName": "Closed Won",
            "Donor_Sync_Id__c": "O-3",
        },
    ]
    assert api.post(f"{sf.admin_url}/seed/Opportunity", json=gifts, timeout=5).json() == {"loaded": 3}


@pytest.mark.usefixtures("donations")
@pytest.mark.parametrize(
    ("soql", "names"),
    [
        ("SELECT Name FROM Opportunity WHERE StageName = 'Closed Won'", ["G1", "G3"]),
        ("SELECT Name FROM Opportunity WHERE Donor_Sync_Id__c IN ('O-2', 'O-3')", ["G2", "G3"]),
        ("SELECT Name FROM Opportunity WHERE Donor_Sync_Id__c NOT IN ('O-2')", ["G1", "G3"]),
        ("SELECT Name FROM Opportunity WHERE CloseDate > 2024-01-31", ["G2", "G3"]),
        (
            "SELECT Name FROM Opportunity WHERE Amount >= 10 AND (StageName = 'Pledged' OR Name = 'G1')",
            ["G1", "G2"],
        ),
        ("SELECT Name FROM Opportunity ORDER BY Amount DESC LIMIT 2", ["G2", "G1"]),
        ("select name from opportunity where name like 'g%' order by CloseDate desc", ["G3", "G2", "G1"]),
        ("SELECT Name FROM Opportunity WHERE SystemModstamp > 2000-01-01T00:00:00Z", ["G1", "G2", "G3"]),
        ("SELECT Name FROM Opportunity WHERE SystemModstamp > 2999-01-01T00:00:00.000+0000", []),
    ],
)
def test_soql_subset(sf: Running, api: requests.Session, soql: str, names: list[str]) -> None:
    body = _query(api, sf, soql).json()
    assert [r["Name"] for r in body["records"]] == names
    assert body["done"] is True
    assert body["totalSize"] == len(names)


@pytest.mark.usefixtures("donations")
def test_soql_records_carry_attributes_and_only_selected_fields(sf: Running, api: requests.Session) -> None:
    record = _query(api, sf, "SELECT Id, Amount FROM Opportunity LIMIT 1").json()["records"][0]
    assert set(record) == {"attributes", "Id", "Amount"}
    assert record["attributes"] == {"type": "Opportunity", "url": f"{V}/sobjects/Opportunity/{record['Id']}"}


def test_soql_paging_follows_next_records_url(sf: Running, api: requests.Session) -> None:
    api.post(f"{sf.admin_url}/seed/Contact", json=[{"LastName": f"N{i:02d}"} for i in range(5)], timeout=5)
    _settings(sf, query_batch_size=2)
    page = _query(api, sf, "SELECT LastName FROM Contact ORDER BY LastName").json()
    names = [r["LastName"] for r in page["records"]]
    assert (page["totalSize"], page["done"]) == (5, False)
    while not page["done"]:
        assert page["nextRecordsUrl"].startswith(f"{V}/query/01g")
        page = api.get(f"{sf.base_url}{page['nextRecordsUrl']}", timeout=5).json()
        names += [r["LastName"] for r in page["records"]]
    assert names == [f"N{i:02d}" for i in range(5)]
    assert "nextRecordsUrl" not in page
    bad = api.get(f"{sf.base_url}{V}/query/01gNOPE-2", timeout=5)
    assert (bad.status_code, bad.json()[0]["errorCode"]) == (400, "INVALID_QUERY_LOCATOR")


def test_soql_batch_size_header_is_bounded_200_to_2000(sf: Running, api: requests.Session) -> None:
    api.post(f"{sf.admin_url}/seed/Contact", json=[{"LastName": f"N{i}"} for i in range(250)], timeout=5)
    page = _query(api, sf, "SELECT Id FROM Contact", **{"Sforce-Query-Options": "batchSize=10"}).json()
    assert len(page["records"]) == 200
    assert page["done"] is False


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Nope FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        ("SELECT Id Contact", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact LIMIT x", "MALFORMED_QUERY"),
    ],
)
def test_soql_errors(sf: Running, api: requests.Session, soql: str, code: str) -> None:
    response = _query(api, sf, soql)
    assert (response.status_code, response.json()[0]["errorCode"]) == (400, code)


def test_describe_lists_npsp_picklists_and_the_household_record_type(
    sf: Running, api: requests.Session
) -> None:
    opp = api.get(f"{sf.base_url}{V}/sobjects/Opportunity/describe/", timeout=5).json()
    fields = {f["name"]: f for f in opp["fields"]}
    assert "Closed Won" in [p["value"] for p in fields["StageName"]["picklistValues"]]
    assert fields["Donor_Sync_Id__c"]["externalId"]
    assert fields["Donor_Sync_Id__c"]["unique"]
    rd = api.get(f"{sf.base_url}{V}/sobjects/npe03__Recurring_Donation__c/describe", timeout=5).json()
    period = next(f for f in rd["fields"] if f["name"] == "npe03__Installment_Period__c")
    assert [p["value"] for p in period["picklistValues"]][:3] == ["Monthly", "Quarterly", "Yearly"]
    assert period["restrictedPicklist"] is True
    account = api.get(f"{sf.base_url}{V}/sobjects/Account/describe", timeout=5).json()
    assert "Household Account" in [rt["name"] for rt in account["recordTypeInfos"]]
    contact = api.get(f"{sf.base_url}{V}/sobjects/Contact/describe", timeout=5).json()
    assert {"Email", "npsp__Deceased__c", "HasOptedOutOfEmail"} <= {f["name"] for f in contact["fields"]}
    missing = api.get(f"{sf.base_url}{V}/sobjects/Nope__c/describe", timeout=5)
    assert (missing.status_code, missing.json()[0]["errorCode"]) == (404, "NOT_FOUND")


# -- Opportunity stages, NPSP recurring donations ----------------------------------------------------


@pytest.mark.usefixtures("donations")
def test_is_closed_and_is_won_follow_the_stage_and_are_read_only(sf: Running, api: requests.Session) -> None:
    def names(where: str) -> list[str]:
        soql = f"SELECT Name, IsClosed, IsWon FROM Opportunity WHERE {where} ORDER BY Name"
        return [r["Name"] for r in _query(api, sf, soql).json()["records"]]

    assert names("IsClosed = false") == ["G2"]
    assert names("IsWon = true") == ["G1", "G3"]
    lost = _upsert(api, sf, "Opportunity", "O-1", {"StageName": "Closed Lost"})
    assert lost.status_code == 200
    assert names("IsClosed = true AND IsWon = false") == ["G1"]
    refused = _upsert(api, sf, "Opportunity", "O-2", {"IsClosed": True})
    assert refused.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    opp = api.get(f"{sf.base_url}{V}/sobjects/Opportunity/describe", timeout=5).json()
    flags = {f["name"]: f for f in opp["fields"] if f["name"] in ("IsClosed", "IsWon")}
    assert [(f["type"], f["updateable"]) for f in flags.values()] == [("boolean", False), ("boolean", False)]


def _rd(
    api: requests.Session, sf: Running, key: str, contact_key: str = "D-1", **fields: Any
) -> requests.Response:
    body = {"npe03__Contact__r": {"Donor_Sync_Id__c": contact_key}, "npe03__Amount__c": 25, **fields}
    return _upsert(api, sf, "npe03__Recurring_Donation__c", key, body)


def _installments(sf: Running) -> list[dict[str, Any]]:
    records = sf.emulator.snapshot()["records"]["Opportunity"]
    return sorted((r for r in records if r["npe03__Recurring_Donation__c"]), key=lambda r: r["CloseDate"])


def test_an_active_recurring_donation_gets_its_next_installment(sf: Running, api: requests.Session) -> None:
    household = _upsert(api, sf, "Account", "H-1", {"Name": "Doe Household"}).json()["id"]
    contact = _upsert(
        api, sf, "Contact", "D-1", {"LastName": "Doe", "Account": {"Donor_Sync_Id__c": "H-1"}}
    ).json()["id"]
    rd = _rd(api, sf, "R-1", npsp__StartDate__c="2024-03-10").json()["id"]
    [installment] = _installments(sf)
    assert {
        k: installment[k] for k in ("StageName", "CloseDate", "Amount", "IsClosed", "Donor_Sync_Id__c")
    } == {
        "StageName": "Pledged",
        "CloseDate": "2024-03-10",
        "Amount": 25.0,
        "IsClosed": False,
        "Donor_Sync_Id__c": None,
    }
    assert (installment["npe03__Recurring_Donation__c"], installment["npsp__Primary_Contact__c"]) == (
        rd,
        contact,
    )
    assert installment["AccountId"] == household
    plan = api.get(f"{sf.base_url}{V}/sobjects/npe03__Recurring_Donation__c/{rd}", timeout=5).json()
    assert plan["npe03__Next_Payment_Date__c"] == "2024-03-10"

    _rd(api, sf, "R-1", npe03__Amount__c=30)
    _rd(api, sf, "R-2", npsp__Status__c="Paused", npe03__Next_Payment_Date__c="2024-03-01")
    _settings(sf, npsp_installments=False)
    _rd(api, sf, "R-3", npe03__Next_Payment_Date__c="2024-03-01")
    assert len(_installments(sf)) == 1, "updates, paused plans and the setting off create none"

    _settings(sf, npsp_installments=True)
    rolled = _create(
        api,
        sf,
        [
            {"attributes": {"type": "npe03__Recurring_Donation__c"}, "npe03__Contact__c": contact},
            {"attributes": {"type": "Contact"}, "Email": "no-last-name@example.org"},
        ],
        True,
    ).json()
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert len(_installments(sf)) == 1, "a rollback takes the automation's installment with it"


@pytest.mark.parametrize(
    ("period", "extra", "scheduled", "following"),
    [
        pytest.param("Monthly", {}, "2024-01-31", "2024-02-29", id="monthly-clamped"),
        pytest.param(
            "Monthly", {"npsp__Day_of_Month__c": "15"}, "2024-01-15", "2024-02-15", id="day-of-month"
        ),
        pytest.param(
            "Monthly", {"npsp__InstallmentFrequency__c": 2}, "2024-01-15", "2024-03-15", id="every-2"
        ),
        pytest.param("Quarterly", {}, "2024-11-30", "2025-02-28", id="quarterly"),
        pytest.param("Yearly", {}, "2024-02-29", "2025-02-28", id="yearly"),
        pytest.param("Weekly", {}, "2024-12-30", "2025-01-06", id="weekly"),
        pytest.param("1st and 15th", {}, "2024-01-15", "2024-02-01", id="first-and-fifteenth"),
    ],
)
def test_closing_an_installment_schedules_the_next(
    sf: Running,
    api: requests.Session,
    period: str,
    extra: dict[str, Any],
    scheduled: str,
    following: str,
) -> None:
    _upsert(api, sf, "Contact", "D-1", {"LastName": "Doe"})
    _rd(api, sf, "R-1", npe03__Installment_Period__c=period, npe03__Next_Payment_Date__c=scheduled, **extra)
    [first] = _installments(sf)
    paid = api.patch(
        f"{sf.base_url}{V}/sobjects/Opportunity/{first['Id']}",
        json={"StageName": "Closed Won", "CloseDate": "2024-01-02"},
        timeout=5,
    )
    assert paid.status_code == 204
    closed, opened = _installments(sf)  # the payment was dated 2024-01-02, before the next one
    assert (closed["Id"], closed["IsWon"]) == (first["Id"], True)
    assert (opened["CloseDate"], opened["StageName"]) == (following, "Pledged")
    plan = sf.emulator.snapshot()["records"]["npe03__Recurring_Donation__c"][0]
    assert plan["npe03__Next_Payment_Date__c"] == following


def test_only_closing_schedules_and_only_when_no_open_one_follows(sf: Running, api: requests.Session) -> None:
    _upsert(api, sf, "Contact", "D-1", {"LastName": "Doe"})
    rd = _rd(api, sf, "R-1", npe03__Next_Payment_Date__c="2024-01-15").json()["id"]
    [first] = _installments(sf)
    url = f"{sf.base_url}{V}/sobjects/Opportunity"
    api.patch(f"{url}/{first['Id']}", json={"Amount": 30}, timeout=5)
    assert len(_installments(sf)) == 1, "an edit that leaves it open schedules nothing"
    later = api.post(
        url,
        json={
            "Name": "Extra",
            "StageName": "Pledged",
            "CloseDate": "2024-06-15",
            "npe03__Recurring_Donation__c": rd,
        },
        timeout=5,
    ).json()["id"]
    api.patch(f"{url}/{first['Id']}", json={"StageName": "Closed Lost"}, timeout=5)
    assert [r["Id"] for r in _installments(sf)] == [first["Id"], later], "an open one already follows"
    api.patch(f"{url}/{later}", json={"StageName": "Closed Won"}, timeout=5)
    assert [r["CloseDate"] for r in _installments(sf)] == ["2024-01-15", "2024-06-15", "2024-07-15"]


# -- recycle bin, queryAll and merges ---------------------------------------------------------------


def _query_all(api: requests.Session, sf: Running, soql: str) -> list[dict[str, Any]]:
    body = api.get(f"{sf.base_url}{V}/queryAll", params={"q": soql}, timeout=5).json()
    return list(body["records"])


def test_deleted_records_are_only_seen_by_query_all(sf: Running, api: requests.Session) -> None:
    kept = _upsert(api, sf, "Contact", "D-1", {"LastName": "Kept"}).json()["id"]
    gone = _upsert(api, sf, "Contact", "D-2", {"LastName": "Gone"}).json()["id"]
    before = _query_all(api, sf, f"SELECT SystemModstamp FROM Contact WHERE Id = '{gone}'")[0][
        "SystemModstamp"
    ]
    time.sleep(0.01)
    _delete(api, sf, [gone])
    soql = "SELECT Id, IsDeleted, MasterRecordId, SystemModstamp FROM Contact ORDER BY LastName"
    assert [r["Id"] for r in _query(api, sf, soql).json()["records"]] == [kept]
    assert _query(api, sf, "SELECT Id FROM Contact WHERE IsDeleted = true").json()["totalSize"] == 0
    everything = _query_all(api, sf, soql)
    assert [(r["Id"], r["IsDeleted"], r["MasterRecordId"]) for r in everything] == [
        (gone, True, None),
        (kept, False, None),
    ]
    assert everything[0]["SystemModstamp"] > before, "a delete is a modification"
    assert [r["Id"] for r in _query_all(api, sf, "SELECT Id FROM Contact WHERE IsDeleted = true")] == [gone]
    assert sf.emulator.snapshot()["recycle_bin"]["Contact"] == 1

    again = _upsert(api, sf, "Contact", "D-2", {"LastName": "Back"})
    assert again.status_code == 201, "upsert does not match a record in the recycle bin"
    assert again.json()["id"] != gone
    linked = _upsert(
        api,
        sf,
        "Opportunity",
        "O-1",
        {"Name": "G", "StageName": "Pledged", "CloseDate": "2024-01-01", "npsp__Primary_Contact__c": gone},
    )
    assert linked.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_hard_delete_skips_the_recycle_bin(sf: Running, api: requests.Session) -> None:
    ids = [_upsert(api, sf, "Contact", f"D-{i}", {"LastName": "Doe"}).json()["id"] for i in range(2)]
    soft = _create_job(api, sf, operation="delete", externalIdFieldName=None).json()["id"]
    _upload(api, sf, soft, f"Id\n{ids[0]}\n")
    _state(api, sf, soft, "UploadComplete")
    hard = _create_job(api, sf, operation="hardDelete", externalIdFieldName=None).json()["id"]
    _upload(api, sf, hard, f"Id\n{ids[1]}\n")
    _state(api, sf, hard, "UploadComplete")
    assert [_job(api, sf, j)["numberRecordsFailed"] for j in (soft, hard)] == [0, 0]
    assert [r["Id"] for r in _query_all(api, sf, "SELECT Id FROM Contact")] == [ids[0]]


def test_modstamp_windows_with_millisecond_datetime_literals(sf: Running, api: requests.Session) -> None:
    for i in range(4):
        _upsert(api, sf, "Contact", f"D-{i}", {"LastName": f"N{i}"})
        time.sleep(0.005)
    stamps = [
        r["SystemModstamp"]
        for r in _query_all(api, sf, "SELECT SystemModstamp FROM Contact ORDER BY SystemModstamp")
    ]
    low, high = stamps[1].replace("+0000", "Z"), stamps[3].replace("+0000", "Z")
    soql = (
        f"SELECT LastName FROM Contact WHERE SystemModstamp >= {low} AND SystemModstamp < {high} "
        "ORDER BY SystemModstamp"
    )
    assert [r["LastName"] for r in _query_all(api, sf, soql)] == ["N1", "N2"]


def _merge(api: requests.Session, sf: Running, kind: str, body: dict[str, Any]) -> requests.Response:
    return api.post(f"{sf.admin_url}/merge/{kind}", json=body, timeout=5)


def test_a_staff_merge_deletes_the_losers_and_reparents_their_records(
    sf: Running, api: requests.Session
) -> None:
    _upsert(api, sf, "Account", "H-1", {"Name": "Doe Household"})
    master = _upsert(
        api, sf, "Contact", "D-1", {"LastName": "Doe", "Account": {"Donor_Sync_Id__c": "H-1"}}
    ).json()["id"]
    loser = _upsert(api, sf, "Contact", "D-2", {"LastName": "Doe", "Email": "jd@example.org"}).json()["id"]
    bystander = _upsert(api, sf, "Contact", "D-3", {"LastName": "Roe"}).json()["id"]
    gift = {
        "Name": "G",
        "StageName": "Closed Won",
        "CloseDate": "2024-01-01",
        "npsp__Primary_Contact__c": loser,
    }
    opp = _upsert(api, sf, "Opportunity", "O-1", gift).json()["id"]
    _rd(api, sf, "R-1", contact_key="D-2")
    _settings(sf, npsp_installments=False)
    soql = "SELECT Id, SystemModstamp FROM Contact"
    stamps = {r["Id"]: r["SystemModstamp"] for r in _query(api, sf, soql).json()["records"]}
    time.sleep(0.01)

    merged = _merge(
        api,
        sf,
        "Contact",
        {"master_id": master, "merged_ids": [loser], "fields": {"Email": "jd@example.org"}},
    )
    assert merged.status_code == 200, merged.text
    assert merged.json() == {
        "master_id": master,
        "merged_ids": [loser],
        "reparented": {"Opportunity": 2, "npe03__Recurring_Donation__c": 1},
    }
    rows = _query_all(
        api, sf, "SELECT Id, IsDeleted, MasterRecordId, Email, SystemModstamp FROM Contact ORDER BY Id"
    )
    by_id = {r["Id"]: r for r in rows}
    assert (by_id[loser]["IsDeleted"], by_id[loser]["MasterRecordId"]) == (True, master)
    assert (by_id[master]["IsDeleted"], by_id[master]["Email"]) == (False, "jd@example.org")
    assert by_id[master]["SystemModstamp"] > stamps[master], "the master changed"
    assert by_id[bystander]["SystemModstamp"] == stamps[bystander]
    soql = "SELECT Id, npsp__Primary_Contact__c FROM Opportunity"
    assert {r["npsp__Primary_Contact__c"] for r in _query(api, sf, soql).json()["records"]} == {master}
    plan = _query(api, sf, "SELECT npe03__Contact__c FROM npe03__Recurring_Donation__c").json()["records"][0]
    assert plan["npe03__Contact__c"] == master
    assert (
        api.get(f"{sf.base_url}{V}/sobjects/Opportunity/{opp}", timeout=5).json()["npsp__Primary_Contact__c"]
        == master
    )
    losers = _query_all(api, sf, "SELECT Id FROM Contact WHERE IsDeleted = true AND MasterRecordId != null")
    assert [r["Id"] for r in losers] == [loser]


def test_an_account_merge_moves_the_contacts(sf: Running, api: requests.Session) -> None:
    master = _upsert(api, sf, "Account", "H-1", {"Name": "Doe Household"}).json()["id"]
    loser = _upsert(api, sf, "Account", "H-2", {"Name": "Doe Household (2)"}).json()["id"]
    _upsert(api, sf, "Contact", "D-1", {"LastName": "Doe", "AccountId": loser})
    assert _merge(api, sf, "Account", {"master_id": master, "merged_ids": [loser]}).status_code == 200
    contact = _query(api, sf, "SELECT AccountId FROM Contact").json()["records"][0]
    assert contact["AccountId"] == master
    account = _query_all(api, sf, f"SELECT MasterRecordId FROM Account WHERE Id = '{loser}'")[0]
    assert account["MasterRecordId"] == master


def test_merge_refusals(sf: Running, api: requests.Session) -> None:
    ids = [_upsert(api, sf, "Contact", f"D-{i}", {"LastName": "Doe"}).json()["id"] for i in range(4)]
    opp = _upsert(
        api, sf, "Opportunity", "O-1", {"Name": "G", "StageName": "Pledged", "CloseDate": "2024-01-01"}
    ).json()["id"]
    cases = [
        ("Opportunity", {"master_id": opp, "merged_ids": [opp]}, 400),
        ("Contact", {"master_id": ids[0], "merged_ids": ids[1:]}, 400),
        ("Contact", {"master_id": ids[0], "merged_ids": [ids[0]]}, 400),
        ("Contact", {"master_id": ids[0], "merged_ids": ["003000000000999AAA"]}, 400),
        ("Contact", {"master_id": ids[0], "merged_ids": [ids[1]], "fields": {"Nope__c": 1}}, 400),
        ("Contact", {"master_id": ids[0]}, 400),
        ("Nope__c", {"master_id": ids[0], "merged_ids": [ids[1]]}, 404),
    ]
    assert [_merge(api, sf, kind, body).status_code for kind, body, _ in cases] == [c[2] for c in cases]
    assert sf.emulator.snapshot()["recycle_bin"]["Contact"] == 0, "a refused merge changes nothing"
    assert _merge(api, sf, "Contact", {"master_id": ids[0], "merged_ids": ids[1:3]}).status_code == 200
    again = _merge(api, sf, "Contact", {"master_id": ids[0], "merged_ids": [ids[1]]})
    assert (again.status_code, again.json()["detail"]["errorCode"]) == (400, "ENTITY_IS_DELETED")
