"""Dashboard fixtures: Airflow's auth manager and tokens minted the way Airflow mints them, a seeded
staging database, and TestClients on ``create_app`` with that database injected.

Tokens come from the auth manager of the test's Airflow configuration (SimpleAuthManager, the
``[api_auth] jwt_secret`` Airflow generates and keeps for the process). They are minted with
``generate_jwt``, as ``POST /auth/token`` does. Validation goes through the real
``get_user_from_token``, which also checks Airflow's revocation table, so that one table is
created in the test's SQLite metadata database.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from donor_sync.db import connect, drop_database, ensure_database, with_database
from donor_sync.db.url import database_name
from donor_sync.web.dashboard.app import create_app
from donor_sync.web.dashboard.auth import COOKIE_NAME, AirflowAuthenticator, CsrfTokens
from tests.resolve.test_donors_support import JANE, rules
from tests.resolve.test_review import review_pair

CSRF_SECRET = b"dashboard-test-secret"
_seeded = itertools.count()


@pytest.fixture(scope="session")
def auth_manager() -> Any:
    """The API server's auth manager (``create_auth_manager``), with Airflow's revocation table."""
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.models.revoked_token import RevokedToken

    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    return create_auth_manager()


@dataclass(frozen=True)
class Tokens:
    """Mints Airflow JWTs: valid ones as Airflow does, and every kind a server must refuse."""

    manager: Any

    def valid(self, username: str = "alex", role: str = "admin") -> str:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        return str(self.manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role)))

    def expired(self) -> str:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        user = SimpleAuthManagerUser(username="alex", role="admin")
        return str(self.manager.generate_jwt(user, expiration_time_in_seconds=-3600))

    def _signed(self, *, secret: str | None = None, audience: str = "apache-airflow") -> str:
        from airflow.api_fastapi.auth.tokens import JWTGenerator, get_signing_args

        args = {"secret_key": secret} if secret else get_signing_args()
        generator = JWTGenerator(**args, valid_for=3600, audience=audience)
        return str(generator.generate({"sub": "alex", "role": "admin", "teams": []}))

    def forged(self) -> str:
        """Well formed, admin claims, signed with a key that is not the server's."""
        return self._signed(secret="not-the-airflow-secret")

    def other_audience(self) -> str:
        """Signed with the server's key for another audience (as the task execution tokens are)."""
        return self._signed(audience="urn:airflow.apache.org:task")

    def unsigned(self) -> str:
        """``alg: none`` with admin claims."""
        now = int(time.time())
        claims = {
            "sub": "alex",
            "role": "admin",
            "aud": "apache-airflow",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, key=None, algorithm="none")

    def bad(self) -> dict[str, str]:
        """Every token the dashboard must refuse, by name."""
        return {
            "garbage": "not-a-jwt",
            "forged": self.forged(),
            "expired": self.expired(),
            "other_audience": self.other_audience(),
            "unsigned": self.unsigned(),
        }


@pytest.fixture(scope="session")
def tokens(auth_manager: Any) -> Tokens:
    return Tokens(auth_manager)


@pytest.fixture(scope="session")
def csrf() -> CsrfTokens:
    return CsrfTokens(CSRF_SECRET)


def build_app(db_url: str, csrf: CsrfTokens) -> FastAPI:
    """The dashboard on ``db_url``, checking tokens with the API server's auth manager."""
    return create_app(conninfo=db_url, auth=AirflowAuthenticator(), csrf=csrf, rules=rules)


