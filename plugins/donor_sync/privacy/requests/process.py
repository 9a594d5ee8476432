"""Process due privacy requests: each claimed alone, carried out, its state and attempts recorded.

A request is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and then held, across the
commits its steps make, by a session advisory lock on its id: two runs (two DAG runs, the CLI and
the DAG) never process the same request, and a run skips a request another one holds. States:
``received`` → ``in_progress`` → ``completed``, or ``failed`` (a system refused; the next run
retries), or ``rejected`` (cannot be carried out: an export or consent change of nobody, a consent
change whose details are invalid). Every attempt counts in ``attempts``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.errors import ConfigError
from donor_sync.observability import audit
from donor_sync.privacy.contracts import DestinationEraser
from donor_sync.privacy.erasure.cascade import erase_request
from donor_sync.privacy.keys import KeySource, default_key_source
from donor_sync.privacy.requests.identifiers import find_donor_by_hashes

log = logging.getLogger(__name__)

#: Class id of the advisory locks that hold a request while it is processed.
LOCK_CLASS = 0x0D5_7E5

#: Records a consent change: ``(conn, donor_id, details, actor)``; details name purpose, channel, status.
ConsentRecorder = Callable[[psycopg.Connection, UUID, dict[str, Any], str], None]


@dataclass(frozen=True)
class Claimed:
    """A request this run holds."""

    request_id: UUID
    kind: str
    donor_id: UUID | None
    subject_hashes: list[dict[str, Any]]
    received_at: datetime
    details: dict[str, Any]


@dataclass
class ProcessReport:
    """What one call did: the requests it held and where each ended (ids and states only)."""

    outcomes: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def count(self, status: str) -> int:
        """Return how many requests ended in ``status``."""
        return sum(1 for s in self.outcomes.values() if s == status)


def _claim(
    conn: psycopg.Connection, ids: Sequence[UUID] | None, skip: set[UUID], now: datetime
) -> Claimed | None:
    row = conn.execute(
        "SELECT request_id, kind, donor_id, subject_hashes, received_at, details FROM sync.privacy_requests"
        " WHERE status IN ('received', 'in_progress', 'failed')"
        "   AND (%(ids)s::uuid[] IS NULL OR request_id = ANY(%(ids)s::uuid[]))"
        "   AND NOT (request_id = ANY(%(skip)s::uuid[]))"
        " ORDER BY due_at, received_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        {"ids": list(ids) if ids is not None else None, "skip": list(skip)},
    ).fetchone()
    if row is None:
        conn.commit()
        return None
    request_id = row[0]
    skip.add(request_id)
    got = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, str(request_id))
    ).fetchone()
    if not (got and got[0]):
        conn.commit()
        return Claimed(request_id, "", None, [], now, {"held_elsewhere": True})
    conn.execute(
        "UPDATE sync.privacy_requests SET status = 'in_progress', attempts = attempts + 1,"
        " started_at = coalesce(started_at, %s), error = NULL WHERE request_id = %s",
        (now, request_id),
    )
    conn.commit()
    return Claimed(request_id, row[1], row[2], list(row[3] or []), row[4], dict(row[5] or {}))


def _finish(
    conn: psycopg.Connection, request_id: UUID, status: str, error: str | None, now: datetime
) -> None:
    conn.execute(
        "UPDATE sync.privacy_requests SET status = %s, error = %s,"
        " completed_at = CASE WHEN %s = 'completed' THEN %s END WHERE request_id = %s",
        (status, error, status, now, request_id),
    )
    conn.commit()


def _resolve_donor(conn: psycopg.Connection, claimed: Claimed, keys: KeySource) -> UUID | None:
    """Find the request's donor again: follow merges, or look its hashes up among new arrivals."""
    if claimed.donor_id is not None:
        row = conn.execute(
            "SELECT coalesce(merged_into, donor_id) FROM core.donors WHERE donor_id = %s", (claimed.donor_id,)
        ).fetchone()
        donor: UUID | None = row[0] if row else claimed.donor_id
    elif claimed.subject_hashes:
        ring = keys.ring("tombstone")
        if ring is None:
            raise ConfigError("privacy keys: no 'tombstone' ring to look the request's identifiers up with")
        donor = find_donor_by_hashes(conn, ring, claimed.subject_hashes, since=claimed.received_at)
    else:
        donor = None
    if donor is not None and donor != claimed.donor_id:
        conn.execute(
            "UPDATE sync.privacy_requests SET donor_id = %s WHERE request_id = %s",
            (donor, claimed.request_id),
        )
        conn.commit()
    return donor


