"""Intake of rights requests and reading them back: ``sync.privacy_requests`` and its receipts.

A request is created by donor id, email, phone or source id (``stripe:cus_123``). Identifiers are
normalized (:mod:`.identifiers`) and stored only as HMAC-SHA256 under the ``tombstone`` key ring
(``subject_hashes``); the donor they name is looked up in core now, and again when the request is
processed (it may arrive later). Listing and showing give ids, kinds, states, deadlines and
receipts, never PII.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from donor_sync.errors import DonorSyncError
from donor_sync.observability import audit
from donor_sync.privacy.keys import KeyRing
from donor_sync.privacy.requests.identifiers import Identifier, find_donor, hash_entries

RequestKind = Literal["erasure", "export", "consent_change"]
KINDS: tuple[str, ...] = ("erasure", "export", "consent_change")
CHANNELS: tuple[str, ...] = ("cli", "api", "table", "preference_centre", "staff")
OPEN_STATUSES: tuple[str, ...] = ("received", "in_progress", "failed")


class RequestNotFoundError(DonorSyncError):
    """No privacy request has that id."""


@dataclass(frozen=True)
class ReceiptView:
    """One system's receipt for a request (ids and counts only)."""

    system: str
    action: str
    status: str
    verified: bool
    counts: Mapping[str, Any]
    remote_refs: Sequence[Mapping[str, Any]]
    verification: str | None
    error: str | None
    attempts: int
    done_at: datetime


@dataclass(frozen=True)
class RequestView:
    """A privacy request as listed and shown (no PII: ids, kinds, states, deadlines)."""

    request_id: UUID
    kind: str
    status: str
    donor_id: UUID | None
    channel: str
    requested_by: str
    received_at: datetime
    due_at: datetime
    attempts: int
    completed_at: datetime | None
    error: str | None
    result_ref: str | None
    identifier_kinds: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict)
    receipts: tuple[ReceiptView, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (API answers, ``requests show --json``)."""
        return {
            "request_id": str(self.request_id),
            "kind": self.kind,
            "status": self.status,
            "donor_id": str(self.donor_id) if self.donor_id else None,
            "channel": self.channel,
            "requested_by": self.requested_by,
            "received_at": self.received_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "attempts": self.attempts,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "error": self.error,
            "result_ref": self.result_ref,
            "identifier_kinds": list(self.identifier_kinds),
            "details": dict(self.details),
            "receipts": [
                {
                    "system": r.system,
                    "action": r.action,
                    "status": r.status,
                    "verified": r.verified,
                    "counts": dict(r.counts),
                    "remote_refs": list(r.remote_refs),
                    "verification": r.verification,
                    "error": r.error,
                    "attempts": r.attempts,
                    "done_at": r.done_at.isoformat(),
                }
                for r in self.receipts
            ],
        }


def create_request(
    conn: psycopg.Connection,
    *,
    kind: str,
    identifiers: Sequence[Identifier],
    ring: KeyRing,
    channel: str,
    requested_by: str,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> RequestView:
    """Record a request; the donor is looked up now (``None`` when no donor matches yet).

    Not committed. Audited as ``privacy_request.received`` (kinds of identifiers, never values).

    :raises DonorSyncError: unknown kind or channel, no identifier, or identifiers naming two donors.
    """
    if kind not in KINDS:
        raise DonorSyncError(f"unknown request kind {kind!r} ({', '.join(KINDS)})")
    if channel not in CHANNELS:
        raise DonorSyncError(f"unknown request channel {channel!r} ({', '.join(CHANNELS)})")
    if not identifiers:
        raise DonorSyncError("a request needs an identifier: donor id, email, phone or source id")
    donor_id = find_donor(conn, identifiers)
    hashes = hash_entries(ring, identifiers)
    if donor_id is None and not hashes:
        raise DonorSyncError("no live donor has that donor id")
    if kind == "export" and donor_id is None:
        # Recorded anyway: the deadline runs from receipt, and the donor may arrive before it is processed.
        pass
    row = conn.execute(
        "INSERT INTO sync.privacy_requests (kind, donor_id, subject_hashes, details, channel, requested_by,"
        " received_at, due_at)"
        " VALUES (%(kind)s, %(donor)s, %(hashes)s, %(details)s, %(channel)s, %(by)s,"
        "         coalesce(%(now)s, now()), coalesce(%(now)s, now()) + interval '30 days')"
        " RETURNING request_id",
        {
            "kind": kind,
            "donor": donor_id,
            "hashes": json.dumps(hashes),
            "details": json.dumps(dict(details or {})),
            "channel": channel,
            "by": requested_by,
            "now": now,
        },
    ).fetchone()
    assert row is not None
    request_id: UUID = row[0]
    audit.record(
        conn,
        actor=requested_by,
        action="privacy_request.received",
        object_type="privacy_request",
        object_id=str(request_id),
        details={
            "kind": kind,
            "channel": channel,
            "donor_id": str(donor_id) if donor_id else None,
            "identifier_kinds": sorted({i.kind for i in identifiers}),
        },
    )
    return get_request(conn, request_id)


def _view(row: Mapping[str, Any], receipts: tuple[ReceiptView, ...] = ()) -> RequestView:
    return RequestView(
        request_id=row["request_id"],
        kind=row["kind"],
        status=row["status"],
        donor_id=row["donor_id"],
        channel=row["channel"],
        requested_by=row["requested_by"],
        received_at=row["received_at"],
        due_at=row["due_at"],
        attempts=row["attempts"],
        completed_at=row["completed_at"],
        error=row["error"],
        result_ref=row["result_ref"],
        identifier_kinds=tuple(sorted({str(h.get("kind")) for h in row["subject_hashes"] or []})),
        details=row["details"] or {},
        receipts=receipts,
    )


_COLUMNS = (
    "request_id, kind, status, donor_id, channel, requested_by, received_at, due_at, attempts,"
    " completed_at, error, result_ref, subject_hashes, details"
)


def get_request(conn: psycopg.Connection, request_id: UUID | str) -> RequestView:
    """Return the request with its receipts.

    :raises RequestNotFoundError: no request has that id.
    """
    try:
        rid = UUID(str(request_id))
    except ValueError:
        raise RequestNotFoundError(f"privacy request {request_id!r} is not a uuid") from None
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM sync.privacy_requests WHERE request_id = %s", (rid,)
        ).fetchone()
        if row is None:
            raise RequestNotFoundError(f"no privacy request {rid}")
        receipts = cur.execute(
            "SELECT system, action, status, verified, counts, remote_refs, verification, error, attempts,"
            " done_at FROM sync.privacy_receipts WHERE request_id = %s ORDER BY system",
            (rid,),
        ).fetchall()
    return _view(row, tuple(ReceiptView(**r) for r in receipts))


def list_requests(
    conn: psycopg.Connection, *, statuses: Sequence[str] = (), kind: str | None = None, limit: int = 100
) -> list[RequestView]:
    """Return requests, soonest deadline first (receipts not included)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM sync.privacy_requests"
            " WHERE (cardinality(%(statuses)s::text[]) = 0 OR status = ANY(%(statuses)s::text[]))"
            "   AND (%(kind)s::text IS NULL OR kind = %(kind)s::text)"
            " ORDER BY due_at, received_at LIMIT %(limit)s",
            {"statuses": list(statuses), "kind": kind, "limit": limit},
        ).fetchall()
    return [_view(r) for r in rows]
