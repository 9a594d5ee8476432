"""The OAuth 2.0 token endpoint: JWT bearer, client credentials and refresh token grants.

Failures answer 400 with the OAuth error shape ``{"error", "error_description"}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ORG_ID = "00D000000000001AAA"
USER_ID = "005000000000001AAA"


class OAuthError(Exception):
    """An OAuth failure: ``error`` and ``error_description``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        """Return the OAuth error body."""
        return {"error": self.error, "error_description": self.description}


@dataclass
class Session:
    """An issued access token."""

    token: str
    username: str
    expires_at: float


def _jwt_grant(form: dict[str, str], settings: dict[str, Any], audiences: list[str]) -> str:
    """Verify a JWT bearer assertion; return the username (``sub``)."""
    assertion = form.get("assertion", "")
    key = settings["jwt_public_key"]
    if not assertion:
        raise OAuthError("invalid_request", "assertion is missing")
    if not key:
        raise OAuthError("invalid_client", "no certificate uploaded for this connected app")
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=["RS256"],
            audience=audiences,
            options={"require": ["iss", "sub", "aud", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise OAuthError("invalid_grant", "expired authorization code") from None
    except jwt.InvalidAudienceError:
        raise OAuthError("invalid_grant", "audience is invalid") from None
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "invalid assertion") from None
    if claims["iss"] != settings["client_id"]:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if claims["sub"] not in settings["users"]:
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")
    return str(claims["sub"])


def _client_credentials(form: dict[str, str], basic: tuple[str, str] | None, settings: dict[str, Any]) -> str:
    """Check the connected app's id and secret; return its run-as user."""
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if client_id != settings["client_id"]:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if not hmac.compare_digest(secret, settings["client_secret"]):
        raise OAuthError("invalid_client", "invalid client credentials")
    return str(settings["users"][0])


def _refresh(form: dict[str, str], settings: dict[str, Any]) -> str:
    """Check a refresh token; return its user."""
    if form.get("client_id", settings["client_id"]) != settings["client_id"]:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if form.get("refresh_token", "") not in settings["refresh_tokens"]:
        raise OAuthError("invalid_grant", "expired access/refresh token")
    return str(settings["users"][0])


def basic_auth(header: str | None) -> tuple[str, str] | None:
    """Decode an ``Authorization: Basic`` header."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def authenticate(
    form: dict[str, str], basic: tuple[str, str] | None, settings: dict[str, Any], base_url: str
) -> str:
    """Run the grant in ``form``; return the authenticated username or raise OAuthError."""
    grant = form.get("grant_type", "")
    if grant == JWT_GRANT:
        audiences = [*settings["jwt_audiences"], base_url]
        return _jwt_grant(form, settings, audiences)
    if grant == "client_credentials":
        return _client_credentials(form, basic, settings)
    if grant == "refresh_token":
        return _refresh(form, settings)
    raise OAuthError("unsupported_grant_type", "grant type not supported")


def issue(username: str, settings: dict[str, Any], base_url: str) -> tuple[Session, dict[str, Any]]:
    """Create a session for ``username``; return it and the token response body."""
    token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
    issued = int(time.time() * 1000)
    session = Session(token, username, time.time() + float(settings["token_ttl_s"]))
    signature = base64.b64encode(
        hmac.new(settings["client_secret"].encode(), f"{base_url}{issued}".encode(), hashlib.sha256).digest()
    ).decode()
    body = {
        "access_token": token,
        "instance_url": base_url,
        "id": f"https://login.salesforce.com/id/{ORG_ID}/{USER_ID}",
        "token_type": "Bearer",
        "issued_at": str(issued),
        "signature": signature,
        "scope": "api",
    }
    return session, body
