"""The dedup review queue: list, show, approve (merge), reject (never again), defer; labels for refitting.

These functions serve the CLI (``donor-sync review``) and the dashboard alike. Every decision is
written to ``sync.audit_log`` (ids, decision and counts; never names or values). Approving merges
the pair (:func:`merge_donors`): the survivor is the donor with the most gifts, then the oldest,
then the one with more records; the other keeps its row with ``merged_into`` = survivor (never
chained: donors merged into it are re-pointed at the survivor), and its records, source and
destination ids alike, move to the survivor with a ``review_approved`` cluster-map decision that
:func:`~donor_sync.resolve.unmerge.unmerge` can undo. Rejecting records the pair so resolve never
proposes it again; deferring keeps it in the queue.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import psycopg

from donor_sync.errors import DonorSyncError
from donor_sync.events.producers import produce_merge_events
from donor_sync.identity import comparison_levels, prepare
from donor_sync.privacy.consent.state import refresh_consent_state
from donor_sync.resolve import match_store
from donor_sync.resolve.donors import ResolveRules
from donor_sync.resolve.survivorship import recompute_golden

Decision = Literal["approve", "reject", "defer"]
OPEN_STATUSES = ("pending", "deferred")

#: golden fields shown side by side by ``review show`` (PII: stdout of an operator command only)
SHOWN_FIELDS = (
    "first_name",
    "middle_name",
    "last_name",
    "aliases",
    "organization_name",
    "email",
    "email_verified",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country_code",
    "birth_date",
    "is_deceased",
    "do_not_contact",
    "gift_count",
)


class ReviewError(DonorSyncError):
    """A review cannot be decided as asked (unknown, already decided, donors no longer live)."""


@dataclass(frozen=True)
class Review:
    """One row of the review queue (ids, score and explanation: no PII)."""

    review_id: int
    left_donor_id: str
    right_donor_id: str
    score: float
    band: str
    status: str
    decision: str | None
    contributions: dict[str, Any]
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None


@dataclass(frozen=True)
class ReviewDetail:
    """A review with both donors' golden fields and their records (PII: for the reviewer's screen)."""

    review: Review
    left: dict[str, Any]
    right: dict[str, Any]
    left_records: list[dict[str, Any]]
    right_records: list[dict[str, Any]]


@dataclass(frozen=True)
class DecisionResult:
    """What :func:`decide` did."""

    review_id: int
    decision: Decision
    status: str
    survivor_id: str | None = None
    merged_donor_id: str | None = None
    decision_id: str | None = None


_REVIEW_COLUMNS = (
    "review_id, left_donor_id::text, right_donor_id::text, score::float8, band, status, decision,"
    " contributions, created_at, decided_by, decided_at, note"
)


def _review(row: tuple[Any, ...]) -> Review:
    return Review(*row)


def list_reviews(
    conn: psycopg.Connection,
    *,
    statuses: tuple[str, ...] = OPEN_STATUSES,
    limit: int = 50,
    offset: int = 0,
) -> list[Review]:
    """Return reviews with these statuses, highest score first (pending before deferred on ties)."""
    rows = conn.execute(
        f"SELECT {_REVIEW_COLUMNS} FROM sync.review_queue WHERE status = ANY(%s)"
        " ORDER BY score DESC, status = 'deferred', review_id LIMIT %s OFFSET %s",
        (list(statuses), limit, offset),
    ).fetchall()
    return [_review(r) for r in rows]


def count_reviews(conn: psycopg.Connection, *, statuses: tuple[str, ...] = OPEN_STATUSES) -> int:
    """Return how many reviews have these statuses."""
    row = conn.execute(
        "SELECT count(*) FROM sync.review_queue WHERE status = ANY(%s)", (list(statuses),)
    ).fetchone()
    return int(row[0]) if row else 0


def _one(conn: psycopg.Connection, review_id: int, *, lock: bool = False) -> Review:
    row = conn.execute(
        f"SELECT {_REVIEW_COLUMNS} FROM sync.review_queue WHERE review_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (review_id,),
    ).fetchone()
    if row is None:
        raise ReviewError(f"no review {review_id}")
    return _review(row)


def _golden(conn: psycopg.Connection, donor_id: str) -> dict[str, Any]:
    cols = ", ".join(SHOWN_FIELDS)
    row = conn.execute(
        f"SELECT donor_id::text, merged_into::text, {cols} FROM core.donors WHERE donor_id = %s", (donor_id,)
    ).fetchone()
    if row is None:
        return {}
    return dict(zip(("donor_id", "merged_into", *SHOWN_FIELDS), row, strict=True))


def _records(conn: psycopg.Connection, donor_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT system, external_id, role, attributes_at, attributes FROM core.donor_sources"
        " WHERE donor_id = %s ORDER BY attributes_at DESC NULLS LAST, donor_source_id",
        (donor_id,),
    ).fetchall()
    return [
        {"system": s, "external_id": e, "role": r, "attributes_at": at, "attributes": a or {}}
        for s, e, r, at, a in rows
    ]


def get_review(conn: psycopg.Connection, review_id: int) -> ReviewDetail:
    """Return a review with both donors' fields and records (PII: show it, never log it).

    :raises ReviewError: when there is no such review.
    """
    review = _one(conn, review_id)
    return ReviewDetail(
        review,
        _golden(conn, review.left_donor_id),
        _golden(conn, review.right_donor_id),
        _records(conn, review.left_donor_id),
        _records(conn, review.right_donor_id),
    )


def _audit(
    conn: psycopg.Connection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        "INSERT INTO sync.audit_log (at, actor, action, object_type, object_id, details) VALUES (%s, %s,"
        " %s, %s, %s, %s)",
        (now, actor, action, object_type, object_id, json.dumps(details)),
    )


def choose_survivor(conn: psycopg.Connection, a: str, b: str) -> tuple[str, str]:
    """Return ``(survivor, merged)``: most gifts, then oldest, then most records, then smaller id."""
    rows = conn.execute(
        "SELECT d.donor_id::text FROM core.donors d WHERE d.donor_id = ANY(%s::uuid[])"
        " ORDER BY (SELECT count(*) FROM core.gifts g WHERE g.donor_id = d.donor_id) DESC, d.created_at,"
        " (SELECT count(*) FROM core.donor_sources s WHERE s.donor_id = d.donor_id) DESC, d.donor_id",
        ([a, b],),
    ).fetchall()
    return str(rows[0][0]), str(rows[1][0])


def merge_donors(
    conn: psycopg.Connection,
    survivor: str,
    merged: str,
    *,
    rules: ResolveRules,
    actor: str,
    now: datetime,
    decision: Literal["review_approved", "manual_merge"] = "manual_merge",
    review_id: int | None = None,
    score: float | None = None,
    explanation: dict[str, Any] | None = None,
) -> str:
    """Merge donor ``merged`` into ``survivor`` as one reversible decision; return its decision id.

    Not committed.

    :raises ReviewError: when either donor is not live, or they are the same donor.
    """
    rows = conn.execute(
        "SELECT donor_id::text, merged_into, erased_at FROM core.donors WHERE donor_id = ANY(%s::uuid[])"
        " ORDER BY donor_id FOR UPDATE",
        ([survivor, merged],),
    ).fetchall()
    if survivor == merged or len(rows) != 2 or any(r[1] is not None or r[2] is not None for r in rows):
        raise ReviewError("both donors must exist, be different and be live (not merged away, not erased)")
    decision_id = str(uuid.uuid4())
    params = {
        "s": survivor,
        "m": merged,
        "d": decision_id,
        "now": now,
        "by": actor,
        "review": review_id,
        "score": score,
        "expl": json.dumps(explanation or {}),
        "kind": decision,
    }
    conn.execute(
        "CREATE TEMP TABLE __donor_sync__merge_rows ON COMMIT DROP AS"
        " SELECT cluster_map_id, donor_source_id FROM core.cluster_map WHERE donor_id = %(m)s AND valid_to"
        " IS NULL",
        params,
    )
    conn.execute(
        "UPDATE core.cluster_map c SET valid_to = greatest(%(now)s, c.valid_from), closed_by_decision = %(d)s"
        " FROM __donor_sync__merge_rows r WHERE c.cluster_map_id = r.cluster_map_id",
        params,
    )
    moved = conn.execute(
        "INSERT INTO core.cluster_map (donor_source_id, donor_id, decision, decision_id, match_score,"
        " match_explanation, review_id, decided_by, valid_from)"
        " SELECT donor_source_id, %(s)s, %(kind)s, %(d)s, %(score)s, %(expl)s::jsonb, %(review)s, %(by)s,"
        " %(now)s"
        " FROM __donor_sync__merge_rows",
        params,
    ).rowcount
    conn.execute("DROP TABLE __donor_sync__merge_rows")
    conn.execute("UPDATE core.donor_sources SET donor_id = %(s)s WHERE donor_id = %(m)s", params)
    repointed = [
        str(r[0])
        for r in conn.execute(
            "UPDATE core.donors SET merged_into = %(s)s WHERE merged_into = %(m)s RETURNING donor_id", params
        ).fetchall()
    ]
    conn.execute(
        "UPDATE core.donors SET merged_into = %(s)s, merged_at = %(now)s WHERE donor_id = %(m)s", params
    )
    conn.execute(
        "INSERT INTO core.merge_decisions (decision_id, decision, survivor_id, merged_donor_id, repointed,"
        " review_id, decided_by, decided_at) VALUES (%(d)s, %(kind)s, %(s)s, %(m)s, %(rep)s::uuid[],"
        " %(review)s,"
        " %(by)s, %(now)s)",
        {**params, "rep": repointed},
    )
    recompute_golden(conn, [survivor], rules.survivorship)
    match_store.refresh_match_keys(conn, [survivor, merged], rules.dedup, nicknames=rules.nicknames)
    # The survivor's consent now derives from both donors' events (most restrictive wins).
    refresh_consent_state(conn, [survivor, merged], actor=actor, now=now)
    produce_merge_events(conn, [decision_id])  # donor.merged to event subscribers
    _audit(
        conn,
        actor=actor,
        action="donor.merged",
        object_type="donor",
        object_id=survivor,
        now=now,
        details={
            "decision_id": decision_id,
            "decision": decision,
            "survivor_id": survivor,
            "merged_donor_id": merged,
            "review_id": review_id,
            "records_moved": moved,
            "repointed": len(repointed),
        },
    )
    return decision_id


def decide(
    conn: psycopg.Connection,
    review_id: int,
    decision: Decision,
    *,
    actor: str,
    rules: ResolveRules,
    note: str | None = None,
    now: datetime | None = None,
) -> DecisionResult:
    """Approve (merge), reject (never proposed again) or defer a review; audited. Not committed.

    A pending or deferred review can be decided; a decided one cannot be decided again (undo an
    approval with unmerge). Approving a pair whose donors were merged or erased since marks the
    review superseded.

    :raises ReviewError: unknown review, or already decided.
    """
    now = now or datetime.now(UTC)
    review = _one(conn, review_id, lock=True)
    if review.status not in OPEN_STATUSES:
        raise ReviewError(f"review {review_id} is {review.status}: it cannot be decided again")
    result = DecisionResult(review_id, decision, review.status)
    if decision == "defer":
        conn.execute(
            "UPDATE sync.review_queue SET status = 'deferred', note = coalesce(%s, note) WHERE review_id ="
            " %s",
            (note, review_id),
        )
        result = DecisionResult(review_id, decision, "deferred")
    elif decision == "reject":
        conn.execute(
            "UPDATE sync.review_queue SET status = 'decided', decision = 'reject', decided_by = %s,"
            " decided_at = %s,"
            " note = coalesce(%s, note) WHERE review_id = %s",
            (actor, now, note, review_id),
        )
        result = DecisionResult(review_id, decision, "decided")
    else:
        live = conn.execute(
            "SELECT count(*) FROM core.donors WHERE donor_id = ANY(%s::uuid[]) AND merged_into IS NULL"
            " AND erased_at IS NULL",
            ([review.left_donor_id, review.right_donor_id],),
        ).fetchone()
        if live is None or live[0] != 2:
            conn.execute(
                "UPDATE sync.review_queue SET status = 'superseded' WHERE review_id = %s", (review_id,)
            )
            result = DecisionResult(review_id, decision, "superseded")
        else:
            conn.execute(
                "UPDATE sync.review_queue SET status = 'decided', decision = 'approve', decided_by = %s,"
                " decided_at = %s, note = coalesce(%s, note) WHERE review_id = %s",
                (actor, now, note, review_id),
            )
            survivor, merged = choose_survivor(conn, review.left_donor_id, review.right_donor_id)
            decision_id = merge_donors(
                conn,
                survivor,
                merged,
                rules=rules,
                actor=actor,
                now=now,
                decision="review_approved",
                review_id=review_id,
                score=review.score,
                explanation={"review_id": review_id, "contributions": review.contributions},
            )
            result = DecisionResult(review_id, decision, "decided", survivor, merged, decision_id)
    _audit(
        conn,
        actor=actor,
        action="review.decided",
        object_type="review",
        object_id=str(review_id),
        now=now,
        details={
            "decision": decision,
            "status": result.status,
            "score": review.score,
            "left_donor_id": review.left_donor_id,
            "right_donor_id": review.right_donor_id,
            "decision_id": result.decision_id,
            "with_note": note is not None,
        },
    )
    return result


@dataclass(frozen=True)
class LabelledPairs:
    """Decided review pairs as :func:`donor_sync.identity.fit_from_labels` takes them."""

    review_ids: np.ndarray
    levels: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def labelled_pairs(conn: psycopg.Connection, rules: ResolveRules) -> LabelledPairs:
    """Return the decided pairs' comparison levels and labels (approved: match, rejected: non-match).

    Both donors' golden records are compared as they are now (a merged-away donor keeps its fields),
    so ``fit_from_labels(model, pairs.levels, pairs.labels)`` refits the weights from the queue.
    """
    rows = conn.execute(
        "SELECT review_id, left_donor_id::text, right_donor_id::text, decision = 'approve'"
        " FROM sync.review_queue WHERE status = 'decided' ORDER BY review_id"
    ).fetchall()
    width = len(rules.dedup.comparisons)
    if not rows:
        return LabelledPairs(np.zeros(0, np.int64), np.zeros((0, width), np.int8), np.zeros(0, bool))
    ids = sorted({r[1] for r in rows} | {r[2] for r in rows})
    golden = match_store.read_golden(conn, ids, live_only=False).set_index("donor_id").loc[ids].reset_index()
    prepared = prepare(match_store.identity_frame(golden), nicknames=rules.nicknames)
    position = {d: i for i, d in enumerate(golden["donor_id"])}
    left = np.array([position[r[1]] for r in rows], dtype=np.int64)
    right = np.array([position[r[2]] for r in rows], dtype=np.int64)
    levels = comparison_levels(prepared, left, right, rules.dedup.comparisons, rules.nicknames)
    return LabelledPairs(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.asarray(levels),
        np.array([bool(r[3]) for r in rows]),
    )


def review_frame(reviews: list[Review]) -> pd.DataFrame:
    """Return reviews as a frame (for listings)."""
    return pd.DataFrame([r.__dict__ for r in reviews])
