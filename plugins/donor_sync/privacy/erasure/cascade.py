"""Carry out one erasure request: freeze, every destination's eraser, then the local purge.

Order, and why (docs/erasure.md):

1. **Freeze** (one transaction): the donor and every donor merged into it get ``erased_at`` (the
   outbox stops rendering them, matching stops proposing them), their pending pushes are canceled,
   and the tombstones are written, so a record of the donor arriving from now on is blocked by
   resolve. PII is still in core: the destinations need it to find the donor. If a push of the
   donor is in flight, nothing is done and the request waits for the next run (a push landing
   after the destination's erasure would bring the donor back there).
2. **Destinations**: each eraser without a done receipt yet gets the subject (emails, phones,
   donor ids, remote ids, read from core each attempt) and returns a receipt, stored at once
   (upsert on (request, system)). Erasers are idempotent; a failed receipt leaves the request
   ``failed`` and the next run asks that system again.
3. **Local purge** (one transaction, only once every destination is done): raw, staging, core
   and sync lose the PII (:mod:`.purge`), the ``staging`` receipt records counts per table,
   ``donor.erased`` is audited, and the request completes. A crash before its commit leaves
   everything as it was before the purge; the next run repeats the purge.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.events.producers import produce_erasure_event
from donor_sync.observability import audit
from donor_sync.privacy.contracts import DestinationEraser, Receipt
from donor_sync.privacy.erasure.purge import purge_local
from donor_sync.privacy.erasure.subject import SubjectFacts, collect_subject
from donor_sync.privacy.erasure.tombstones import tombstone_values, write_tombstones
from donor_sync.privacy.keys import KeyRing

log = logging.getLogger(__name__)

LOCAL_SYSTEM = "staging"


@dataclass(frozen=True)
class ErasureOutcome:
    """Where an erasure attempt ended: ``completed``, ``failed`` or ``waiting`` (in_progress)."""

    status: str
    error: str | None = None
    receipts: tuple[str, ...] = ()


def store_receipt(conn: psycopg.Connection, request_id: UUID, receipt: Receipt) -> None:
    """Upsert the receipt of ``receipt.system`` for the request (attempts counted). Not committed."""
    row = receipt.as_row()
    conn.execute(
        "INSERT INTO sync.privacy_receipts (request_id, system, action, status, remote_refs, counts,"
        " verified,"
        " verification, error)"
        " VALUES (%(rid)s, %(system)s, %(action)s, %(status)s, %(refs)s, %(counts)s, %(verified)s,"
        "         %(verification)s, %(error)s)"
        " ON CONFLICT (request_id, system) DO UPDATE SET action = EXCLUDED.action, status = EXCLUDED.status,"
        " remote_refs = EXCLUDED.remote_refs, counts = EXCLUDED.counts, verified = EXCLUDED.verified,"
        " verification = EXCLUDED.verification, error = EXCLUDED.error,"
        " attempts = sync.privacy_receipts.attempts + 1, done_at = now()",
        {
            "rid": request_id,
            "system": row["system"],
            "action": row["action"],
            "status": row["status"],
            "refs": json.dumps(row["remote_refs"]),
            "counts": json.dumps(row["counts"]),
            "verified": row["verified"],
            "verification": row["verification"],
            "error": row["error"],
        },
    )


def done_systems(conn: psycopg.Connection, request_id: UUID) -> set[str]:
    """Return the systems whose receipt for the request is done."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT system FROM sync.privacy_receipts WHERE request_id = %s AND status = 'done'",
            (request_id,),
        ).fetchall()
    }


def _freeze(
    conn: psycopg.Connection,
    facts: SubjectFacts,
    *,
    request_id: UUID,
    ring: KeyRing,
    subject_hashes: Sequence[dict[str, Any]],
    now: datetime,
) -> int:
    ids = list(facts.donor_ids)
    in_flight = conn.execute(
        "SELECT count(*) FROM sync.outbox WHERE donor_id = ANY(%s::uuid[]) AND state = 'in_flight'", (ids,)
    ).fetchone()[0]  # type: ignore[index]
    if in_flight:
        return int(in_flight)
    conn.execute(
        "UPDATE core.donors SET erased_at = coalesce(erased_at, %(now)s) WHERE donor_id ="
        " ANY(%(ids)s::uuid[])",
        {"ids": ids, "now": now},
    )
    conn.execute(
        "UPDATE sync.outbox SET state = 'canceled', error_message = NULL"
        " WHERE donor_id = ANY(%s::uuid[]) AND state = 'pending'",
        (ids,),
    )
    write_tombstones(
        conn,
        ring,
        request_id,
        tombstone_values(facts.emails, facts.phones, [(s, e) for s, e, _ in facts.source_ids]),
        subject_hashes,
    )
    # donor.erased queued for every event subscriber; push_events delivers it (docs/events.md)
    produce_erasure_event(conn, request_id, ids, now=now)
    store_receipt(conn, request_id, _announced(conn, request_id))
    return 0


