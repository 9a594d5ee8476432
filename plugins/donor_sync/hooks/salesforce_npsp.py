"""Salesforce NPSP credentials from an Airflow connection (custom type ``salesforce_npsp``).

Connection fields: login = integration username (JWT ``sub``), password = consumer secret
(client-credentials flow), extras as declared in :data:`CONNECTION_TYPE_INFO`. The extras of the
Airflow Salesforce provider's ``salesforce`` type are read too (``consumer_key``, ``domain``,
``instance_url``, ``private_key``/``private_key_file_path``, ``version``, ``consumer_secret``,
with or without the ``extra__salesforce__`` prefix), so an existing connection keeps working
when its type is switched.

Registering the type: since Airflow 3.2 a connection type and its form are declared in the
provider info of an installed package (entry point ``apache_airflow_provider``), under
``connection-types`` with ``conn-fields`` and ``ui-field-behaviour``; plugins cannot add
connection types. :data:`CONNECTION_TYPE_INFO` is that entry. The hook methods
``get_connection_form_widgets``/``get_ui_field_behaviour`` remain for older Airflow versions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from donor_sync.delivery.connectors.salesforce import (
    DEFAULT_API_VERSION,
    ClientCredentials,
    JwtBearer,
    SalesforceClient,
    SalesforceConnector,
    default_audience,
)
from donor_sync.delivery.connectors.salesforce.auth import Credentials
from donor_sync.delivery.connectors.salesforce.client import DEFAULT_TIMEOUT
from donor_sync.delivery.connectors.salesforce.connector import DEFAULT_BULK_THRESHOLD, DEFAULT_QUOTA_RESERVE
from donor_sync.delivery.contracts import DeliveryError
from donor_sync.errors import ConfigError
from donor_sync.provider_info import SALESFORCE_NPSP

__all__ = [
    "CONNECTION_TYPE_INFO",
    "SalesforceConnectionSettings",
    "SalesforceNpspHook",
    "settings_from_connection",
]

CONN_TYPE = "salesforce_npsp"
AUTH_FLOWS = ("jwt", "client_credentials")
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
_PREFIXES = ("", f"extra__{CONN_TYPE}__", "extra__salesforce__")


#: The provider-info ``connection-types`` entry of this hook (declarative form, Airflow >= 3.2),
#: kept in :mod:`donor_sync.provider_info`, which Airflow reads without importing the hooks.
CONNECTION_TYPE_INFO: dict[str, Any] = SALESFORCE_NPSP


@dataclass(frozen=True)
class SalesforceConnectionSettings:
    """What a ``salesforce_npsp`` connection says, checked (the private key not yet loaded)."""

    auth_flow: str
    consumer_key: str
    username: str
    login_url: str
    audience: str
    instance_url: str | None
    api_version: str
    bulk_threshold: int
    quota_reserve: float
    verify: str | bool
    timeout: float | None
    private_key: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)


def _extra(extra: Mapping[str, Any], *names: str) -> Any:
    """Return the first non-empty extra among ``names`` (bare or prefixed), else None."""
    for name in names:
        for prefix in _PREFIXES:
            value = extra.get(prefix + name)
            if value not in (None, ""):
                return value
    return None


def _login_url(host: str | None, extra: Mapping[str, Any]) -> str:
    explicit = _extra(extra, "login_url") or host
    if explicit:
        text = str(explicit).rstrip("/")
        return text if "://" in text else f"https://{text}"
    domain = _extra(extra, "domain")
    if domain:
        text = str(domain).strip().rstrip("/")
        if "://" in text:
            return text
        return f"https://{text}" if text.endswith("salesforce.com") else f"https://{text}.salesforce.com"
    instance = _extra(extra, "instance_url")
    return str(instance).rstrip("/") if instance else DEFAULT_LOGIN_URL


def _number(extra: Mapping[str, Any], name: str, kind: type[int] | type[float], default: float) -> Any:
    value = _extra(extra, name)
    if value is None:
        return kind(default)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"salesforce_npsp connection: extra {name!r} must be a number") from None


def settings_from_connection(
    login: str | None, password: str | None, host: str | None, extra: Mapping[str, Any]
) -> SalesforceConnectionSettings:
    """Return the checked settings of a connection's fields; ``extra`` is not changed.

    :raises ConfigError: a required field is missing or malformed (the message names it).
    """
    consumer_key = _extra(extra, "consumer_key", "client_id")
    private_key = _extra(extra, "private_key", "private_key_file_path")
    secret = password or _extra(extra, "consumer_secret", "client_secret")
    flow = str(_extra(extra, "auth_flow") or ("jwt" if private_key else "client_credentials")).lower()
    if flow not in AUTH_FLOWS:
        raise ConfigError(f"salesforce_npsp connection: auth_flow must be one of {AUTH_FLOWS}, got {flow!r}")
    if not consumer_key:
        raise ConfigError("salesforce_npsp connection: extra 'consumer_key' is required")
    if flow == "jwt" and not (private_key and login):
        raise ConfigError("salesforce_npsp connection: the jwt flow needs login (username) and 'private_key'")
    if flow == "client_credentials" and not secret:
        raise ConfigError(
            "salesforce_npsp connection: the client_credentials flow needs the password (secret)"
        )
    login_url = _login_url(host, extra)
    version = str(_extra(extra, "api_version", "version") or DEFAULT_API_VERSION).removeprefix("v")
    timeout = _extra(extra, "timeout")
    instance = _extra(extra, "instance_url")
    return SalesforceConnectionSettings(
        auth_flow=flow,
        consumer_key=str(consumer_key),
        username=login or "",
        login_url=login_url,
        audience=str(_extra(extra, "audience") or default_audience(login_url)),
        instance_url=str(instance) if instance else None,
        api_version=version,
        bulk_threshold=_number(extra, "bulk_threshold", int, DEFAULT_BULK_THRESHOLD),
        quota_reserve=_number(extra, "quota_reserve", float, DEFAULT_QUOTA_RESERVE),
        verify=str(_extra(extra, "ca_bundle")) if _extra(extra, "ca_bundle") else True,
        timeout=float(timeout) if timeout is not None else None,
        private_key=str(private_key) if private_key else None,
        client_secret=str(secret) if secret else None,
    )


def load_private_key(value: str) -> str:
    """Return the PEM text of a private key given as PEM or as a file path.

    :raises ConfigError: the file cannot be read (its path is named; its content never is).
    """
    if value.lstrip().startswith("-----BEGIN"):
        return value
    path = Path(value).expanduser()
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"salesforce_npsp connection: cannot read private key file {path}: {exc.strerror}"
        ) from None


def credentials_from_settings(settings: SalesforceConnectionSettings) -> Credentials:
    """Return the OAuth credentials for the connection's flow (reads the key file)."""
    if settings.auth_flow == "jwt":
        return JwtBearer(
            consumer_key=settings.consumer_key,
            username=settings.username,
            private_key=load_private_key(settings.private_key or ""),
            login_url=settings.login_url,
            audience=settings.audience,
        )
    return ClientCredentials(settings.consumer_key, settings.client_secret or "", settings.login_url)


