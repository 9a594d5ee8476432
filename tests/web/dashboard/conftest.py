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


def build_app(db_url: str | Callable[[], str], csrf: CsrfTokens, **options: Any) -> FastAPI:
    """The dashboard on ``db_url``, checking tokens with the API server's auth manager.

    :param options: more arguments of ``create_app`` (``monitor_tokens``, ``health``).
    """
    return create_app(conninfo=db_url, auth=AirflowAuthenticator(), csrf=csrf, rules=rules, **options)


def client_for(app: FastAPI, *, bearer: str | None = None, cookie: str | None = None) -> TestClient:
    """A TestClient sending ``bearer`` as ``Authorization`` and/or ``cookie`` as the UI's cookie."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    cookies = {COOKIE_NAME: cookie} if cookie else None
    return TestClient(
        app, base_url="http://airflow.test", headers=headers, cookies=cookies, follow_redirects=False
    )


@dataclass(frozen=True)
class Seeded:
    """A staging database with one review pair, dead letters, circuit breakers and a week of runs."""

    url: str
    review_id: int
    left: str
    right: str
    runs: SeededRuns


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
    """A database shared by a module's read-only tests: one review pair of JANE, dead letters, breakers,
    and the runs of :func:`seed_runs`."""
    url = with_database(server_url, f"ds_dash_{os.getpid()}_{next(_seeded)}")
    drop_database(url)
    ensure_database(url, template=database_name(template_url))
    with connect(url) as conn:
        left, right, review_id = review_pair(conn, JANE, "s")
        seed_health(conn, left)
        runs = seed_runs(conn)
    yield Seeded(url, review_id, left, right, runs)
    drop_database(url)


@pytest.fixture
def make_client(csrf: CsrfTokens, auth_manager: Any) -> Callable[..., TestClient]:
    """``make_client(db_url, bearer=..., cookie=..., **create_app_options)``: a client of the
    dashboard on that database."""

    def make(
        db_url: str | Callable[[], str],
        *,
        bearer: str | None = None,
        cookie: str | None = None,
        **options: Any,
    ) -> TestClient:
        return client_for(build_app(db_url, csrf, **options), bearer=bearer, cookie=cookie)

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


# -- runs and their metrics, as the issue-9 metric contract records them --------------------------

MONITOR_TOKEN = "monitor-token-0123456789abcdef-test"
#: destinations and sources of the seeded hourly runs
DESTINATIONS = ("hubspot", "mailchimp")
SOURCES = ("stripe", "donorbox")
HOURLY_RUNS = 6


@dataclass(frozen=True)
class SeededRuns:
    """What :func:`seed_runs` wrote: the hourly runs' start times (oldest first) and ``now``."""

    now: Any
    hourly_starts: list[Any]
    nightly_starts: list[Any]


