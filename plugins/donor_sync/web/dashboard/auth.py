"""Who may use the dashboard: Airflow's own login (its JWT), Airflow's authorization, and CSRF tokens.

Airflow does not put plugin apps behind its login, so the dashboard checks every request itself,
with Airflow's machinery rather than a copy of it:

* **The token.** The ``Authorization: Bearer`` header (scripts: ``POST /auth/token``), else the
  ``_token`` cookie the Airflow UI sets after login. That is the precedence of Airflow's own
  ``airflow.api_fastapi.core_api.security.get_user``.
* **Validation.** The auth manager's ``get_user_from_token`` checks what the API server checks for
  ``/api/v2``: the signature (``[api_auth] jwt_secret`` or the configured keys and JWKS), the
  audience, the issuer, the expiry with ``jwt_leeway``, and the revocation list that logging out
  writes. Then it builds the user.
* **Authorization.** The auth manager's ``is_authorized_dag`` on the DAG that owns the review queue
  (``donors_nightly``). ``GET`` lets a user read the dashboard. ``PUT`` (edit the DAG) lets a user
  decide reviews and open a review's two donor records (PII).

Airflow is imported only when a request is checked. Importing this module is cheap, and the
library stays free of Airflow.

State-changing requests that carry the cookie also need a CSRF token from :class:`CsrfTokens`;
docs/dashboard.md explains why.

External monitors cannot log in to Airflow. The health endpoint alone also takes a **monitor
token**: a secret kept as the password of the Airflow connection ``sync_health_monitor``, sent as
``Authorization: Bearer <token>`` and compared in constant time (:func:`monitor_token_matches`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "COOKIE_NAME",
    "MIN_MONITOR_TOKEN_LENGTH",
    "MONITOR_CONNECTION",
    "REVIEW_DAG_ID",
    "AirflowAuthenticator",
    "AuthUnavailable",
    "AuthenticationFailed",
    "Authenticator",
    "Credential",
    "CsrfTokens",
    "Identity",
    "Permission",
    "TokenSource",
    "credential_from",
    "monitor_token_matches",
]

#: The cookie the Airflow UI keeps its JWT in (``airflow...base_auth_manager.COOKIE_NAME_JWT_TOKEN``).
COOKIE_NAME = "_token"
#: The DAG whose permissions govern the dashboard: it runs the full dedup pass and owns the queue.
REVIEW_DAG_ID = "donors_nightly"
#: The Airflow connection whose password holds the monitor token(s) (one per line, for rotation).
MONITOR_CONNECTION = "sync_health_monitor"
#: Shorter configured monitor tokens are ignored: a guessable secret must not open the endpoint.
MIN_MONITOR_TOKEN_LENGTH = 24


class Permission(StrEnum):
    """What a request needs: read the dashboard, or decide (and see the donors of) a review."""

    READ = "read"
    DECIDE = "decide"


class TokenSource(StrEnum):
    """Where a request's token came from; cookie-borne tokens need a CSRF token to change state."""

    HEADER = "header"
    COOKIE = "cookie"


@dataclass(frozen=True)
class Credential:
    """The token a request presented, and where it came from."""

    token: str = field(repr=False)
    source: TokenSource


@dataclass(frozen=True)
class Identity:
    """An authenticated user: the id the audit log records, and the auth manager's own user object."""

    user_id: str
    display_name: str
    user: Any = field(default=None, repr=False, compare=False)


