"""The pure parts of the dashboard's auth: which token a request presents, and the CSRF tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from donor_sync.web.dashboard.auth import (
    AirflowAuthenticator,
    AuthUnavailable,
    Credential,
    CsrfTokens,
    Identity,
    Permission,
    TokenSource,
    credential_from,
)


@pytest.mark.parametrize(
    ("headers", "cookies", "expected"),
    [
        pytest.param({}, {}, None, id="nothing"),
        pytest.param({"authorization": "Bearer abc"}, {}, Credential("abc", TokenSource.HEADER), id="bearer"),
        pytest.param({"authorization": "bearer  abc "}, {}, Credential("abc", TokenSource.HEADER), id="case"),
        pytest.param({}, {"_token": "xyz"}, Credential("xyz", TokenSource.COOKIE), id="cookie"),
        pytest.param(
            {"authorization": "Bearer abc"},
            {"_token": "xyz"},
            Credential("abc", TokenSource.HEADER),
            id="both",
        ),
        pytest.param(
            {"authorization": "Basic YTpi"},
            {"_token": "xyz"},
            Credential("xyz", TokenSource.COOKIE),
            id="basic",
        ),
        pytest.param({"authorization": "Bearer "}, {}, None, id="empty-bearer"),
        pytest.param({}, {"_token": ""}, None, id="empty-cookie"),
        pytest.param({}, {"token": "xyz"}, None, id="other-cookie"),
    ],
)
def test_the_credential_is_the_bearer_header_else_the_ui_cookie(
    headers: dict[str, str], cookies: dict[str, str], expected: Credential | None
) -> None:
    assert credential_from(headers, cookies) == expected


def test_csrf_tokens_are_bound_to_the_user_the_secret_and_time() -> None:
    now = [1_800_000_000.0]
    tokens = CsrfTokens(b"secret", max_age_s=3600, clock=lambda: now[0])
    token = tokens.issue("alex")
    assert tokens.verify("alex", token)
    assert not tokens.verify("sam", token)
    assert not CsrfTokens(b"another secret", clock=lambda: now[0]).verify("alex", token)
    issued, mac = token.split(".")
    assert not tokens.verify("alex", f"{int(issued) + 1}.{mac}")  # the time is covered by the MAC
    for malformed in (None, "", ".", "abc.def", f"{issued}.", f"-{issued}.{mac}"):
        assert not tokens.verify("alex", malformed), malformed
    now[0] += 3599
    assert tokens.verify("alex", token)
    now[0] += 2
    assert not tokens.verify("alex", token), "expired"
    future = CsrfTokens(b"secret", clock=lambda: now[0] + 600).issue("alex")
    assert not tokens.verify("alex", future), "issued in the future beyond the skew allowed"


def test_the_csrf_secret_is_read_once_on_first_use_and_must_exist() -> None:
    reads: list[int] = []

    def secret() -> bytes:
        reads.append(1)
        return b"from airflow"

    tokens = CsrfTokens(secret)
    assert reads == []
    assert tokens.verify("alex", tokens.issue("alex"))
    assert len(reads) == 1
    with pytest.raises(AuthUnavailable):
        CsrfTokens(b"").issue("alex")


class _Manager:
    """An auth manager double that records the authorization questions asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def is_authorized_dag(self, *, method: str, details: Any, user: Any) -> bool:
        self.asked.append((method, details.id))
        return method == "GET"

    def get_url_login(self, **kwargs: Any) -> str:
        raise RuntimeError("no login page")


def test_permissions_map_to_dag_access_and_a_missing_manager_is_unavailable() -> None:
    manager = _Manager()
    auth = AirflowAuthenticator(dag_id="donors_nightly", auth_manager=lambda: manager)
    identity = Identity("alex", "alex")
    assert auth.is_authorized(identity, Permission.READ) is True
    assert auth.is_authorized(identity, Permission.DECIDE) is False
    assert manager.asked == [("GET", "donors_nightly"), ("PUT", "donors_nightly")]
    assert auth.login_url("/reviews") is None

    def not_ready() -> Any:
        raise RuntimeError("Auth Manager has not been initialized yet.")

    with pytest.raises(AuthUnavailable):
        asyncio.run(AirflowAuthenticator(auth_manager=not_ready).authenticate("token"))
