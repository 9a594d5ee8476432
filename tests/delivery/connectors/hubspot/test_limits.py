"""Rate limits, quota, retries, auth and deprecation signals against the HubSpot emulator."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from donor_sync.delivery.connectors.hubspot import DeprecationNotice, HubSpotConnector
from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass, Operation
from tests.delivery.connectors.hubspot.conftest import Admin, contact


def _statuses(admin: Admin) -> list[int | None]:
    return [r["status"] for r in admin.request_log() if not r["path"].startswith("/__admin")]


def test_the_limiter_paces_requests_to_the_window_without_a_429(
    make_connector: Callable[..., HubSpotConnector], admin: Admin
) -> None:
    admin.settings(rate_limit_max=5, rate_limit_interval_ms=1000)
    connector = make_connector(contact_id_property="email")  # email is unique: no setup calls
    started = time.monotonic()
    for i in range(12):  # 12 calls, 5 per rolling second: the last two wait for the third window
        results = connector.push("contact", Operation.UPSERT, [contact(i, f"d{i}", f"p{i}@example.org")])
        assert results[0].ok
    elapsed = time.monotonic() - started
    assert 429 not in _statuses(admin)
    assert connector.usage.rate_limited == 0
    # The first call went with the default limit; from its headers on, 5 per 1,000 ms.
    assert 1.95 <= elapsed < 2.9, elapsed
    assert connector.usage.throttled_s >= 1.5
    assert admin.state()["objects"]["contacts"]["count"] == 12


def test_rolling_429s_are_waited_out_and_no_record_is_lost(connector: HubSpotConnector, admin: Admin) -> None:
    admin.settings(rate_limit_interval_ms=1000)
    connector.push("contact", Operation.UPSERT, [contact(0, "d0", "p0@example.org")])  # learns the interval
    admin.faults({"kind": "status", "status": 429, "path": "batch/upsert", "count": 3})
    records = [contact(i, f"d{i}", f"p{i}@example.org") for i in range(1, 6)]
    results = connector.push("contact", Operation.UPSERT, records)
    assert all(r.ok for r in results)
    assert connector.usage.rate_limited == 3
    assert connector.usage.retries == 0  # a 429 is not a failed attempt
    assert admin.state()["objects"]["contacts"]["count"] == 6
    assert _statuses(admin)[-4:] == [429, 429, 429, 200]


def test_a_429_storm_longer_than_the_budget_stops_the_push_as_rate_limited(
    make_connector: Callable[..., HubSpotConnector], admin: Admin
) -> None:
    impatient = make_connector(rate_limit_interval_ms=200, max_rate_limit_wait_s=0.5)
    admin.faults({"kind": "status", "status": 429, "path": "batch/upsert"})
    with pytest.raises(DestinationUnavailableError) as stopped:
        impatient.push("deal", Operation.UPSERT, [contact(1, "d1")])
    assert stopped.value.error_class is FailureClass.RATE_LIMITED
    assert stopped.value.retry_after_s == pytest.approx(0.2)


def test_the_daily_limit_stops_the_push_and_quota_comes_from_the_headers(
    connector: HubSpotConnector, admin: Admin
) -> None:
    connector.push("contact", Operation.UPSERT, [contact(1, "d1", "a@example.org")])
    used = admin.state()["daily_requests_used"]
    quota = connector.quota()
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.window) == (250_000, 250_000 - used, "daily")
    assert connector.client.interval_quota() is not None
    assert connector.within_quota_reserve() is False

    admin.settings(daily_limit=used + 1)
    connector.push("contact", Operation.UPSERT, [contact(2, "d2", "b@example.org")])
    spent_quota = connector.quota()
    assert spent_quota is not None
    assert spent_quota.remaining == 0
    assert connector.within_quota_reserve() is True
    with pytest.raises(DestinationUnavailableError) as spent:
        connector.push("contact", Operation.UPSERT, [contact(3, "d3", "c@example.org")])
    assert (spent.value.error_class, spent.value.error_code) == (FailureClass.RATE_LIMITED, "DAILY")
    assert admin.state()["objects"]["contacts"]["count"] == 2


def test_5xx_and_resets_are_retried_inside_the_call(connector: HubSpotConnector, admin: Admin) -> None:
    admin.faults(
        {"kind": "status", "status": 503, "path": "batch/upsert", "count": 1},
        {"kind": "reset", "path": "batch/upsert", "count": 1},
        {"kind": "malformed", "path": "batch/upsert", "count": 1},
    )
    results = connector.push("contact", Operation.UPSERT, [contact(1, "d1", "a@example.org")])
    assert results[0].ok
    assert connector.usage.retries == 3
    assert admin.state()["objects"]["contacts"]["count"] == 1


def test_5xx_outlasting_the_retries_is_a_transient_destination_failure(
    connector: HubSpotConnector, admin: Admin
) -> None:
    admin.faults({"kind": "status", "status": 502, "path": "batch/upsert"})
    with pytest.raises(DestinationUnavailableError) as failed:
        connector.push("contact", Operation.UPSERT, [contact(1, "d1", "a@example.org")])
    assert (failed.value.error_class, failed.value.error_code) == (FailureClass.TRANSIENT, "HTTP_502")
    assert [s for s in _statuses(admin) if s == 502] == [502] * 4  # the policy's 4 attempts


def test_a_timeout_is_retried(make_connector: Callable[..., HubSpotConnector], admin: Admin) -> None:
    quick = make_connector(timeout_s=0.3)
    quick.ensure_properties()
    admin.faults({"kind": "timeout", "path": "batch/upsert", "count": 1, "delay_s": 1.0})
    assert quick.push("contact", Operation.UPSERT, [contact(1, "d1", "a@example.org")])[0].ok
    assert quick.usage.retries == 1


def test_401_is_auth_and_403_is_permanent(
    make_connector: Callable[..., HubSpotConnector], connector: HubSpotConnector, admin: Admin
) -> None:
    with pytest.raises(DestinationUnavailableError) as refused:
        make_connector(token="pat-na1-wrong").push("contact", Operation.UPSERT, [contact(1, "d1")])
    assert (refused.value.error_class, refused.value.http_status) == (FailureClass.AUTH, 401)
    assert refused.value.error_code == "INVALID_AUTHENTICATION"
    admin.faults({"kind": "status", "status": 403, "count": 1})
    with pytest.raises(DestinationUnavailableError) as scope:
        connector.push("contact", Operation.UPSERT, [contact(1, "d1")])
    assert (scope.value.error_class, scope.value.error_code) == (FailureClass.PERMANENT, "MISSING_SCOPES")


def test_deprecation_headers_are_reported_once_per_endpoint(
    make_connector: Callable[..., HubSpotConnector], admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[DeprecationNotice] = []
    watched = make_connector(on_deprecation=seen.append)
    watched.ensure_properties()
    sunset = {"Sunset": "Wed, 01 Sep 2027 00:00:00 GMT", "Deprecation": "@1788220800"}
    admin.faults({"kind": "status", "status": 503, "path": "batch/upsert", "count": 2, "headers": sunset})
    watched.push("contact", Operation.UPSERT, [contact(1, "d1", "a@example.org")])
    signals = sorted((n.signal.lower(), n.value, n.path) for n in seen)
    assert signals == [
        ("deprecation", "@1788220800", "/crm/v3/objects/contacts/batch/upsert"),
        ("sunset", "Wed, 01 Sep 2027 00:00:00 GMT", "/crm/v3/objects/contacts/batch/upsert"),
    ]
    assert watched.deprecations == seen
    assert "signals deprecation" in caplog.text