def _run(
    conn: psycopg.Connection,
    dag_id: str,
    started: Any,
    *,
    status: str = "success",
    dry_run: bool = False,
    minutes: int = 10,
) -> str:
    from datetime import timedelta

    row = conn.execute(
        "INSERT INTO sync.runs (dag_id, airflow_run_id, run_type, dry_run, status, started_at, finished_at)"
        " VALUES (%s, %s, 'scheduled', %s, %s, %s, %s) RETURNING run_id::text",
        (
            dag_id,
            f"scheduled__{started.isoformat()}",
            dry_run,
            status,
            started,
            started + timedelta(minutes=minutes),
        ),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _metrics(
    conn: psycopg.Connection, run_id: str, rows: list[tuple[str, str, str, str, float, str]]
) -> None:
    """Insert ``(stage, scope, part, metric, value, unit)`` rows for a run."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO sync.run_metrics (run_id, stage, scope, part, metric, value, unit)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(run_id, *row) for row in rows],
        )


def hourly_metrics(i: int) -> list[tuple[str, str, str, str, float, str]]:
    """The figures of the ``i``-th seeded hourly run (0 = oldest): every one follows from ``i``."""
    rows: list[tuple[str, str, str, str, float, str]] = []
    for n, source in enumerate(SOURCES):
        rows.append(("extract", source, "", "read", 100.0 * (i + 1) + n, "records"))
    for n, destination in enumerate(DESTINATIONS):
        # a fanned-out push: two parts, summed
        rows.append(("push", destination, "0", "pushed", 40.0 + i, "records"))
        rows.append(("push", destination, "1", "pushed", 10.0 * (n + 1), "records"))
        rows.append(("outcome", destination, "", "success_rate", 1.0 - 0.05 * i * (n + 1), "ratio"))
        slower = (i + 1) * (n + 1)  # later runs and the second destination are slower
        rows.append(("latency", destination, "", "gift_to_destination_p50", 60.0 * slower, "seconds"))
        rows.append(("latency", destination, "", "gift_to_destination_p95", 300.0 * slower, "seconds"))
        rows.append(("latency", destination, "", "gift_to_destination_max", 900.0 * slower, "seconds"))
        rows.append(("latency", destination, "", "gifts_landed", 50.0, "records"))
        rows.append(("dead_letters", destination, "", "open", float(i + n), "count"))
        rows.append(("dead_letters", destination, "", "oldest_open_age", 3600.0 * i, "seconds"))
        rows.append(("dead_letters", destination, "", "new", 1.0, "records"))
        rows.append(("breaker", destination, "", "state", 2.0 if destination == "hubspot" else 0.0, "count"))
    rows.append(("api", "hubspot", "", "calls", 20.0, "calls"))
    rows.append(("api", "hubspot", "", "quota_limit", 250_000.0, "count"))
    rows.append(("api", "hubspot", "", "quota_remaining", 250_000.0 - 20_000.0 * (i + 1), "count"))
    rows.append(("api", "hubspot", "", "quota_remaining_ratio", 1.0 - 0.08 * (i + 1), "ratio"))
    return rows


def seed_runs(conn: psycopg.Connection, now: Any | None = None) -> SeededRuns:
    """Write the runs a week of operation leaves (metrics per the contract) and API usage windows.

    * ``donations_hourly``: :data:`HOURLY_RUNS` hourly runs, the last one started 70 minutes ago
      and finished 60 minutes ago; the fourth failed. A dry run and a run 10 days old, which
      trends leave out.
    * ``donors_nightly``: two nightly runs with the quality scorecard, the last 20 hours ago.
    * ``privacy_requests``: none (never succeeded).
    * ``sync.api_usage``: HubSpot's daily window (120,000 of 250,000 left; the day before's:
      1,000) and a Mailchimp window without a limit.
    """
    from datetime import UTC, datetime, timedelta

    now = now or datetime.now(UTC)
    first = now - timedelta(minutes=70) - timedelta(hours=HOURLY_RUNS - 1)
    hourly = [first + timedelta(hours=i) for i in range(HOURLY_RUNS)]
    for i, started in enumerate(hourly):
        run_id = _run(conn, "donations_hourly", started, status="failed" if i == 3 else "success")
        _metrics(conn, run_id, hourly_metrics(i))
    dry = _run(conn, "donations_hourly", now - timedelta(minutes=30), dry_run=True)
    _metrics(conn, dry, [("extract", "stripe", "", "read", 9999.0, "records")])
    old = _run(conn, "donations_hourly", now - timedelta(days=10))
    _metrics(conn, old, [("extract", "stripe", "", "read", 7777.0, "records")])
    nightly = [now - timedelta(hours=44), now - timedelta(hours=20, minutes=30)]
    for i, started in enumerate(nightly):
        run_id = _run(conn, "donors_nightly", started, minutes=30)
        _metrics(
            conn,
            run_id,
            [
                ("quality", "", "", "score", 0.90 + 0.02 * i, "ratio"),
                ("quality", "", "", "completeness", 0.95, "ratio"),
                ("quality", "", "", "validity", 0.97, "ratio"),
                ("quality", "", "", "duplicate_rate", 0.03 - 0.01 * i, "ratio"),
                ("quality", "", "", "consent_coverage", 0.80 + 0.05 * i, "ratio"),
            ],
        )
    conn.execute(
        "INSERT INTO sync.api_usage (vendor, quota_window, window_start, calls, quota_limit, quota_remaining,"
        " observed_at) VALUES ('hubspot', 'daily', date_trunc('day', %(now)s), 1200, 250000, 120000,"
        " %(now)s - interval '65 minutes'),"
        " ('hubspot', 'daily', date_trunc('day', %(now)s) - interval '1 day', 9000, 250000, 1000,"
        " %(now)s - interval '1 day'),"
        " ('mailchimp', 'per_10s', %(now)s - interval '2 hours', 40, NULL, NULL,"
        " %(now)s - interval '2 hours')",
        {"now": now},
    )
    conn.commit()
    return SeededRuns(now, hourly, nightly)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chromium: drives the system's Chromium (/usr/bin/chromium, Debian's chromium package)"
        " with Playwright",
    )