def client_for(app: FastAPI, *, bearer: str | None = None, cookie: str | None = None) -> TestClient:
    """A TestClient sending ``bearer`` as ``Authorization`` and/or ``cookie`` as the UI's cookie."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    cookies = {COOKIE_NAME: cookie} if cookie else None
    return TestClient(
        app, base_url="http://airflow.test", headers=headers, cookies=cookies, follow_redirects=False
    )


@dataclass(frozen=True)
class Seeded:
    """A staging database with one review pair, dead letters and circuit breakers."""

    url: str
    review_id: int
    left: str
    right: str


def seed_health(conn: psycopg.Connection, donor_id: str | None = None) -> None:
    """Add two open dead letters, one discarded, an open and a half-open breaker and a closed one."""
    letters: list[tuple[str, str, str | None, str, str, str]] = [
        ("hubspot", "validation", "INVALID_EMAIL", "open", "contact", "0 days"),
        ("salesforce", "auth", "INVALID_SESSION_ID", "open", "gift", "1 day"),
        ("hubspot", "permanent", None, "discarded", "contact", "2 days"),
    ]
    for destination, error_class, code, status, entity, age in letters:
        payload = {"email": "secret.donor@example.org", "firstname": "Payloadname"}
        conn.execute(
            "INSERT INTO sync.dead_letters (destination, entity, record_key, donor_id, operation, payload,"
            " payload_sha256, error_class, error_code, message, remediation, attempts, first_failed_at,"
            " last_failed_at, status, resolved_by, resolved_at, note)"
            " VALUES (%s, %s, %s, %s, 'upsert', %s, %s, %s, %s, 'vendor said: secret.donor@example.org',"
            " %s, 3, now() - %s::interval, now() - %s::interval, %s, %s, %s, %s)",
            (
                destination,
                entity,
                f"key-{destination}-{entity}",
                donor_id,
                json.dumps(payload),
                hashlib.sha256(json.dumps(payload).encode()).digest(),
                error_class,
                code,
                f"remediation for {error_class}",
                age,
                age,
                status,
                None if status == "open" else "cli:sam",
                None if status == "open" else "2026-01-01T00:00:00Z",
                None if status == "open" else "dropped",
            ),
        )
    conn.execute(
        "INSERT INTO sync.circuit_breakers (destination, state, consecutive_failures, window_calls,"
        " window_failures, opened_at, next_probe_at, last_failure_at, last_error_class) VALUES"
        " ('hubspot', 'open', 5, 8, 6, now() - interval '10 minutes', now() + interval '5 minutes',"
        "  now() - interval '10 minutes', 'transient'),"
        " ('mailchimp', 'half_open', 0, 3, 3, now() - interval '1 hour', now(), now() - interval '1 hour',"
        "  'rate_limited'),"
        " ('salesforce', 'closed', 0, 10, 0, NULL, NULL, NULL, NULL)"
    )
    conn.commit()


@pytest.fixture(scope="module")
def seeded(server_url: str, template_url: str) -> Iterator[Seeded]:
    """A database shared by a module's read-only tests: one review pair of JANE, dead letters, breakers."""
    url = with_database(server_url, f"ds_dash_{os.getpid()}_{next(_seeded)}")
    drop_database(url)
    ensure_database(url, template=database_name(template_url))
    with connect(url) as conn:
        left, right, review_id = review_pair(conn, JANE, "s")
        seed_health(conn, left)
    yield Seeded(url, review_id, left, right)
    drop_database(url)


@pytest.fixture
def make_client(csrf: CsrfTokens, auth_manager: Any) -> Callable[..., TestClient]:
    """``make_client(db_url, bearer=..., cookie=...)``: a client of the dashboard on that database."""

    def make(db_url: str, *, bearer: str | None = None, cookie: str | None = None) -> TestClient:
        return client_for(build_app(db_url, csrf), bearer=bearer, cookie=cookie)

    return make


_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token_in(html: str) -> str:
    """Return the CSRF token of the page's decision form."""
    found = _CSRF_INPUT.search(html)
    assert found, "the page has no decision form"
    return found.group(1)


def audit_rows(db: psycopg.Connection, action: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Return ``(actor, object_id, details)`` of the audit rows with ``action``, oldest first."""
    rows = db.execute(
        "SELECT actor, object_id, details FROM sync.audit_log WHERE action = %s ORDER BY audit_id", (action,)
    ).fetchall()
    db.commit()
    return [(r[0], r[1], r[2]) for r in rows]
