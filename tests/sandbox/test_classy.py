"""The Classy emulator: client-credentials OAuth, transactions with filters and paging, the rate limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from sandbox.common.runner import Running, Sandbox
from sandbox.emulators.classy import ClassyEmulator

CLIENT = {
    "grant_type": "client_credentials",
    "client_id": "sandbox-classy-client",
    "client_secret": "sandbox-classy-secret",
}
ORG = 1


def _transaction(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": i,
        "status": "success",
        "total_gross_amount": f"{i}.00",
        "currency_code": "USD",
        "member_email_address": f"m{i}@x.org",
        "created_at": f"2024-01-{i:02d}T10:00:00+0000",
        "updated_at": f"2024-02-{i:02d}T10:00:00+0000",
        **extra,
    }


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(ClassyEmulator())


@pytest.fixture
def api(box: Sandbox) -> Running:
    running = box["classy"]
    running.emulator.reset()
    return running


@pytest.fixture
def token(api: Running, https: requests.Session) -> str:
    response = https.post(f"{api.base_url}/oauth2/auth", data=CLIENT, timeout=5)
    assert response.status_code == 200
    value: str = response.json()["access_token"]
    return value


def _seed(https: requests.Session, api: Running, records: list[dict[str, Any]]) -> None:
    assert https.post(f"{api.admin_url}/seed/transactions", json=records, timeout=5).json() == {
        "loaded": len(records)
    }


def _get(
    https: requests.Session, api: Running, token: str, org: int = ORG, **params: Any
) -> requests.Response:
    return https.get(
        f"{api.base_url}/2.0/organizations/{org}/transactions",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_client_credentials_token(api: Running, https: requests.Session) -> None:
    form = https.post(f"{api.base_url}/oauth2/auth", data=CLIENT, timeout=5)
    assert form.status_code == 200
    body = form.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    again = https.post(f"{api.base_url}/oauth2/auth", json=CLIENT, timeout=5).json()
    assert again["access_token"] != body["access_token"], "calling again gives a fresh token"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        pytest.param({**CLIENT, "client_secret": "nope"}, "invalid_client", id="bad-secret"),
        pytest.param({**CLIENT, "client_id": "nope"}, "invalid_client", id="bad-client"),
        pytest.param({**CLIENT, "grant_type": "password"}, "unsupported_grant_type", id="grant"),
    ],
)
def test_token_errors(api: Running, https: requests.Session, form: dict[str, str], error: str) -> None:
    response = https.post(f"{api.base_url}/oauth2/auth", data=form, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_expired_and_unknown_tokens_are_401(api: Running, https: requests.Session, token: str) -> None:
    unknown = _get(https, api, "not-a-token")
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_token")
    missing = https.get(f"{api.base_url}/2.0/organizations/{ORG}/transactions", timeout=5)
    assert missing.status_code == 401
    assert _get(https, api, token).status_code == 200
    api.emulator.settings["token_ttl_s"] = 0
    short = https.post(f"{api.base_url}/oauth2/auth", data=CLIENT, timeout=5).json()
    assert short["expires_in"] == 0
    expired = _get(https, api, short["access_token"])
    assert expired.status_code == 401
    assert expired.json()["error"] == "expired_token"
    assert 'error="expired_token"' in expired.headers["WWW-Authenticate"]
    emulator = api.emulator
    assert isinstance(emulator, ClassyEmulator)
    emulator.expire_tokens()
    assert _get(https, api, token).json()["error"] == "expired_token"


def test_revoked_tokens_are_401_invalid_token_and_the_client_gets_a_new_one(
    api: Running, https: requests.Session, token: str
) -> None:
    assert _get(https, api, token).status_code == 200
    revoked = https.post(f"{api.admin_url}/tokens/revoke", timeout=5)
    assert revoked.json() == {"revoked": 1}
    refused = _get(https, api, token)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    fresh = https.post(f"{api.base_url}/oauth2/auth", data=CLIENT, timeout=5).json()["access_token"]
    assert _get(https, api, fresh).status_code == 200


def test_a_401_fault_answers_as_classy_does(api: Running, https: requests.Session, token: str) -> None:
    https.put(
        f"{api.admin_url}/faults",
        json=[{"kind": "status", "status": 401, "path": "/transactions$", "count": 1}],
        timeout=5,
    )
    faulted = _get(https, api, token)
    assert (faulted.status_code, faulted.json()["error"]) == (401, "invalid_token")


def test_expired_token_fault_kind(api: Running, https: requests.Session, token: str) -> None:
    https.put(
        f"{api.admin_url}/faults",
        json=[{"kind": "expired_token", "path": "/transactions$", "count": 1}],
        timeout=5,
    )
    faulted = _get(https, api, token)
    assert (faulted.status_code, faulted.json()["error"]) == (401, "expired_token")
    assert _get(https, api, token).status_code == 200


def test_paginated_envelope_and_paging(api: Running, https: requests.Session, token: str) -> None:
    _seed(https, api, [_transaction(i) for i in range(1, 26)])
    first = _get(https, api, token).json()
    assert first["total"] == 25
    assert (first["per_page"], first["current_page"], first["last_page"]) == (20, 1, 2)
    assert (first["from"], first["to"]) == (1, 20)
    assert [t["id"] for t in first["data"]] == list(range(1, 21))
    path = f"{api.base_url}/2.0/organizations/{ORG}/transactions"
    assert first["path"] == path
    assert (first["first_page_url"], first["last_page_url"]) == (f"{path}?page=1", f"{path}?page=2")
    assert (first["next_page_url"], first["prev_page_url"]) == (f"{path}?page=2", None)
    second = _get(https, api, token, page=2).json()
    assert [t["id"] for t in second["data"]] == list(range(21, 26))
    assert (second["next_page_url"], second["prev_page_url"], second["to"]) == (None, f"{path}?page=1", 25)
    beyond = _get(https, api, token, page=5).json()
    assert (beyond["data"], beyond["from"], beyond["to"]) == ([], None, None)
    big = _get(https, api, token, per_page=100).json()
    assert (len(big["data"]), big["last_page"]) == (25, 1)


@pytest.mark.parametrize("params", [{"per_page": 101}, {"per_page": 0}, {"page": 0}, {"page": "x"}])
def test_bad_paging_is_400(api: Running, https: requests.Session, token: str, params: dict[str, Any]) -> None:
    response = _get(https, api, token, **params)
    assert response.status_code == 400
    assert "message" in response.json()


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        pytest.param("updated_at>2024-02-08T10:00:00Z", [9, 10], id="gt"),
        pytest.param("updated_at>=2024-02-08T10:00:00+0000", [8, 9, 10], id="gte-offset"),
        pytest.param("updated_at<2024-02-03T00:00:00Z", [1, 2], id="lt"),
        pytest.param(
            "updated_at>2024-02-02T00:00:00Z,updated_at<=2024-02-04T10:00:00Z", [2, 3, 4], id="window"
        ),
        pytest.param("status=refunded", [3], id="equals"),
        pytest.param("status!=success", [3], id="not-equals"),
        pytest.param(
            "updated_at>2024-02-01T12:00:00Z,status<>refunded", [2, 4, 5, 6, 7, 8, 9, 10], id="combined"
        ),
    ],
)
def test_filters(
    api: Running, https: requests.Session, token: str, filter_: str, expected: list[int]
) -> None:
    _seed(https, api, [_transaction(i, status="refunded" if i == 3 else "success") for i in range(1, 11)])
    body = _get(https, api, token, filter=filter_, sort="updated_at:asc").json()
    assert [t["id"] for t in body["data"]] == expected
    assert body["total"] == len(expected)


def test_updated_at_filter_sees_changed_transactions_and_pages(
    api: Running, https: requests.Session, token: str
) -> None:
    _seed(https, api, [_transaction(i) for i in range(1, 29)])
    _seed(https, api, [_transaction(2, status="refunded", updated_at="2024-03-15T00:00:00Z")])
    body = _get(
        https, api, token, filter="updated_at>2024-02-25T00:00:00Z", sort="updated_at:asc", per_page=2
    ).json()
    assert [t["id"] for t in body["data"]] == [25, 26]
    assert (body["total"], body["last_page"]) == (5, 3)
    last = _get(
        https, api, token, filter="updated_at>2024-02-25T00:00:00Z", sort="updated_at:asc", per_page=2, page=3
    )
    assert [t["id"] for t in last.json()["data"]] == [2]
    assert last.json()["data"][0]["status"] == "refunded"


def test_sort_fields_and_bad_filters(api: Running, https: requests.Session, token: str) -> None:
    _seed(https, api, [_transaction(i) for i in range(1, 6)])
    desc = _get(https, api, token, sort="created_at:desc").json()
    assert [t["id"] for t in desc["data"]] == [5, 4, 3, 2, 1]
    picked = _get(https, api, token, fields="id,status").json()["data"][0]
    assert picked == {"id": 1, "status": "success"}
    assert _get(https, api, token, filter="updated_at~2024").status_code == 400
    assert _get(https, api, token, sort="id:sideways").status_code == 400


def test_other_organisations_are_forbidden(api: Running, https: requests.Session, token: str) -> None:
    assert _get(https, api, token, org=999).status_code == 403
    _seed(https, api, [_transaction(1), _transaction(2, organization_id=2)])
    api.emulator.settings["organization_ids"] = [1, 2]
    assert [t["id"] for t in _get(https, api, token, org=2).json()["data"]] == [2]


def test_spec_host_prefix_works_too(api: Running, https: requests.Session, token: str) -> None:
    response = https.get(
        f"{api.base_url}/api/2.0/organizations/{ORG}/transactions",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 200


def test_rate_limit_is_429_with_retry_after_per_application(
    api: Running, https: requests.Session, token: str
) -> None:
    assert ClassyEmulator.default_settings["requests_per_window"] == 1800
    assert ClassyEmulator.default_settings["rate_limit_window_s"] == 60.0
    api.emulator.settings.update({"requests_per_window": 3, "rate_limit_window_s": 1.0})
    answers = [_get(https, api, token) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    limited = answers[3]
    assert limited.json() == {"message": "Too Many Attempts.", "retry_after": 1}
    assert limited.headers["Retry-After"] == "1"
    assert int(limited.headers["X-RateLimit-Reset"]) >= int(time.time())
    api.emulator.settings["clients"] = {**ClassyEmulator.default_settings["clients"], "other": "s"}
    other = https.post(
        f"{api.base_url}/oauth2/auth", data={**CLIENT, "client_id": "other", "client_secret": "s"}, timeout=5
    )
    assert _get(https, api, other.json()["access_token"]).status_code == 200, "the limit is per application"
    time.sleep(1.05)
    assert _get(https, api, token).status_code == 200


def test_injected_429_uses_classy_body(api: Running, https: requests.Session, token: str) -> None:
    https.put(
        f"{api.admin_url}/faults",
        json=[{"kind": "status", "status": 429, "count": 1, "headers": {"Retry-After": "60"}}],
        timeout=5,
    )
    response = _get(https, api, token)
    assert response.status_code == 429
    assert response.json()["message"] == "Too Many Attempts."