class SalesforceNpspHook(BaseHook):
    """Build a :class:`SalesforceConnector` from a ``salesforce_npsp`` connection.

    :param salesforce_conn_id: the connection id.
    :param on_deprecation: called with each API deprecation signal (e.g. to alert on Slack).
    """

    conn_name_attr = "salesforce_conn_id"
    default_conn_name = "salesforce_npsp"
    conn_type = CONN_TYPE
    hook_name = "Salesforce NPSP (donor-sync)"

    def __init__(
        self,
        salesforce_conn_id: str = default_conn_name,
        *,
        on_deprecation: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.salesforce_conn_id = salesforce_conn_id
        self.on_deprecation = on_deprecation

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the form fields (Airflow < 3.2; newer versions read :data:`CONNECTION_TYPE_INFO`)."""
        from wtforms import IntegerField, PasswordField, StringField

        widgets: dict[str, Any] = {}
        for name, spec in CONNECTION_TYPE_INFO["conn-fields"].items():
            types = spec["schema"]["type"]
            if spec["schema"].get("format") == "password":
                widgets[name] = PasswordField(spec["label"], description=spec["description"])
            elif "integer" in types:
                widgets[name] = IntegerField(spec["label"], description=spec["description"])
            else:
                widgets[name] = StringField(spec["label"], description=spec["description"])
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return hidden, relabelled and placeholder fields (Airflow < 3.2)."""
        behaviour = CONNECTION_TYPE_INFO["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    def settings(self) -> SalesforceConnectionSettings:
        """Return the checked settings of the connection."""
        conn = self.get_connection(self.salesforce_conn_id)
        return settings_from_connection(conn.login, conn.password, conn.host, conn.extra_dejson)

    @cached_property
    def connector(self) -> SalesforceConnector:
        """The connector for this connection (built once per hook)."""
        settings = self.settings()
        client = SalesforceClient(
            credentials_from_settings(settings),
            api_version=settings.api_version,
            verify=settings.verify,
            timeout=settings.timeout or DEFAULT_TIMEOUT,
            on_deprecation=self.on_deprecation,
        )
        return SalesforceConnector(
            client,
            entities=_mapped_entities(),
            bulk_threshold=settings.bulk_threshold,
            quota_reserve=settings.quota_reserve,
        )

    def get_conn(self) -> SalesforceConnector:
        """Return the connector (the hook's "connection")."""
        return self.connector

    def get_connector(self) -> SalesforceConnector:
        """Return the connector for this connection."""
        return self.connector

    def test_connection(self) -> tuple[bool, str]:
        """Authenticate, check the pinned version and read the daily API allowance."""
        try:
            connector = self.get_connector()
            limits = connector.limits()
        except (ConfigError, DeliveryError) as exc:
            return False, f"{type(exc).__name__}: {exc}"
        daily = limits.get("DailyApiRequests") or {}
        return True, (
            f"Connected to Salesforce API v{connector.client.api_version}: "
            f"{daily.get('Remaining', '?')} of {daily.get('Max', '?')} daily API requests left"
        )


def _mapped_entities() -> dict[str, tuple[str, str]]:
    """Entity -> (sObject, external id field) of the shipped Salesforce mapping, in push order."""
    from donor_sync.delivery.mapping import load_destination, push_order

    return {
        o.entity: (o.object_name, o.external_id_field or "Id")
        for o in push_order(load_destination("salesforce"))
        if not o.is_association and o.object_name
    }
