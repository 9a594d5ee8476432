"""The Donorbox emulator: basic auth, bare-array pages, the per_page fallback, filters and order."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from sandbox.common.runner import Running, Sandbox
from sandbox.emulators.donorbox import DonorboxEmulator

EMAIL = "api@sandbox.donor-sync.test"
API_KEY = "sandbox-donorbox-key"


def _donation(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": i,
        "donation_date": f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:00:00.000Z",
        "amount": f"{10 * i}.0",
        "converted_amount": f"{10 * i}.0",
        "currency": "USD",
        "converted_currency": "USD",
        "status": "paid",
        "donation_type": "stripe",
        "campaign": {"id": 1 + i % 2, "name": f"Campaign {1 + i % 2}"},
        "donor": {
            "id": 100 + i % 5,
            "first_name": f"F{i % 5}",
            "last_name": "Doe",
            "email": f"donor{i % 5}@x.org",
        },
        **extra,
    }


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(DonorboxEmulator())


@pytest.fixture
def api(box: Sandbox, https: requests.Session) -> Running:
    running = box["donorbox"]
    running.emulator.reset()
    https.auth = (EMAIL, API_KEY)
    return running


def _seed(https: requests.Session, api: Running, kind: str, records: list[dict[str, Any]]) -> None:
    response = https.post(f"{api.admin_url}/seed/{kind}", json=records, timeout=5)
    assert response.json() == {"loaded": len(records)}


def _get(https: requests.Session, api: Running, kind: str, **params: Any) -> requests.Response:
    return https.get(f"{api.base_url}/api/v1/{kind}", params=params, timeout=5)


def test_pages_are_bare_arrays_of_50_by_default_newest_first(api: Running, https: requests.Session) -> None:
    _seed(https, api, "donations", [_donation(i) for i in range(1, 121)])
    first = _get(https, api, "donations")
    assert first.status_code == 200
    assert isinstance(first.json(), list)
    assert len(first.json()) == 50
    dates = [d["donation_date"] for d in first.json()]
    assert dates == sorted(dates, reverse=True)
    walked: list[int] = []
    page = 1
    while True:
        batch = _get(https, api, "donations", page=page, per_page=100).json()
        walked += [d["id"] for d in batch]
        if len(batch) < 100:
            break
        page += 1
    assert sorted(walked) == list(range(1, 121))
    assert len(walked) == 120
    assert _get(https, api, "donations", page=99).json() == []


@pytest.mark.parametrize(
    ("per_page", "size"),
    [
        pytest.param(100, 100, id="max"),
        pytest.param(101, 50, id="over-max-falls-back-to-50"),
        pytest.param(1000, 50, id="far-over-max"),
        pytest.param(0, 50, id="zero"),
        pytest.param("x", 50, id="not-a-number"),
        pytest.param(7, 7, id="small"),
    ],
)
def test_per_page_fallback_rule(api: Running, https: requests.Session, per_page: Any, size: int) -> None:
    _seed(https, api, "donations", [_donation(i) for i in range(1, 151)])
    assert len(_get(https, api, "donations", per_page=per_page).json()) == size


def test_page_size_limits_are_settings(api: Running, https: requests.Session) -> None:
    _seed(https, api, "donors", [{"id": i, "email": f"d{i}@x.org"} for i in range(1, 30)])
    https.patch(f"{api.admin_url}/settings", json={"default_per_page": 5, "max_per_page": 10}, timeout=5)
    assert len(_get(https, api, "donors").json()) == 5
    assert len(_get(https, api, "donors", per_page=10).json()) == 10
    assert len(_get(https, api, "donors", per_page=11).json()) == 5


def test_order_asc(api: Running, https: requests.Session) -> None:
    _seed(https, api, "donations", [_donation(i) for i in range(1, 11)])
    dates = [d["donation_date"] for d in _get(https, api, "donations", order="asc").json()]
    assert dates == sorted(dates)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"date_from": "2024-01-05", "date_to": "2024-01-06"}, {4, 5}, id="iso"),
        pytest.param({"date_from": "2024/01/05", "date_to": "2024/01/05"}, {4}, id="slashes"),
        pytest.param({"date_from": "20240109"}, {8, 9}, id="compact"),
        pytest.param({"date_to": "02-01-2024"}, {0, 1}, id="day-first"),
    ],
)
def test_date_filters_accept_the_documented_formats(
    api: Running, https: requests.Session, params: dict[str, str], expected: set[int]
) -> None:
    _seed(
        https,
        api,
        "donations",
        [{"id": i + 1, "donation_date": f"2024-01-{i + 1:02d}T23:59:00Z"} for i in range(10)],
    )
    got = {d["id"] - 1 for d in _get(https, api, "donations", per_page=100, **params).json()}
    assert got == expected


def test_bad_date_is_400(api: Running, https: requests.Session) -> None:
    response = _get(https, api, "donations", date_from="yesterday")
    assert response.status_code == 400
    assert "date_from" in response.json()["error"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"email": "DONOR2@x.org"}, {2, 7}, id="email"),
        pytest.param({"campaign_id": "2"}, {1, 3, 5, 7, 9}, id="campaign-id"),
        pytest.param({"campaign_name": "Campaign 1"}, {2, 4, 6, 8, 10}, id="campaign-name"),
        pytest.param({"donor_id": "104"}, {4, 9}, id="donor-id"),
        pytest.param({"first_name": "f3", "last_name": "doe"}, {3, 8}, id="names"),
        pytest.param({"id": "6"}, {6}, id="id"),
        pytest.param({"amount[usd][min]": "30", "amount[usd][max]": "50"}, {3, 4, 5}, id="amount"),
    ],
)
def test_donation_filters(
    api: Running, https: requests.Session, params: dict[str, str], expected: set[int]
) -> None:
    _seed(https, api, "donations", [_donation(i) for i in range(1, 11)])
    assert {d["id"] for d in _get(https, api, "donations", **params).json()} == expected


def test_filters_combine_with_paging(api: Running, https: requests.Session) -> None:
    _seed(https, api, "donations", [_donation(i) for i in range(1, 41)])
    pages = [_get(https, api, "donations", campaign_id="1", per_page=7, page=p).json() for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [7, 7, 6, 0]
    assert {d["id"] for p in pages for d in p} == set(range(2, 41, 2))


def test_campaigns_and_donors_are_listed(api: Running, https: requests.Session) -> None:
    _seed(https, api, "campaigns", [{"id": 1, "name": "Spring"}, {"id": 2, "name": "Fall"}])
    _seed(https, api, "donors", [{"id": 35, "email": "a@x.org"}, {"id": 36, "email": "b@x.org"}])
    assert {c["name"] for c in _get(https, api, "campaigns").json()} == {"Spring", "Fall"}
    assert [d["id"] for d in _get(https, api, "donors", email="b@x.org").json()] == [36]
    assert https.post(f"{api.admin_url}/seed/widgets", json=[], timeout=5).status_code == 404


def test_seeding_again_replaces_by_id_and_numbers_new_records(api: Running, https: requests.Session) -> None:
    _seed(https, api, "donations", [_donation(1), _donation(2)])
    _seed(
        https, api, "donations", [_donation(2, status="refunded"), {"donation_date": "2024-02-01T00:00:00Z"}]
    )
    got = {d["id"]: d for d in _get(https, api, "donations").json()}
    assert set(got) == {1, 2, 3}
    assert got[2]["status"] == "refunded"


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(None, id="none"),
        pytest.param((EMAIL, "wrong"), id="bad-key"),
        pytest.param(("other@x.org", API_KEY), id="bad-email"),
    ],
)
def test_bad_credentials_are_401_basic_challenge(
    api: Running, https: requests.Session, auth: tuple[str, str] | None
) -> None:
    response = requests.get(f"{api.base_url}/api/v1/donations", auth=auth, verify=https.verify, timeout=5)
    assert response.status_code == 401
    assert response.text == "HTTP Basic: Access denied.\n"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Application"'


def test_optional_rate_limit_is_429_with_retry_after(api: Running, https: requests.Session) -> None:
    assert _get(https, api, "donations").status_code == 200, "off by default (undocumented by Donorbox)"
    https.patch(
        f"{api.admin_url}/settings", json={"requests_per_window": 3, "rate_limit_window_s": 0.5}, timeout=5
    )
    statuses = [_get(https, api, "donations").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = _get(https, api, "donations")
    assert limited.text == "Retry later\n"
    assert int(limited.headers["Retry-After"]) >= 1
    time.sleep(0.55)
    assert _get(https, api, "donations").status_code == 200


def test_injected_faults_use_donorbox_bodies(api: Running, https: requests.Session) -> None:
    https.put(f"{api.admin_url}/faults", json=[{"kind": "expired_token", "count": 1}], timeout=5)
    expired = _get(https, api, "donations")
    assert (expired.status_code, expired.text) == (401, "HTTP Basic: Access denied.\n")
    https.put(f"{api.admin_url}/faults", json=[{"kind": "status", "status": 500, "count": 1}], timeout=5)
    failed = _get(https, api, "donations")
    assert failed.status_code == 500
    assert failed.json()["error"] == "Internal Server Error"
