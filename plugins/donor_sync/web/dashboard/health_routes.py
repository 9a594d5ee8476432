"""Sync health: the overview, open circuits, dead letters (read-only), ``/api/summary`` and
``/api/health``.

The overview draws the trends of :mod:`.trends` as inline SVG charts (:mod:`.charts`) over the last
``days`` days (at most ``runs`` runs), then the last successful run of each DAG, the open circuits,
the top of the review queue and the oldest open dead letters. ``/api/health`` is for external
monitors (:mod:`.health`); it also takes the monitor token.

Dead letters are listed with ids, keys, classes, codes and remediation. Payloads and vendor
messages are left out, because they may echo donor values. Each row shows how to act on the
letter: the ``donor-sync dlq`` commands, or a run of the ``dlq_replay`` DAG with params.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from donor_sync.delivery.contracts import FailureClass
from donor_sync.web.dashboard.charts import render_chart
from donor_sync.web.dashboard.deps import Monitor, Refused, SignedIn, Watcher, staging, state
from donor_sync.web.dashboard.health import check_health, last_successes
from donor_sync.web.dashboard.health_settings import HealthSettings, load_health_settings
from donor_sync.web.dashboard.queries import open_circuits, summary
from donor_sync.web.dashboard.trends import (
    DEFAULT_DAYS,
    DEFAULT_RUNS,
    MAX_DAYS,
    MAX_RUNS,
    TrendWindow,
    health_charts,
)

__all__ = ["router", "shipped_health_settings"]

log = logging.getLogger(__name__)
router = APIRouter()

DLQ_STATUSES = ("open", "replayed", "edited", "discarded")
OVERVIEW_ROWS = 10
#: The periods the overview offers (any ``days`` from 1 to MAX_DAYS is accepted).
DAY_CHOICES = (1, 2, 7, 14, 30, 90)


@functools.cache
def shipped_health_settings() -> HealthSettings:
    """Return the shipped health thresholds (``include/mappings/sync_health.yaml``, read once)."""
    return load_health_settings()


@router.get("/", response_class=HTMLResponse, name="overview")
def overview_page(
    request: Request,
    *,
    principal: SignedIn,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = DEFAULT_DAYS,
    runs: Annotated[int, Query(ge=1, le=MAX_RUNS)] = DEFAULT_RUNS,
) -> HTMLResponse:
    """Show the trend charts, the last successful runs, open circuits, reviews and dead letters."""
    from donor_sync.delivery.dlq import count_dead_letters, list_dead_letters
    from donor_sync.resolve.review import count_reviews, list_reviews

    settings = state(request)
    window = TrendWindow(days=days, runs=runs)
    with staging(settings) as conn:
        charts = [render_chart(chart) for chart in health_charts(conn, window)]
        freshness = last_successes(conn, settings.health(), window.now)
        circuits = open_circuits(conn)
        reviews = list_reviews(conn, limit=OVERVIEW_ROWS)
        review_total = count_reviews(conn)
        letters = list_dead_letters(conn, limit=OVERVIEW_ROWS)
        letter_total = count_dead_letters(conn)
    return settings.pages.render(
        request,
        "overview.html",
        principal=principal,
        charts=charts,
        days=days,
        runs=runs,
        day_choices=sorted({*DAY_CHOICES, days}),
        freshness=freshness,
        circuits=circuits,
        reviews=reviews,
        review_total=review_total,
        letters=letters,
        letter_total=letter_total,
    )


@router.get("/circuits", response_class=HTMLResponse, name="circuits")
def circuits_page(request: Request, principal: SignedIn) -> HTMLResponse:
    """Show the destinations whose circuit breaker is open or half-open, and what to do."""
    settings = state(request)
    with staging(settings) as conn:
        circuits = open_circuits(conn)
    return settings.pages.render(request, "circuits.html", principal=principal, circuits=circuits)


@router.get("/dead-letters", response_class=HTMLResponse, name="dead_letters")
def dead_letters_page(
    request: Request,
    *,
    principal: SignedIn,
    destination: Annotated[str | None, Query(max_length=64)] = None,
    error_class: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HTMLResponse:
    """List dead letters, oldest first, with the command that acts on each (read-only page)."""
    from donor_sync.delivery.dlq import DeadLetterError, count_dead_letters, list_dead_letters

    wanted = tuple(status) if status else ("open",)
    statuses = None if "all" in wanted else wanted
    settings = state(request)
    with staging(settings) as conn:
        try:
            letters = list_dead_letters(
                conn,
                destination=destination or None,
                error_class=error_class or None,
                statuses=statuses,
                limit=limit,
            )
            total = count_dead_letters(
                conn, destination=destination or None, error_class=error_class or None, statuses=statuses
            )
        except DeadLetterError as exc:  # an unknown class or status: the message lists the valid ones
            raise Refused(400, "bad_filter", str(exc)) from None
    return settings.pages.render(
        request,
        "dead_letters.html",
        principal=principal,
        letters=letters,
        total=total,
        destination=destination or "",
        error_class=error_class or "",
        wanted=wanted,
        statuses=(*DLQ_STATUSES, "all"),
        classes=[c.value for c in FailureClass],
        limit=limit,
    )


@router.get("/api/summary", name="api_summary")
def summary_api(request: Request, principal: SignedIn) -> JSONResponse:
    """Return the health summary as JSON: review queue, open dead letters, open circuits (no PII)."""
    settings = state(request)
    with staging(settings) as conn:
        body = summary(conn)
    return JSONResponse({"generated_at": datetime.now(UTC).isoformat(), **body})


@router.get("/api/health", name="api_health")
async def health_api(request: Request, caller: Watcher) -> JSONResponse:
    """Return the sync's health for external monitors: 200 when ok or degraded, 503 when down.

    Answers with a monitor token (``sync_health_monitor``) or any Airflow token that may read the
    dashboard. The body holds DAG ids, destination and vendor names, counts and times only.
    """
    from donor_sync.db import connect

    settings = state(request)

    def open_staging() -> psycopg.Connection:
        target = settings.conninfo() if callable(settings.conninfo) else settings.conninfo
        return connect(target, application_name="donor-sync-health")

    report = await run_in_threadpool(check_health, open_staging, settings.health())
    who = caller.actor if isinstance(caller, Monitor) else caller.identity.user_id
    log.info("dashboard: health asked by %s: %s", who, report.status)
    return JSONResponse(report.as_dict(), status_code=report.http_status)
