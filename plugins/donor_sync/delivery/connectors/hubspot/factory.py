"""Build a :class:`HubSpotConnector` from a connection's plain fields (no Airflow import).

A private app's token is the password. An OAuth app puts its client id in the login, its
refresh token in the password and its client secret in the ``client_secret`` extra; the
access token is then refreshed by expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from donor_sync.delivery.connectors.hubspot.auth import OAuthRefreshToken, StaticToken, TokenSource
from donor_sync.delivery.connectors.hubspot.connector import HubSpotConnector
from donor_sync.delivery.connectors.hubspot.deprecation import DeprecationNotice
from donor_sync.delivery.connectors.hubspot.settings import HubSpotSettings, settings_from_connection
from donor_sync.errors import ConfigError


def token_source(
    settings: HubSpotSettings, login: str | None, password: str | None, extra: Mapping[str, Any]
) -> TokenSource:
    """Return the connection's token source: OAuth refresh when a client id is set, else static."""
    if not password:
        raise ConfigError("hubspot connection: the password (access token) is empty")
    secret = extra.get("client_secret") or extra.get("extra__hubspot__client_secret")
    if login and secret:
        token_url = str(extra.get("token_url") or f"{settings.base_url}/oauth/v1/token")
        return OAuthRefreshToken(
            token_url,
            login,
            str(secret),
            password,
            verify=settings.verify,
            timeout_s=settings.timeout_s,
        )
    return StaticToken(password)


def connector_from_connection(
    host: str | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    *,
    on_deprecation: Callable[[DeprecationNotice], None] | None = None,
) -> HubSpotConnector:
    """Return a connector for a ``hubspot`` (or plain ``http``) connection's fields."""
    settings = settings_from_connection(host, extra)
    tokens = token_source(settings, login, password, extra)
    return HubSpotConnector(settings, tokens, on_deprecation=on_deprecation)
