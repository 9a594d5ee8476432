"""The dedup review queue on the dashboard: list, open a pair, approve / reject / defer.

These are the functions behind ``donor-sync review`` (:mod:`donor_sync.resolve.review`). An
approval merges the pair. A rejection is never proposed again. A deferral keeps the pair in the
queue. Each decision is audited (``review.decided``) as ``airflow:<user>``.

The list shows ids, scores and statuses only. Opening a pair shows both donors' records, which
is PII. It needs the decide permission, and each view is written to ``sync.audit_log`` as
``pii.accessed`` and committed before the page is sent. Nothing about donors is logged.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from donor_sync.web.dashboard.deps import CSRF_FIELD, Decider, Refused, SignedIn, staging, state
from donor_sync.web.dashboard.queries import record_pii_access, review_exists

if TYPE_CHECKING:
    from donor_sync.resolve.donors import ResolveRules
    from donor_sync.resolve.review import DecisionResult

__all__ = ["STATUSES", "router", "shipped_rules"]

log = logging.getLogger(__name__)
router = APIRouter()

STATUSES = ("pending", "deferred", "decided", "superseded")
DECISIONS = ("approve", "reject", "defer")
#: what the list says after a decision (the outcome shown comes from this table, not the URL)
OUTCOMES = {
    ("approve", "decided"): "approved: the two donors are merged",
    ("reject", "decided"): "rejected: the pair will not be proposed again",
    ("defer", "deferred"): "deferred: the pair stays in the queue",
    ("approve", "superseded"): "superseded: a donor of the pair was merged or erased since",
}
NOTE_MAX = 500
_MAX_ID = 2**63 - 1
ReviewId = Annotated[int, Path(ge=1, le=_MAX_ID)]


@functools.cache
def shipped_rules() -> ResolveRules:
    """Return the shipped dedup, nickname and survivorship rules (read once)."""
    from donor_sync.resolve import load_resolve_rules

    return load_resolve_rules()


@router.get("/reviews", response_class=HTMLResponse, name="reviews")
def reviews_page(
    request: Request,
    *,
    principal: SignedIn,
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    decided: Annotated[int | None, Query(ge=1, le=_MAX_ID)] = None,
    decision: Annotated[str | None, Query()] = None,
    outcome: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    """List reviews, highest score first (ids, scores, statuses; no names)."""
    from donor_sync.resolve.review import OPEN_STATUSES, count_reviews, list_reviews

    wanted = tuple(status) if status else OPEN_STATUSES
    unknown = sorted(set(wanted) - set(STATUSES))
    if unknown:
        raise Refused(400, "bad_status", f"Unknown review status; use one of {', '.join(STATUSES)}.")
    settings = state(request)
    with staging(settings) as conn:
        reviews = list_reviews(conn, statuses=wanted, limit=limit, offset=offset)
        total = count_reviews(conn, statuses=wanted)
    said = OUTCOMES.get((decision or "", outcome or ""))
    flash = f"Review {decided} {said}." if decided is not None and said else None
    return settings.pages.render(
        request,
        "reviews.html",
        principal=principal,
        reviews=reviews,
        total=total,
        statuses=STATUSES,
        wanted=wanted,
        limit=limit,
        offset=offset,
        flash=flash,
    )


@router.get("/reviews/{review_id}", response_class=HTMLResponse, name="review")
def review_page(request: Request, principal: Decider, review_id: ReviewId) -> HTMLResponse:
    """Show a pair side by side: both golden records, their source records, score and explanation.

    The view is audited as ``pii.accessed`` and committed before the page is rendered.
    """
    from donor_sync.resolve.review import OPEN_STATUSES, SHOWN_FIELDS, ReviewError, get_review

    settings = state(request)
    with staging(settings) as conn:
        try:
            detail = get_review(conn, review_id)
        except ReviewError:
            raise Refused(404, "no_review", f"There is no review {review_id}.") from None
        review = detail.review
        record_pii_access(
            conn,
            actor=principal.actor,
            object_type="review",
            object_id=str(review_id),
            details={
                "via": "dashboard",
                "view": "review",
                "donor_ids": [review.left_donor_id, review.right_donor_id],
                "records": len(detail.left_records) + len(detail.right_records),
            },
        )
        conn.commit()
    log.info("dashboard: user %s opened review %s", principal.identity.user_id, review_id)
    fields = [
        (name, detail.left.get(name), detail.right.get(name), detail.left.get(name) != detail.right.get(name))
        for name in SHOWN_FIELDS
    ]
    return settings.pages.render(
        request,
        "review.html",
        principal=principal,
        review=review,
        detail=detail,
        fields=fields,
        contributions=sorted(review.contributions.items()),
        is_open=review.status in OPEN_STATUSES,
        decisions=DECISIONS,
        csrf_field=CSRF_FIELD,
        csrf_token=settings.csrf.issue(principal.identity.user_id),
        note_max=NOTE_MAX,
    )


def _decide(
    request: Request, principal: Decider, review_id: int, decision: str, note: str | None
) -> DecisionResult:
    """Decide a review as ``principal`` and commit (409 when it cannot be decided)."""
    from donor_sync.resolve.review import ReviewError, decide

    if decision not in DECISIONS:
        raise Refused(400, "bad_decision", f"Decide with one of {', '.join(DECISIONS)}.")
    if note is not None and len(note) > NOTE_MAX:
        raise Refused(400, "note_too_long", f"Keep the note under {NOTE_MAX} characters.")
    settings = state(request)
    rules = settings.rules()
    with staging(settings) as conn:
        if not review_exists(conn, review_id):
            raise Refused(404, "no_review", f"There is no review {review_id}.")
        try:
            result = decide(conn, review_id, decision, actor=principal.actor, rules=rules, note=note)  # type: ignore[arg-type]
        except ReviewError as exc:  # already decided: the message names the id and status only
            raise Refused(409, "not_open", str(exc)) from None
        conn.commit()
    log.info(
        "dashboard: user %s decided review %s: %s -> %s",
        principal.identity.user_id,
        review_id,
        decision,
        result.status,
    )
    return result


@router.post("/reviews/{review_id}/decision", name="decide_review")
def decide_form(
    request: Request,
    principal: Decider,
    review_id: ReviewId,
    decision: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Decide from the review page's form; back to the list with the outcome (303, post/redirect/get).

    The form's ``csrf_token`` field is checked by :func:`~donor_sync.web.dashboard.deps.decider`.
    """
    result = _decide(request, principal, review_id, decision, note.strip() or None)
    target = request.url_for("reviews").path
    query = f"decided={review_id}&decision={result.decision}&outcome={result.status}"
    return RedirectResponse(f"{target}?{query}", status_code=303)


class DecisionBody(BaseModel):
    """A decision sent to the JSON API."""

    decision: Literal["approve", "reject", "defer"]
    note: str | None = Field(default=None, max_length=NOTE_MAX)


@router.post("/api/reviews/{review_id}/decision", name="api_decide_review")
def decide_api(request: Request, principal: Decider, review_id: ReviewId, body: DecisionBody) -> JSONResponse:
    """Decide a review from a script (Bearer token; with the cookie, send ``X-CSRF-Token`` too)."""
    result = _decide(request, principal, review_id, body.decision, body.note)
    payload: dict[str, Any] = {
        "review_id": result.review_id,
        "decision": result.decision,
        "status": result.status,
        "survivor_id": result.survivor_id,
        "merged_donor_id": result.merged_donor_id,
        "decision_id": result.decision_id,
    }
    return JSONResponse(payload)
