"""OAuth 2.0 for a Salesforce connected app: JWT bearer or client credentials, with a token cache.

Neither flow issues a refresh token and Salesforce does not say when an access token expires
(the org's session timeout decides), so a token is reused until it is ``max_age_s`` old or a
call answers ``INVALID_SESSION_ID``; then a new one is requested with the same grant.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests

from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass

log = logging.getLogger(__name__)

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - a URL path, not a secret
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Lifetime of a JWT assertion; Salesforce allows at most 3 minutes.
ASSERTION_TTL_S = 180
#: Reuse a token for at most this long (org session timeouts are 15 min to 24 h; 2 h is the default).
DEFAULT_TOKEN_MAX_AGE_S = 3600.0


@dataclass(frozen=True)
class JwtBearer:
    """JWT bearer flow: an RS256 assertion signed with the connected app's certificate key.

    :param consumer_key: the connected app's consumer key (``iss``).
    :param username: the pre-authorized integration user (``sub``).
    :param private_key: PEM of the RSA private key whose certificate the app holds.
    :param login_url: where the token is requested (login/test.salesforce.com or My Domain).
    :param audience: ``aud``; ``https://login.salesforce.com`` or ``https://test.salesforce.com``
        (see :func:`default_audience`).
    """

    consumer_key: str
    username: str
    private_key: str = field(repr=False)
    login_url: str
    audience: str

    def form(self, now: float) -> dict[str, str]:
        """Return the token request body with a fresh assertion."""
        claims = {
            "iss": self.consumer_key,
            "sub": self.username,
            "aud": self.audience,
            "exp": int(now) + ASSERTION_TTL_S,
        }
        return {"grant_type": JWT_GRANT, "assertion": jwt.encode(claims, self.private_key, algorithm="RS256")}


@dataclass(frozen=True)
class ClientCredentials:
    """Client-credentials flow (connected app with a "Run As" user); needs the My Domain login URL."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    login_url: str

    def form(self, now: float) -> dict[str, str]:
        """Return the token request body."""
        del now
        return {
            "grant_type": "client_credentials",
            "client_id": self.consumer_key,
            "client_secret": self.consumer_secret,
        }


Credentials = JwtBearer | ClientCredentials


def default_audience(login_url: str) -> str:
    """Return the JWT ``aud`` Salesforce expects for a login URL.

    Sandboxes (``test.salesforce.com``, ``*.sandbox.my.salesforce.com``) use the test audience,
    other Salesforce hosts the login audience; any other host (an Experience Cloud site, the
    local emulator) is its own audience.
    """
    host = login_url.split("://", 1)[-1].split("/", 1)[0].lower()
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return "https://test.salesforce.com"
    if host.endswith("salesforce.com"):
        return "https://login.salesforce.com"
    return login_url.rstrip("/")


@dataclass(frozen=True)
class AccessToken:
    """An access token and the instance it is valid for."""

    value: str = field(repr=False)
    instance_url: str
    obtained_at: float


class TokenProvider:
    """Request, cache and renew access tokens (thread-safe).

    :param post: sends the token request; ``(url, form) -> Response`` (the client's session,
        with the CA bundle and timeout already applied).
    :param clock: seconds, monotonic enough for ages (tests move it forward).
    """

    def __init__(
        self,
        credentials: Credentials,
        post: Callable[[str, dict[str, str]], requests.Response],
        *,
        max_age_s: float = DEFAULT_TOKEN_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self._post = post
        self.max_age_s = max_age_s
        self._clock = clock
        self._token: AccessToken | None = None
        self._lock = threading.Lock()
        self.requests_made = 0

    def get(self) -> AccessToken:
        """Return a cached token younger than ``max_age_s``, or a new one."""
        with self._lock:
            token = self._token
            if token is None or self._clock() - token.obtained_at >= self.max_age_s:
                token = self._token = self._request()
            return token

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (Salesforce answered INVALID_SESSION_ID); the next :meth:`get` renews."""
        with self._lock:
            if self._token is token:
                self._token = None

    def _request(self) -> AccessToken:
        url = self.credentials.login_url.rstrip("/") + TOKEN_PATH
        now = self._clock()
        try:
            response = self._post(url, self.credentials.form(time.time()))
        except requests.RequestException as exc:
            raise DestinationUnavailableError(
                f"Salesforce token endpoint unreachable: {type(exc).__name__}",
                error_class=FailureClass.TRANSIENT,
                error_code="TOKEN_ENDPOINT_UNREACHABLE",
            ) from exc
        self.requests_made += 1
        body = _json(response)
        if response.status_code >= 500:
            raise DestinationUnavailableError(
                f"Salesforce token endpoint answered HTTP {response.status_code}",
                error_class=FailureClass.TRANSIENT,
                error_code="TOKEN_ENDPOINT_ERROR",
                http_status=response.status_code,
            )
        if response.status_code != 200 or not body.get("access_token") or not body.get("instance_url"):
            error = str(body.get("error") or "invalid_token_response")
            raise DestinationUnavailableError(
                f"Salesforce refused the {type(self.credentials).__name__} grant: {error}",
                error_class=FailureClass.AUTH,
                error_code=error,
                http_status=response.status_code,
            )
        log.info(
            "Salesforce token obtained (%s) for %s", type(self.credentials).__name__, body["instance_url"]
        )
        return AccessToken(str(body["access_token"]), str(body["instance_url"]).rstrip("/"), now)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
