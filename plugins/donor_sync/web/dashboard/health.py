"""The sync's health for external monitors: what ``GET /sync-health/api/health`` answers.

Checks, each with an ``ok`` flag judged against :class:`~.health_settings.HealthSettings`:

* ``database``: the staging database answers ``SELECT 1`` (and how fast);
* ``last_success``: per DAG, when its last successful run finished and how long ago;
* ``dead_letters``: how many are open and how old the oldest is;
* ``open_circuits``: destinations whose breaker is open or half-open (an open one is not ok);
* ``quota``: per vendor, what is left of the API quota in the latest window.

The status is ``down`` when the database cannot be reached or read (answered with HTTP 503),
``degraded`` when any other check is not ok, else ``ok``. The report holds DAG ids, destination
and vendor names, counts and times: nothing about a donor, and no error text (a driver's message
may name a host or a user).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from donor_sync.web.dashboard.health_settings import HealthSettings
from donor_sync.web.dashboard.queries import open_circuits

__all__ = [
    "DOWN",
    "HealthReport",
    "QuotaWindow",
    "check_health",
    "collect_checks",
    "last_successes",
    "latest_quota",
]

log = logging.getLogger(__name__)

OK = "ok"
DEGRADED = "degraded"
DOWN = "down"
#: The health checks' queries give up after this (a monitor needs an answer, not a hang).
STATEMENT_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class HealthReport:
    """The status and its checks, as JSON-ready values."""

    status: str
    checks: dict[str, Any]
    generated_at: datetime

    @property
    def http_status(self) -> int:
        """Return 503 when down (monitors alert on it), else 200."""
        return 503 if self.status == DOWN else 200

    def as_dict(self) -> dict[str, Any]:
        """Return the body of the endpoint."""
        return {"status": self.status, "generated_at": self.generated_at.isoformat(), "checks": self.checks}


def _age(now: datetime, then: datetime | None) -> float | None:
    return round((now - then).total_seconds(), 1) if then is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def last_successes(
    conn: psycopg.Connection, settings: HealthSettings, now: datetime
) -> dict[str, dict[str, Any]]:
    """Return, per configured DAG, its last successful run's end, age and whether that is recent enough.

    Dry runs do not count: they change nothing at the destinations. A DAG that never succeeded has
    ``finished_at`` and ``age_seconds`` None and is not ok.
    """
    wanted = sorted(settings.last_success_max_age_hours)
    rows = conn.execute(
        "SELECT dag_id, max(finished_at) FROM sync.runs"
        " WHERE status = 'success' AND NOT dry_run AND dag_id = ANY(%s) GROUP BY dag_id",
        (wanted,),
    ).fetchall()
    finished: dict[str, datetime] = dict(rows)
    result: dict[str, dict[str, Any]] = {}
    for dag_id in wanted:
        max_age_s = settings.last_success_max_age_hours[dag_id] * 3600
        at = finished.get(dag_id)
        age = _age(now, at)
        result[dag_id] = {
            "finished_at": _iso(at),
            "age_seconds": age,
            "max_age_seconds": max_age_s,
            "ok": age is not None and age <= max_age_s,
        }
    return result


def _dead_letters(conn: psycopg.Connection, settings: HealthSettings, now: datetime) -> dict[str, Any]:
    row = conn.execute(
        "SELECT count(*), min(first_failed_at) FROM sync.dead_letters WHERE status = 'open'"
    ).fetchone()
    assert row is not None
    count, oldest = int(row[0]), row[1]
    age = _age(now, oldest)
    limits = settings.dead_letters
    return {
        "open": count,
        "oldest_age_seconds": age,
        "ok": count <= limits.max_open and (age is None or age <= limits.max_oldest_age_hours * 3600),
    }


@dataclass(frozen=True)
class QuotaWindow:
    """The latest ``sync.api_usage`` window of a vendor (and connection, when it has several)."""

    key: str
    vendor: str
    quota_window: str
    window_start: datetime
    calls: int
    limit: int | None
    remaining: int | None
    observed_at: datetime

    @property
    def ratio(self) -> float | None:
        """Return the share of the quota left (None when the vendor reports no limit)."""
        if self.limit is None or self.remaining is None or self.limit <= 0:
            return None
        return max(0.0, min(1.0, self.remaining / self.limit))


def latest_quota(conn: psycopg.Connection) -> list[QuotaWindow]:
    """Return each vendor's (and connection's) most recently observed API usage window, by name."""
    rows = conn.execute(
        "SELECT DISTINCT ON (vendor, connection_id) vendor::text, connection_id, quota_window, window_start,"
        " calls, quota_limit, quota_remaining, observed_at FROM sync.api_usage"
        " ORDER BY vendor, connection_id, observed_at DESC, window_start DESC"
    ).fetchall()
    return [
        QuotaWindow(
            key=vendor if not connection_id else f"{vendor}:{connection_id}",
            vendor=vendor,
            quota_window=window,
            window_start=start,
            calls=int(calls),
            limit=None if limit is None else int(limit),
            remaining=None if remaining is None else int(remaining),
            observed_at=observed,
        )
        for vendor, connection_id, window, start, calls, limit, remaining, observed in rows
    ]


def _quota(conn: psycopg.Connection, settings: HealthSettings, now: datetime) -> dict[str, dict[str, Any]]:
    limits = settings.quota
    result: dict[str, dict[str, Any]] = {}
    for window in latest_quota(conn):
        ratio = window.ratio
        stale = (now - window.observed_at).total_seconds() > limits.max_observation_age_hours * 3600
        result[window.key] = {
            "remaining": window.remaining,
            "limit": window.limit,
            "ratio": None if ratio is None else round(ratio, 4),
            "window": window.quota_window,
            "observed_at": _iso(window.observed_at),
            "stale": stale,
            "ok": stale or ratio is None or ratio >= limits.min_remaining_ratio,
        }
    return result


def collect_checks(conn: psycopg.Connection, settings: HealthSettings, now: datetime) -> dict[str, Any]:
    """Return every check but ``database`` (which :func:`check_health` times around opening ``conn``)."""
    circuits = [
        {
            "destination": c.destination,
            "state": c.state,
            "opened_at": _iso(c.opened_at),
            "next_probe_at": _iso(c.next_probe_at),
            "last_error_class": c.last_error_class,
        }
        for c in open_circuits(conn)
    ]
    return {
        "last_success": last_successes(conn, settings, now),
        "dead_letters": _dead_letters(conn, settings, now),
        "open_circuits": circuits,
        "quota": _quota(conn, settings, now),
    }


def _status(checks: dict[str, Any]) -> str:
    healthy = (
        all(d["ok"] for d in checks["last_success"].values())
        and checks["dead_letters"]["ok"]
        and not any(c["state"] == "open" for c in checks["open_circuits"])
        and all(q["ok"] for q in checks["quota"].values())
    )
    return OK if healthy else DEGRADED


def check_health(
    open_connection: Callable[[], psycopg.Connection],
    settings: HealthSettings,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> HealthReport:
    """Run every check and return the report (status ``down`` when the database fails; never raises).

    :param open_connection: opens the staging database (its failure is the ``database`` check's).
    :param now: the time ages are measured to (the database's clock is not used, so a monitor sees
        the same times as the API server's log).
    """
    started = time.perf_counter()
    try:
        conn = open_connection()
    except Exception as exc:  # the connection lookup or the server failed: down, not a 500
        log.error("health: staging database unreachable (%s)", type(exc).__name__)
        return HealthReport(
            DOWN, {"database": {"ok": False, "latency_ms": None, "error": "unreachable"}}, now()
        )
    try:
        with conn:
            conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            conn.execute("SELECT 1").fetchone()
            latency_ms = round((time.perf_counter() - started) * 1000, 1)
            at = now()
            checks = collect_checks(conn, settings, at)
            conn.rollback()
    except Exception as exc:  # reachable but not readable (not migrated, timed out, lost)
        log.error("health: staging database cannot be read (%s)", type(exc).__name__)
        return HealthReport(
            DOWN, {"database": {"ok": False, "latency_ms": None, "error": "query_failed"}}, now()
        )
    return HealthReport(_status(checks), {"database": {"ok": True, "latency_ms": latency_ms}, **checks}, at)