class AuthenticationFailed(Exception):  # noqa: N818 - a refusal, not a bug
    """The token is missing, expired, forged, revoked or otherwise not valid (answered with 401).

    :param reason: ``missing``, ``expired`` or ``invalid`` (never the token or the validator's text).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthUnavailable(Exception):  # noqa: N818 - a state, not a bug
    """The token could not be checked now (auth manager not ready, metadata database down): 503."""


class Authenticator(Protocol):
    """How the dashboard checks a token and a permission (Airflow's in production)."""

    async def authenticate(self, token: str) -> Identity:
        """Return the user the token was issued to.

        :raises AuthenticationFailed: the token is not valid.
        :raises AuthUnavailable: it cannot be checked now.
        """
        ...

    def is_authorized(self, identity: Identity, permission: Permission) -> bool:
        """Return whether the user may do what ``permission`` names (may block: call off the loop)."""
        ...

    def login_url(self, next_url: str) -> str | None:
        """Return where to send a browser to sign in (coming back to ``next_url``), if known."""
        ...


def credential_from(headers: Mapping[str, str], cookies: Mapping[str, str]) -> Credential | None:
    """Return the request's token: a Bearer ``Authorization`` header first, else the UI's cookie.

    A header with another scheme (``Basic ...``) is ignored, as Airflow's ``get_user`` ignores it.
    """
    scheme, _, value = (headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credential(value.strip(), TokenSource.HEADER)
    cookie = cookies.get(COOKIE_NAME)
    if cookie:
        return Credential(cookie, TokenSource.COOKIE)
    return None


class AirflowAuthenticator:
    """Checks tokens and permissions with the API server's auth manager (``get_auth_manager()``).

    :param dag_id: the DAG whose permissions govern the dashboard.
    :param auth_manager: returns the auth manager to use (default: the API server's, looked up per
        request because it is created after plugins are imported).
    """

    def __init__(self, *, dag_id: str = REVIEW_DAG_ID, auth_manager: Callable[[], Any] | None = None) -> None:
        self.dag_id = dag_id
        self._auth_manager = auth_manager

    def _manager(self) -> Any:
        if self._auth_manager is not None:
            return self._auth_manager()
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager()

    async def authenticate(self, token: str) -> Identity:
        """Validate ``token`` with ``BaseAuthManager.get_user_from_token``; return its user."""
        import jwt

        try:
            manager = self._manager()
        except Exception as exc:  # the API server has not initialised its auth manager
            raise AuthUnavailable(type(exc).__name__) from None
        try:
            user = await manager.get_user_from_token(token)
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("expired") from None
        except jwt.InvalidTokenError:  # bad signature, audience, issuer, claims; revoked; unknown user
            raise AuthenticationFailed("invalid") from None
        except Exception as exc:  # the revocation list's database, a JWKS endpoint...
            raise AuthUnavailable(type(exc).__name__) from None
        return Identity(str(user.get_id()), str(user.get_name()), user)

    def is_authorized(self, identity: Identity, permission: Permission) -> bool:
        """Ask ``is_authorized_dag``: GET on the DAG to read, PUT (edit the DAG) to decide."""
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

        method = "GET" if permission is Permission.READ else "PUT"
        return bool(
            self._manager().is_authorized_dag(
                method=method, details=DagDetails(id=self.dag_id), user=identity.user
            )
        )

    def login_url(self, next_url: str) -> str | None:
        """Return the auth manager's login page (``get_url_login(next_url=...)``), or None."""
        try:
            return str(self._manager().get_url_login(next_url=next_url))
        except Exception:  # no login page to offer: the caller answers 401 instead
            return None


SecretSource = bytes | Callable[[], bytes]


class CsrfTokens:
    """CSRF tokens for forms sent with the login cookie: ``<issued>.<HMAC-SHA256>`` bound to the user.

    The HMAC covers the user id and the time of issue. Its key is derived from a server secret
    (in Airflow: ``[api] secret_key``, which every API server worker shares). A cross-site page
    cannot read the token, because the page that carries it needs the login cookie and the same
    origin. It cannot forge one without the secret. A token is good for ``max_age_s``, so it
    survives a refresh of the login token by the auth manager.

    :param secret: the server secret, or a function returning it (read on first use).
    """

    def __init__(
        self,
        secret: SecretSource,
        *,
        max_age_s: int = 12 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._key: bytes | None = None
        self.max_age_s = max_age_s
        self._clock = clock

    def _derived_key(self) -> bytes:
        if self._key is None:
            secret = self._secret() if callable(self._secret) else self._secret
            if not secret:
                raise AuthUnavailable("no CSRF secret configured")
            self._key = hmac.new(secret, b"donor-sync dashboard csrf v1", hashlib.sha256).digest()
        return self._key

    def _mac(self, user_id: str, issued: int) -> str:
        message = f"{user_id}\x00{issued}".encode()
        return hmac.new(self._derived_key(), message, hashlib.sha256).hexdigest()

    def issue(self, user_id: str) -> str:
        """Return a token for ``user_id``'s forms."""
        issued = int(self._clock())
        return f"{issued}.{self._mac(user_id, issued)}"

    def verify(self, user_id: str, token: str | None) -> bool:
        """Return whether ``token`` was issued to ``user_id`` by this server and is still fresh."""
        issued_text, _, mac = (token or "").partition(".")
        if not issued_text.isdigit() or not mac:
            return False
        issued = int(issued_text)
        age = self._clock() - issued
        if age < -60 or age > self.max_age_s:  # a minute of clock skew between workers is tolerated
            return False
        return hmac.compare_digest(mac, self._mac(user_id, issued))


def monitor_token_matches(presented: str, configured: tuple[str, ...] | list[str]) -> bool:
    """Return whether ``presented`` is one of the configured monitor tokens, in constant time.

    Both sides are hashed first, so the comparison takes as long whatever their lengths, and every
    configured token is compared (no early exit). Tokens shorter than
    :data:`MIN_MONITOR_TOKEN_LENGTH` are never accepted.
    """
    digest = hashlib.sha256(presented.encode()).digest()
    matched = False
    for token in configured:
        same = hmac.compare_digest(digest, hashlib.sha256(token.encode()).digest())
        matched |= same and len(token) >= MIN_MONITOR_TOKEN_LENGTH
    return matched