def process_requests(
    conn: psycopg.Connection,
    *,
    erasers: Sequence[DestinationEraser],
    keys: KeySource | None = None,
    request_ids: Sequence[UUID | str] | None = None,
    actor: str,
    export_dir: Path | None = None,
    consent_recorder: ConsentRecorder | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    limit: int = 100,
) -> ProcessReport:
    """Process open requests (all, or only ``request_ids``), soonest deadline first, each on its own.

    :param erasers: one per destination (``donor_sync.hooks.privacy_erasers.erasers_for()`` in Airflow).
    :param keys: the key source (default: :func:`~donor_sync.privacy.keys.default_key_source`).
    :param export_dir: where exports are written (default ``.local/exports``).
    :param consent_recorder: records consent changes (default: as consent events, source
        ``privacy_request``: :func:`donor_sync.privacy.consent.requests.record_request_change`).
    """
    source = keys if keys is not None else default_key_source()
    ids = [UUID(str(i)) for i in request_ids] if request_ids else None
    report = ProcessReport()
    skip: set[UUID] = set()
    for _ in range(limit):
        claimed = _claim(conn, ids, skip, now())
        if claimed is None:
            break
        if claimed.details.get("held_elsewhere"):
            report.outcomes[str(claimed.request_id)] = "held_elsewhere"
            continue
        rid = claimed.request_id
        try:
            status, error = _carry_out(
                conn,
                claimed,
                erasers=erasers,
                keys=source,
                actor=actor,
                export_dir=export_dir,
                consent_recorder=consent_recorder,
                now=now(),
            )
        except Exception as exc:
            conn.rollback()
            status, error = "failed", f"{type(exc).__name__} while processing (see the task log)"
            log.exception("privacy request %s failed", rid)
            if isinstance(exc, ConfigError):
                error = str(exc)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, str(rid)))
        _finish(conn, rid, status, error, now())
        report.outcomes[str(rid)] = status
        if error:
            report.errors[str(rid)] = error
        log.info("privacy request %s (%s): %s", rid, claimed.kind, status)
    return report


def _carry_out(
    conn: psycopg.Connection,
    claimed: Claimed,
    *,
    erasers: Sequence[DestinationEraser],
    keys: KeySource,
    actor: str,
    export_dir: Path | None,
    consent_recorder: ConsentRecorder | None,
    now: datetime,
) -> tuple[str, str | None]:
    donor = _resolve_donor(conn, claimed, keys)
    rid = claimed.request_id
    if claimed.kind == "erasure":
        ring = keys.ring("tombstone")
        if ring is None:
            raise ConfigError("privacy keys: no 'tombstone' ring; erasures cannot write tombstones")
        outcome = erase_request(
            conn,
            rid,
            donor,
            subject_hashes=claimed.subject_hashes,
            erasers=erasers,
            ring=ring,
            now=now,
            actor=actor,
        )
        status = "in_progress" if outcome.status == "waiting" else outcome.status
        return status, outcome.error
    if claimed.kind == "export":
        if donor is None:
            return "rejected", "no donor matches the request"
        from donor_sync.privacy.export import default_export_path, export_donor

        out = (export_dir / f"{rid}.json") if export_dir else default_export_path(rid)
        export_donor(conn, rid, donor, actor=actor, out=out)
        conn.commit()
        return "completed", None
    # consent_change
    if donor is None:
        return "rejected", "no donor matches the request"
    if consent_recorder is None:
        from donor_sync.privacy.consent.requests import InvalidConsentChange, record_request_change

        try:
            record_request_change(conn, donor, claimed.details, actor, request_id=rid)
        except InvalidConsentChange as exc:
            return "rejected", str(exc)
    else:
        consent_recorder(conn, donor, claimed.details, actor)
    audit.record(
        conn,
        actor=actor,
        action="consent.changed",
        object_type="privacy_request",
        object_id=str(rid),
        details={"donor_id": str(donor)},
    )
    conn.commit()
    return "completed", None
