"""Pure parts of the HubSpot connector: settings, paths, error classes, limiter, OAuth, versions."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests_mock

from donor_sync.delivery.connectors.hubspot import (
    AssociationType,
    HubSpotConnector,
    HubSpotSettings,
    OAuthRefreshToken,
    StaticToken,
    settings_from_connection,
)
from donor_sync.delivery.connectors.hubspot.auth import REFRESH_EARLY_S
from donor_sync.delivery.connectors.hubspot.client import Reply
from donor_sync.delivery.connectors.hubspot.errors import classify
from donor_sync.delivery.connectors.hubspot.paths import ApiPaths
from donor_sync.delivery.connectors.hubspot.ratelimit import SlidingWindowLimiter
from donor_sync.delivery.connectors.hubspot.results import Sent, map_batch
from donor_sync.delivery.contracts import (
    DestinationUnavailableError,
    FailureClass,
    Operation,
    OutboundRecord,
    RecordRef,
)
from donor_sync.errors import ConfigError

BASE = "https://hubspot.test"


# -- settings ------------------------------------------------------------------------------------
def test_a_plain_http_connection_gets_hubspots_defaults() -> None:
    extra: dict[str, Any] = {}
    settings = settings_from_connection("https://127.0.0.1:8702/", extra)
    assert (settings.base_url, settings.api_version) == ("https://127.0.0.1:8702", "v3")
    assert (settings.contact_id_property, settings.deal_id_property) == (
        "donor_sync_id",
        "donor_sync_gift_key",
    )
    assert (settings.rate_limit_max, settings.daily_quota_reserve, settings.verify) == (None, 0.1, True)
    assert settings_from_connection(None, {}).base_url == "https://api.hubapi.com"
    assert extra == {}


def test_hubspot_connection_extras_plain_or_prefixed_are_read_and_not_changed() -> None:
    extra = {
        "extra__hubspot__api_version": "2026-03",
        "contact_id_property": "email",
        "daily_quota_reserve": "25%",
        "rate_limit_max": "50",
        "extra__hubspot__rate_limit_interval_ms": 10000,
        "ca_bundle": "/etc/ca.pem",
        "deal_contact_association_types": "user_defined:42, HUBSPOT_DEFINED:3",
    }
    before = dict(extra)
    settings = settings_from_connection("api.hubapi.com", extra)
    assert settings.base_url == "https://api.hubapi.com"
    assert (settings.api_version, settings.contact_id_property, settings.daily_quota_reserve) == (
        "2026-03",
        "email",
        0.25,
    )
    assert (settings.rate_limit_max, settings.rate_limit_interval_ms, settings.verify) == (
        50,
        10000,
        "/etc/ca.pem",
    )
    assert settings.deal_contact_association_types == (
        AssociationType("USER_DEFINED", 42),
        AssociationType("HUBSPOT_DEFINED", 3),
    )
    assert extra == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"api_version": "v4"}, "api_version", id="version"),
        pytest.param({"rate_limit_max": "lots"}, "whole number", id="limit"),
        pytest.param({"daily_quota_reserve": "1.5"}, "share", id="reserve"),
        pytest.param({"contact_id_property": "Donor Id"}, "property name", id="property"),
        pytest.param({"deal_contact_association_types": "USER_DEFINED"}, "USER_DEFINED:123", id="types"),
    ],
)
def test_bad_connection_extras_are_config_errors(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_connection("h", extra)


def test_paths_follow_the_pinned_version() -> None:
    v3, dated = ApiPaths("v3"), ApiPaths("2026-03")
    assert (v3.objects("contacts"), dated.objects("contacts")) == (
        "/crm/v3/objects/contacts",
        "/crm/objects/2026-03/contacts",
    )
    assert (v3.properties("deals"), dated.properties("deals")) == (
        "/crm/v3/properties/deals",
        "/crm/properties/2026-03/deals",
    )
    assert (v3.associations("deals", "contacts"), dated.associations("deals", "contacts")) == (
        "/crm/v4/associations/deals/contacts",
        "/crm/associations/2026-03/deals/contacts",
    )


# -- error classes -------------------------------------------------------------------------------
_INVALID = (
    'Property values were not valid: [{"isValid":false,"message":"Email address ada@x.org is invalid",'
    '"error":"INVALID_EMAIL","name":"email"}]'
)


@pytest.mark.parametrize(
    ("error", "expected_class", "expected_code"),
    [
        pytest.param(
            {"category": "VALIDATION_ERROR", "message": _INVALID},
            FailureClass.VALIDATION,
            "INVALID_EMAIL",
            id="invalid-email",
        ),
        pytest.param(
            {
                "category": "CONFLICT",
                "message": "Contact already exists. Existing ID: 12",
                "context": {"existingId": ["12"], "propertyName": ["email"]},
            },
            FailureClass.DUPLICATE_RULE,
            "ALREADY_EXISTS",
            id="conflict",
        ),
        pytest.param(
            {
                "category": "OBJECT_NOT_FOUND",
                "message": "Object not found.",
                "context": {"id": ["ada@x.org"]},
            },
            FailureClass.PERMANENT,
            "OBJECT_NOT_FOUND",
            id="not-found",
        ),
        pytest.param(
            {
                "category": "VALIDATION_ERROR",
                "subCategory": "GDPR_BLOCKLISTED",
                "message": "Contact with email ada@x.org was permanently deleted",
            },
            FailureClass.CONSENT_BLOCKED,
            "GDPR_BLOCKLISTED",
            id="gdpr",
        ),
        pytest.param(
            {"category": "RATE_LIMITS", "message": "slow down"},
            FailureClass.RATE_LIMITED,
            "RATE_LIMITS",
            id="rate",
        ),
        pytest.param(
            {"category": "EXPIRED_AUTHENTICATION", "message": "expired"},
            FailureClass.AUTH,
            "EXPIRED_AUTHENTICATION",
            id="auth",
        ),
        pytest.param(
            {"category": "MISSING_SCOPES", "errors": [{"code": "MISSING_SCOPES", "message": "x"}]},
            FailureClass.PERMANENT,
            "MISSING_SCOPES",
            id="scope",
        ),
        pytest.param(
            {"category": "INTERNAL_ERROR", "message": "oops"},
            FailureClass.TRANSIENT,
            "INTERNAL_ERROR",
            id="internal",
        ),
        pytest.param({"message": "bad"}, FailureClass.VALIDATION, "VALIDATION_ERROR", id="status-only"),
    ],
)
def test_errors_are_classified_and_their_messages_drop_values(
    error: dict[str, Any], expected_class: FailureClass, expected_code: str
) -> None:
    vendor = classify(error, http_status=400)
    assert (vendor.error_class, vendor.code) == (expected_class, expected_code)
    assert "@" not in vendor.message
    assert "12" not in vendor.message


def test_batch_errors_find_their_record_by_trace_id_and_silence_is_transient() -> None:
    records = [OutboundRecord(i, "contact", f"d{i}", Operation.UPSERT, {}) for i in (1, 2, 3)]
    sent = [Sent(r, (r.record_key,)) for r in records]
    body = {
        "results": [{"id": "501", "objectWriteTraceId": "1", "new": True}],
        "errors": [{"category": "CONFLICT", "message": "x", "context": {"objectWriteTraceId": ["3"]}}],
    }
    results = map_batch(sent, Reply(207, body, "req-1"), result_keys=lambda r: [])
    assert [(r.ok, r.remote_id, r.created) for r in results[:1]] == [(True, "501", True)]
    assert (results[1].error_class, results[1].error_code) == (
        FailureClass.TRANSIENT,
        "MISSING_FROM_RESPONSE",
    )
    assert (results[2].error_class, results[2].vendor_request_id) == (FailureClass.DUPLICATE_RULE, "req-1")


# -- rate limiter --------------------------------------------------------------------------------
def test_the_limiter_waits_for_the_oldest_request_to_leave_the_window() -> None:
    limiter = SlidingWindowLimiter(2, 0.3, margin_s=0.0)
    started = time.monotonic()
    for _ in range(3):
        limiter.complete(limiter.acquire())
    assert 0.28 <= time.monotonic() - started < 0.5
    assert limiter.in_window() >= 1


def test_requests_of_other_clients_reported_by_hubspot_slow_this_one_down() -> None:
    limiter = SlidingWindowLimiter(10, 0.3)
    slot = limiter.acquire()
    limiter.complete(slot)
    # HubSpot says 2 left of 10 after our one request: 7 are someone else's.
    limiter.observe(max_requests=10, interval_ms=300, remaining=2, sent_at=slot.started)
    assert limiter.in_window() == 8
    started = time.monotonic()
    for _ in range(3):
        limiter.complete(limiter.acquire())
    assert time.monotonic() - started >= 0.25  # the third had to wait for the window to pass


def test_a_fixed_override_ignores_hubspots_max_but_penalties_hold_requests() -> None:
    limiter = SlidingWindowLimiter(3, 1.0, fixed=True)
    limiter.observe(max_requests=100, interval_ms=10_000, remaining=99)
    assert (limiter.max_requests, limiter.interval_s, limiter.server_max) == (3, 1.0, 100)
    limiter.penalize(0.2)
    started = time.monotonic()
    limiter.complete(limiter.acquire())
    assert time.monotonic() - started >= 0.19


# -- OAuth and API versions (transport faked) ----------------------------------------------------
def test_oauth_tokens_are_refreshed_by_expiry_not_on_401() -> None:
    with requests_mock.Mocker() as mock:
        token = mock.post(
            f"{BASE}/oauth/v1/token",
            [
                {
                    "json": {
                        "access_token": "at-1",
                        "refresh_token": "rt-2",
                        "expires_in": REFRESH_EARLY_S + 0.2,
                    }
                },
                {"json": {"access_token": "at-2", "expires_in": 1800}},
            ],
        )
        crm = mock.get(
            f"{BASE}/crm/v3/objects/contacts", status_code=401, json={"category": "EXPIRED_AUTHENTICATION"}
        )
        source = OAuthRefreshToken(f"{BASE}/oauth/v1/token", "client", "secret", "rt-1")
        connector = HubSpotConnector(HubSpotSettings(base_url=BASE), source)
        with pytest.raises(DestinationUnavailableError) as refused:
            connector.check()
        assert refused.value.error_class is FailureClass.AUTH
        assert source.token() == "at-1"
        assert source.refreshes == 1
        time.sleep(0.25)
        assert source.token() == "at-2"
        assert source.refreshes == 2
        assert "refresh_token=rt-2" in token.request_history[1].text  # the rotated refresh token
        assert crm.last_request.headers["Authorization"] == "Bearer at-1"


def test_a_refused_refresh_token_is_an_auth_failure() -> None:
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/oauth/v1/token", status_code=400, json={"message": "BAD_REFRESH_TOKEN"})
        with pytest.raises(DestinationUnavailableError) as refused:
            OAuthRefreshToken(f"{BASE}/oauth/v1/token", "client", "secret", "rt").token()
    assert (refused.value.error_class, refused.value.error_code) == (
        FailureClass.AUTH,
        "OAUTH_REFRESH_REFUSED",
    )


def test_a_dated_api_version_uses_the_dated_paths_and_body_deprecations_are_seen() -> None:
    connector = HubSpotConnector(HubSpotSettings(base_url=BASE, api_version="2026-03"), StaticToken("pat"))
    deal_ref, contact_ref = RecordRef("deal", "g1"), RecordRef("contact", "d1")
    association = OutboundRecord(
        1,
        "deal_contact_association",
        "g1",
        Operation.UPSERT,
        {},
        depends_on=(deal_ref, contact_ref),
        remote_refs={deal_ref: "77", contact_ref: "88"},
    )
    with requests_mock.Mocker() as mock:
        upsert = mock.post(
            f"{BASE}/crm/objects/2026-03/contacts/batch/upsert",
            json={
                "results": [{"id": "88", "objectWriteTraceId": "2", "new": False}],
                "warnings": ["This API is deprecated"],
            },
        )
        link = mock.post(
            f"{BASE}/crm/associations/2026-03/deals/contacts/batch/associate/default",
            json={"results": [{"from": {"id": "77"}, "to": {"id": "88"}}]},
        )
        contact = OutboundRecord(2, "contact", "d1", Operation.UPSERT, {"firstname": "A"})
        assert connector.push("contact", Operation.UPSERT, [contact])[0].remote_id == "88"
        assert (
            connector.push("deal_contact_association", Operation.UPSERT, [association])[0].remote_id
            == "77:88"
        )
        assert upsert.last_request.json()["inputs"] == [
            {
                "id": "d1",
                "idProperty": "donor_sync_id",
                "properties": {"firstname": "A"},
                "objectWriteTraceId": "2",
            }
        ]
        assert link.last_request.json() == {"inputs": [{"from": {"id": "77"}, "to": {"id": "88"}}]}
    assert [(n.signal, n.value) for n in connector.deprecations] == [
        ("body.warnings", "This API is deprecated")
    ]
    assert connector.usage.calls == 2
