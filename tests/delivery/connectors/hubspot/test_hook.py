"""The HubSpot hook builds a working connector from an Airflow connection (custom or plain http)."""

from __future__ import annotations

import json

import pytest
from airflow.providers_manager import ProvidersManager

from donor_sync.delivery.connectors.hubspot import OAuthRefreshToken, StaticToken
from donor_sync.delivery.contracts import Operation
from donor_sync.hooks.hubspot import CONN_FIELDS, HubSpotHook, connection_type_info
from sandbox.common.runner import Running
from sandbox.common.tls import TlsFiles
from tests.delivery.connectors.hubspot.conftest import TOKEN, Admin, contact


def test_the_shipped_http_connection_shape_builds_a_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    # airflow_settings.yaml: conn_type http, host and password only.
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBSPOT",
        json.dumps({"conn_type": "http", "host": "https://127.0.0.1:8702", "password": "pat-na1-sandbox"}),
    )
    connector = HubSpotHook().get_connector()
    assert connector.settings.base_url == "https://127.0.0.1:8702"
    assert connector.settings.api_version == "v3"
    assert isinstance(connector.client.tokens, StaticToken)
    assert connector.client.tokens.token() == "pat-na1-sandbox"
    assert "pat-na1" not in repr(connector.client)


def test_a_hubspot_connection_pins_version_keys_and_limits_and_passes_the_test(
    monkeypatch: pytest.MonkeyPatch, hubspot: Running, sandbox_tls: TlsFiles, admin: Admin
) -> None:
    extra = {
        "contact_id_property": "email",
        "rate_limit_max": 40,
        "rate_limit_interval_ms": 10000,
        "daily_quota_reserve": "5%",
        "ca_bundle": str(sandbox_tls.ca_cert),
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBSPOT_PROD",
        json.dumps({"conn_type": "hubspot", "host": hubspot.base_url, "password": TOKEN, "extra": extra}),
    )
    hook = HubSpotHook("hubspot_prod")
    ok, message = hook.test_connection()
    assert ok, message
    assert "daily API calls left" in message
    assert TOKEN not in message
    connector = hook.get_connector()
    assert (connector.settings.daily_quota_reserve, connector.client.limiter.max_requests) == (0.05, 40)
    results = connector.push("contact", Operation.UPSERT, [contact(1, "d1", "hook@example.org")])
    assert results[0].ok
    assert [c["properties"]["email"] for c in admin.contacts()] == ["hook@example.org"]
    assert connector.client.limiter.max_requests == 40  # the override holds against HubSpot's 10,000


def test_test_connection_reports_a_refused_token(
    monkeypatch: pytest.MonkeyPatch, hubspot: Running, sandbox_tls: TlsFiles
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBSPOT",
        json.dumps(
            {
                "conn_type": "hubspot",
                "host": hubspot.base_url,
                "password": "pat-na1-revoked",
                "extra": {"ca_bundle": str(sandbox_tls.ca_cert)},
            }
        ),
    )
    ok, message = HubSpotHook().test_connection()
    assert not ok
    assert "access token was refused" in message
    assert "pat-na1-revoked" not in message


def test_an_oauth_app_connection_refreshes_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBSPOT",
        json.dumps(
            {
                "conn_type": "hubspot",
                "host": "https://api.hubapi.com",
                "login": "client-id",
                "password": "refresh-token",
                "extra": {"client_secret": "s3cret"},
            }
        ),
    )
    tokens = HubSpotHook().get_connector().client.tokens
    assert isinstance(tokens, OAuthRefreshToken)
    assert tokens.token_url == "https://api.hubapi.com/oauth/v1/token"
    assert "s3cret" not in repr(tokens)
    assert "refresh-token" not in repr(tokens)


def test_the_connection_form_is_valid_for_airflows_provider_manager() -> None:
    info = connection_type_info()
    assert info["connection-type"] == "hubspot"
    assert info["hook-class-name"] == "donor_sync.hooks.hubspot.HubSpotHook"
    assert set(CONN_FIELDS) >= {
        "api_version",
        "contact_id_property",
        "deal_id_property",
        "daily_quota_reserve",
        "rate_limit_max",
    }
    assert info["ui-field-behaviour"]["relabeling"]["password"] == "Access token"
    # The same validation Airflow applies to a hook's field behaviour.
    manager = ProvidersManager()  # type: ignore[no-untyped-call]
    manager._customized_form_fields_schema_validator.validate(HubSpotHook.get_ui_field_behaviour())
    assert CONN_FIELDS["client_secret"]["schema"]["format"] == "password"
