"""The ``salesforce_npsp`` hook: connection fields parsed (the provider's ``salesforce`` shape too),
the declared form valid for Airflow, and a working connector built from a connection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from donor_sync.delivery.contracts import Operation
from donor_sync.errors import ConfigError
from donor_sync.hooks.salesforce_npsp import (
    CONNECTION_TYPE_INFO,
    SalesforceNpspHook,
    settings_from_connection,
)
from sandbox.common.runner import Running
from sandbox.common.tls import TlsFiles
from tests.delivery.connectors.salesforce._support import (
    CLIENT_ID,
    CLIENT_SECRET,
    USER,
    private_pem,
    record,
    rows,
)

AIRFLOW_DIR = Path(airflow.__file__).parent


def test_reads_the_salesforce_provider_shape_of_airflow_settings() -> None:
    extra = {
        "consumer_key": "sandbox-connected-app",
        "domain": "test",
        "instance_url": "https://127.0.0.1:8701",
        "private_key_file_path": ".local/sandbox/salesforce_jwt.key",
        "version": "62.0",
    }
    before = dict(extra)
    settings = settings_from_connection("integration@sandbox.donor-sync.test", None, None, extra)
    assert extra == before, "the extras are not changed"
    assert settings.auth_flow == "jwt"
    assert settings.consumer_key == "sandbox-connected-app"
    assert settings.login_url == "https://test.salesforce.com"
    assert settings.audience == "https://test.salesforce.com"
    assert settings.instance_url == "https://127.0.0.1:8701"
    assert settings.private_key == ".local/sandbox/salesforce_jwt.key"
    assert (settings.api_version, settings.bulk_threshold, settings.quota_reserve) == ("62.0", 2000, 0.1)
    assert ".local/sandbox" not in repr(settings), "key material stays out of reprs"


@pytest.mark.parametrize(
    ("login", "password", "host", "extra", "expected"),
    [
        pytest.param(
            None,
            "s3cret",
            None,
            {
                "extra__salesforce__consumer_key": "ck",
                "login_url": "acme.my.salesforce.com",
                "api_version": "v61.0",
            },
            {
                "auth_flow": "client_credentials",
                "login_url": "https://acme.my.salesforce.com",
                "api_version": "61.0",
            },
            id="client-credentials-prefixed-extras",
        ),
        pytest.param(
            "u@x.org",
            None,
            None,
            {"consumer_key": "ck", "private_key": "-----BEGIN PRIVATE KEY-----", "domain": "acme.my"},
            {
                "auth_flow": "jwt",
                "login_url": "https://acme.my.salesforce.com",
                "audience": "https://login.salesforce.com",
            },
            id="jwt-my-domain",
        ),
        pytest.param(
            "u@x.org",
            None,
            "https://127.0.0.1:8701",
            {"extra__salesforce_npsp__consumer_key": "ck", "private_key": "k.pem", "bulk_threshold": "500"},
            {
                "login_url": "https://127.0.0.1:8701",
                "audience": "https://127.0.0.1:8701",
                "bulk_threshold": 500,
            },
            id="host-as-login-url",
        ),
    ],
)
def test_settings_from_connection(
    login: str | None, password: str | None, host: str | None, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    settings = settings_from_connection(login, password, host, extra)
    assert {k: getattr(settings, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("login", "password", "extra", "names"),
    [
        pytest.param("u", "p", {}, "consumer_key", id="no-consumer-key"),
        pytest.param("u", None, {"consumer_key": "k", "auth_flow": "saml"}, "auth_flow", id="bad-flow"),
        pytest.param(None, None, {"consumer_key": "k", "private_key": "k.pem"}, "login", id="jwt-no-user"),
        pytest.param("u", None, {"consumer_key": "k"}, "password", id="cc-no-secret"),
        pytest.param(
            "u", "p", {"consumer_key": "k", "bulk_threshold": "lots"}, "bulk_threshold", id="bad-number"
        ),
    ],
)
def test_settings_errors_name_the_field(
    login: str | None, password: str | None, extra: dict[str, Any], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        settings_from_connection(login, password, None, extra)


def test_declared_connection_type_is_valid_for_airflow() -> None:
    provider_info = {
        "package-name": "donor-sync",
        "name": "donor-sync",
        "description": "donor-sync hooks",
        "connection-types": [CONNECTION_TYPE_INFO],
    }
    jsonschema.validate(provider_info, json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text()))
    behaviour = SalesforceNpspHook.get_ui_field_behaviour()
    jsonschema.validate(
        behaviour, json.loads((AIRFLOW_DIR / "customized_form_field_behaviours.schema.json").read_text())
    )
    assert behaviour["relabeling"] == {"login": "Username", "password": "Client secret"}
    fields = CONNECTION_TYPE_INFO["conn-fields"]
    assert {"consumer_key", "private_key", "auth_flow", "login_url", "instance_url", "api_version"} <= set(
        fields
    )
    assert {"bulk_threshold", "quota_reserve"} <= set(fields)
    assert fields["private_key"]["schema"]["format"] == "password", "masked in the UI and logs"


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "salesforce_npsp", **fields})
    )


def test_hook_builds_a_working_connector_from_a_jwt_connection(
    sf: Running,
    sandbox_tls: TlsFiles,
    private_key: rsa.RSAPrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "salesforce_jwt.key"
    key_file.write_text(private_pem(private_key))
    _connection(
        monkeypatch,
        "salesforce_npsp",
        login=USER,
        extra={
            "consumer_key": CLIENT_ID,
            "private_key_file_path": str(key_file),
            "login_url": sf.base_url,
            "version": "60.0",
            "bulk_threshold": 5000,
            "ca_bundle": str(sandbox_tls.ca_cert),
        },
    )
    hook = SalesforceNpspHook()
    ok, message = hook.test_connection()
    assert ok, message
    assert message.startswith("Connected to Salesforce API v60.0: ")
    connector = hook.get_connector()
    assert connector is hook.get_conn()
    assert connector.bulk_threshold == 5000
    assert connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])[0].ok
    assert len(rows(sf, "Contact")) == 1
    assert any("/services/data/v60.0/" in r["path"] for r in sf.emulator.request_log)


def test_client_credentials_connection_and_a_failing_test(
    sf: Running, sandbox_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = {"consumer_key": CLIENT_ID, "login_url": sf.base_url, "ca_bundle": str(sandbox_tls.ca_cert)}
    _connection(monkeypatch, "sf_good", password=CLIENT_SECRET, extra=extra)
    assert SalesforceNpspHook("sf_good").test_connection()[0]

    _connection(monkeypatch, "sf_bad", password="not-the-secret", extra=extra)
    ok, message = SalesforceNpspHook("sf_bad").test_connection()
    assert not ok
    assert "invalid_client" in message
    assert "not-the-secret" not in message