def _announced(conn: psycopg.Connection, request_id: UUID) -> Receipt:
    """The ``outbound_webhooks`` receipt: the request's donor.erased event is queued for each subscriber."""
    rows = conn.execute(
        "SELECT e.event_id::text, (SELECT count(DISTINCT o.destination) FROM sync.outbox o"
        "  WHERE starts_with(o.destination, 'webhook_') AND o.entity = 'donor_erased'"
        "  AND o.record_key = e.event_id::text)"
        " FROM sync.events e WHERE e.fact_key = %s",
        (f"donor.erased:{request_id}",),
    ).fetchall()
    event_ids = [str(r[0]) for r in rows]
    queued = sum(int(r[1]) for r in rows)
    return Receipt(
        system="outbound_webhooks",
        action="notified",
        status="done",
        counts={"subscribers": queued},
        verified=bool(event_ids),
        verification=(
            f"donor.erased {', '.join(event_ids)} queued for {queued} subscriber(s); push_events delivers"
            " it signed, with retries and per-subscriber dead letters"
            if event_ids
            else "no donor.erased event was recorded"
        ),
    )


def _failed_receipt(system: str, exc: BaseException) -> Receipt:
    return Receipt(
        system=system, action="failed", status="failed", error=f"eraser raised {type(exc).__name__}"
    )


def erase_request(
    conn: psycopg.Connection,
    request_id: UUID,
    donor_id: UUID | None,
    *,
    subject_hashes: Sequence[dict[str, Any]],
    erasers: Sequence[DestinationEraser],
    ring: KeyRing,
    now: datetime,
    actor: str,
) -> ErasureOutcome:
    """Carry out (or resume) the erasure ``request_id`` (module docstring); commits each step.

    :param donor_id: the donor found for the request; ``None`` tombstones the request's hashes only.
    """
    if donor_id is None:
        write_tombstones(conn, ring, request_id, [], subject_hashes)
        store_receipt(
            conn,
            request_id,
            Receipt(
                LOCAL_SYSTEM, "not_held", "done", verified=True, verification="no donor matches the request"
            ),
        )
        audit.record(
            conn,
            actor=actor,
            action="donor.erased",
            object_type="privacy_request",
            object_id=str(request_id),
            details={"donor_ids": [], "tombstones": len(subject_hashes)},
        )
        conn.commit()
        return ErasureOutcome("completed", receipts=(LOCAL_SYSTEM,))

    facts = collect_subject(conn, donor_id)
    waiting = _freeze(conn, facts, request_id=request_id, ring=ring, subject_hashes=subject_hashes, now=now)
    if waiting:
        conn.rollback()
        return ErasureOutcome("waiting", f"waiting for {waiting} in-flight push(es) of the donor to finish")
    conn.commit()

    subject = facts.erasure_subject(request_id)
    finished = done_systems(conn, request_id)
    failed: list[str] = []
    for eraser in erasers:
        if eraser.system in finished:
            continue
        try:
            receipt = eraser.erase(subject)
        except Exception as exc:  # an eraser must not raise; if it does, the request retries
            log.warning("eraser %s raised %s for request %s", eraser.system, type(exc).__name__, request_id)
            receipt = _failed_receipt(eraser.system, exc)
        store_receipt(conn, request_id, receipt)
        conn.commit()
        if receipt.status != "done":
            failed.append(eraser.system)
    if failed:
        return ErasureOutcome("failed", f"systems not done: {', '.join(sorted(failed))}")

    counts = purge_local(conn, facts, request_id, now=now)
    left = _left_in_core(conn, facts)
    store_receipt(
        conn,
        request_id,
        Receipt(
            LOCAL_SYSTEM,
            "purged",
            "done",
            counts=counts,
            verified=left == 0,
            verification=f"core.donors, staging.donors, donor_sources rows with its identifiers: {left}",
        ),
    )
    audit.record(
        conn,
        actor=actor,
        action="donor.erased",
        object_type="donor",
        object_id=facts.donor_ids[0],
        details={
            "request_id": str(request_id),
            "donor_ids": list(facts.donor_ids),
            "systems": sorted(done_systems(conn, request_id)),
            "counts": counts,
        },
    )
    conn.commit()
    log.info("erasure %s: %s donor(s) purged locally", request_id, len(facts.donor_ids))
    return ErasureOutcome("completed", receipts=tuple(sorted(done_systems(conn, request_id))))


def _left_in_core(conn: psycopg.Connection, facts: SubjectFacts) -> int:
    """Read back: rows of core and staging that still hold one of the subject's emails or phones."""
    emails, phones = list(facts.emails), list(facts.phones)
    row = conn.execute(
        "SELECT (SELECT count(*) FROM core.donors WHERE lower(email) = ANY(%(e)s) OR phone = ANY(%(p)s))"
        " + (SELECT count(*) FROM staging.donors WHERE lower(email) = ANY(%(e)s) OR phone = ANY(%(p)s))"
        " + (SELECT count(*) FROM core.donor_sources WHERE lower(attributes ->> 'email') = ANY(%(e)s)"
        "    OR attributes ->> 'phone' = ANY(%(p)s))",
        {"e": emails, "p": phones},
    ).fetchone()
    return int(row[0]) if row else 0
