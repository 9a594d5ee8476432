"""Sync health: the overview, open circuits, dead letters (read-only) and ``/api/summary``.

Dead letters are listed with ids, keys, classes, codes and remediation. Payloads and vendor
messages are left out, because they may echo donor values. Each row shows how to act on the
letter: the ``donor-sync dlq`` commands, or a run of the ``dlq_replay`` DAG with params.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from donor_sync.delivery.contracts import FailureClass
from donor_sync.web.dashboard.deps import Refused, SignedIn, staging, state
from donor_sync.web.dashboard.queries import open_circuits, summary

__all__ = ["router"]

router = APIRouter()

DLQ_STATUSES = ("open", "replayed", "edited", "discarded")
OVERVIEW_ROWS = 10


@router.get("/", response_class=HTMLResponse, name="overview")
def overview_page(request: Request, principal: SignedIn) -> HTMLResponse:
    """Show open circuits, the top of the review queue and the oldest open dead letters."""
    from donor_sync.delivery.dlq import count_dead_letters, list_dead_letters
    from donor_sync.resolve.review import count_reviews, list_reviews

    settings = state(request)
    with staging(settings) as conn:
        circuits = open_circuits(conn)
        reviews = list_reviews(conn, limit=OVERVIEW_ROWS)
        review_total = count_reviews(conn)
        letters = list_dead_letters(conn, limit=OVERVIEW_ROWS)
        letter_total = count_dead_letters(conn)
    return settings.pages.render(
        request,
        "overview.html",
        principal=principal,
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
