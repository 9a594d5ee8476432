"""Bearer tokens for HubSpot: a private app's static token, or an OAuth app's refreshed token.

HubSpot says a 401 is not a signal to refresh an OAuth token: refresh by ``expires_in``
instead, a little before the token runs out. A private-app token never expires by itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import requests

from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass

#: Refresh this long before HubSpot's ``expires_in`` runs out.
REFRESH_EARLY_S = 300.0


class TokenSource(Protocol):
    """Gives the bearer token for the next request."""

    def token(self) -> str:
        """Return a token valid for the next request."""
        ...


@dataclass(frozen=True)
class StaticToken:
    """A private app's access token (``pat-...``); rotated by editing the connection."""

    value: str

    def __post_init__(self) -> None:
        if not self.value:
            raise ValueError("a HubSpot access token is required")

    def token(self) -> str:
        """Return the token."""
        return self.value

    def __repr__(self) -> str:
        return "StaticToken(***)"


@dataclass
class OAuthRefreshToken:
    """An OAuth app's access token, refreshed with ``grant_type=refresh_token`` by expiry.

    :param token_url: ``https://api.hubapi.com/oauth/v1/token`` (or the sandbox's).
    """

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    verify: str | bool = True
    timeout_s: float = 30.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    refreshes: int = 0
    _access: str = field(default="", repr=False)
    _expires_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def token(self) -> str:
        """Return the current access token, refreshing it first when it is about to expire."""
        with self._lock:
            if not self._access or time.monotonic() >= self._expires_at - REFRESH_EARLY_S:
                self._refresh()
            return self._access

    def _refresh(self) -> None:
        try:
            response = self.session.post(
                self.token_url,
                data={
                    "grant_type": "refresh_token",
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "refresh_token": self.refresh_token,
                },
                timeout=self.timeout_s,
                verify=self.verify,
            )
        except requests.RequestException as exc:
            raise DestinationUnavailableError(
                f"HubSpot OAuth token refresh failed: {type(exc).__name__}",
                error_class=FailureClass.TRANSIENT,
                error_code="OAUTH_UNREACHABLE",
            ) from exc
        if response.status_code >= 500:
            raise DestinationUnavailableError(
                f"HubSpot OAuth token refresh answered HTTP {response.status_code}",
                error_class=FailureClass.TRANSIENT,
                error_code="OAUTH_UNAVAILABLE",
                http_status=response.status_code,
            )
        if response.status_code != 200:
            # The body may name the client; keep the status only.
            raise DestinationUnavailableError(
                f"HubSpot refused the OAuth refresh token (HTTP {response.status_code}); "
                "reconnect the app and update the connection",
                error_class=FailureClass.AUTH,
                error_code="OAUTH_REFRESH_REFUSED",
                http_status=response.status_code,
            )
        body = response.json()
        self._access = str(body["access_token"])
        self._expires_at = time.monotonic() + float(body.get("expires_in") or 1800)
        if body.get("refresh_token"):
            self.refresh_token = str(body["refresh_token"])
        self.refreshes += 1
