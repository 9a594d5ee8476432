"""Claim due outbox rows for one push, under a lease, and ready them for the connector.

A claim turns due rows of one destination, entity and operation into ``in_flight`` rows held by
the worker until ``next_attempt_at`` (now + lease). Rows are taken in priority order with
``FOR UPDATE SKIP LOCKED``, so concurrent pushers never take the same row, and an ``in_flight``
row whose lease expired (its worker was killed) is due again and reclaimed. A pending row whose
record still has an older version in flight waits for it: one write per destination record at a
time, and an older payload never lands after a newer one.

Each claimed record gets its own remote id and the remote ids of the records it depends on from
``sync.destination_state``. A record whose dependency has no remote id yet is not sent: it goes
back to pending for a short wait, and is dead-lettered (``permanent``, ``DEPENDENCY_MISSING``)
once it has waited longer than the dependency timeout since it was queued. Unless the
destination's privacy gate now keeps the record's donor out (``ctx.donor_gate``): the record it
waits for will never exist there, so it is settled as skipped at once (``canceled``,
``DEPENDENCY_GATED``, the gate's reason in its message), never sent and never dead-lettered. The
queue no longer queues such records (:mod:`donor_sync.delivery.outbox.dependencies`); this
settles those queued before the donor was gated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from donor_sync.delivery.contracts import FailureClass, Operation, OutboundRecord, RecordRef
from donor_sync.delivery.push.context import PushContext
from donor_sync.delivery.push.results import Failure, OwnedRow, apply_failures

log = logging.getLogger(__name__)

DEPENDENCY_MISSING = "DEPENDENCY_MISSING"
DEPENDENCY_WAITING = "DEPENDENCY_WAITING"
#: Error code of a waiting record settled as skipped: the gate keeps its donor out.
DEPENDENCY_GATED = "DEPENDENCY_GATED"


@dataclass
class Claim:
    """What one claim took: records ready to push, and those sent back to wait for dependencies."""

    records: list[OutboundRecord] = field(default_factory=list)
    waiting: int = 0
    dead_lettered: int = 0
    #: Waiting records settled as skipped: the gate keeps their donor out.
    skipped: int = 0

    @property
    def taken(self) -> int:
        """Rows the claim took off the queue."""
        return len(self.records) + self.waiting + self.dead_lettered + self.skipped


_DUE = """
    o.destination = %(destination)s AND o.entity = %(entity)s AND o.operation = %(operation)s
    AND o.state IN ('pending', 'in_flight') AND o.next_attempt_at <= now()
    AND (o.state = 'in_flight' OR NOT EXISTS (
        SELECT 1 FROM sync.outbox f
        WHERE f.state = 'in_flight'
          AND (f.destination, f.entity, f.record_key) = (o.destination, o.entity, o.record_key)))
"""


def due_operations(conn: psycopg.Connection, destination: str, entity: str) -> list[Operation]:
    """Return the operations with due rows for ``entity``, in the order they are pushed.

    Writes go before merges (a merge needs its survivor) and removals last. Operations the
    connectors do not handle (``unsubscribe``, ``erase``, ``trigger``) belong to other stages.
    """
    rows = conn.execute(
        "SELECT DISTINCT operation FROM sync.outbox WHERE destination = %s AND entity = %s"
        " AND state IN ('pending', 'in_flight') AND next_attempt_at <= now()",
        (destination, entity),
    ).fetchall()
    present = {operation for (operation,) in rows}
    return [op for op in _OPERATION_ORDER if op.value in present]


_OPERATION_ORDER = (
    Operation.CREATE,
    Operation.UPSERT,
    Operation.UPDATE,
    Operation.MERGE,
    Operation.ARCHIVE,
    Operation.DELETE,
)


def count_due(
    conn: psycopg.Connection,
    destination: str,
    entity: str,
    operation: Operation,
    *,
    priority_cut: int | None = None,
    above_cut: bool = False,
) -> int:
    """Count claimable rows: at or below ``priority_cut`` (all when None), or above it."""
    condition = "o.priority > %(cut)s" if above_cut else "(%(cut)s::integer IS NULL OR o.priority <= %(cut)s)"
    if above_cut and priority_cut is None:
        return 0
    row = conn.execute(
        f"SELECT count(*) FROM sync.outbox o WHERE {_DUE} AND {condition}",
        {"destination": destination, "entity": entity, "operation": operation.value, "cut": priority_cut},
    ).fetchone()
    return int(row[0]) if row else 0


def claim(
    conn: psycopg.Connection,
    ctx: PushContext,
    *,
    entity: str,
    operation: Operation,
    limit: int,
    priority_cut: int | None = None,
) -> Claim:
    """Claim up to ``limit`` due rows (lowest priority value first); the caller commits.

    :param priority_cut: take only rows with ``priority <= priority_cut`` (quota reserve).
    """
    rows = conn.execute(
        f"""
        WITH picked AS (
            SELECT o.outbox_id FROM sync.outbox o
            WHERE {_DUE} AND (%(cut)s::integer IS NULL OR o.priority <= %(cut)s)
            ORDER BY o.priority, o.next_attempt_at, o.outbox_id
            LIMIT %(limit)s
            FOR UPDATE OF o SKIP LOCKED
        )
        UPDATE sync.outbox o
        SET state = 'in_flight', claimed_by = %(claimed_by)s,
            next_attempt_at = now() + make_interval(secs => %(lease)s)
        FROM picked WHERE o.outbox_id = picked.outbox_id
        RETURNING o.outbox_id, o.entity, o.record_key, o.operation, o.payload, o.attempts,
                  o.donor_id::text, o.depends_on, o.set_if_empty, o.priority,
                  now() - o.created_at > make_interval(secs => %(timeout)s) AS overdue
        """,
        {
            "destination": ctx.destination,
            "entity": entity,
            "operation": operation.value,
            "cut": priority_cut,
            "limit": limit,
            "claimed_by": ctx.claimed_by,
            "lease": ctx.options.lease_seconds,
            "timeout": ctx.options.dependency_timeout_seconds,
        },
    ).fetchall()
    rows.sort(key=lambda r: (r[9], r[0]))
    remote_ids = _remote_ids(conn, ctx.destination, rows)
    result = Claim()
    waiting: list[tuple[int, RecordRef]] = []
    overdue: list[tuple[OwnedRow, RecordRef]] = []
    blocked = _gated_donors(conn, ctx, rows, remote_ids)
    gated: list[tuple[int, RecordRef, str]] = []
    for outbox_id, ent, key, op, payload, attempts, donor_id, depends_on, set_if_empty, _, late in rows:
        refs = _refs(depends_on)
        missing = [ref for ref in refs if ref not in remote_ids]
        if missing:
            if donor_id in blocked:
                gated.append((outbox_id, missing[0], blocked[donor_id]))
            elif late:
                overdue.append((OwnedRow(outbox_id, ent, key, op, attempts), missing[0]))
            else:
                waiting.append((outbox_id, missing[0]))
            continue
        result.records.append(
            OutboundRecord(
                outbox_id=outbox_id,
                entity=ent,
                record_key=key,
                operation=Operation(op),
                payload=payload,
                attempts=attempts,
                donor_id=donor_id,
                depends_on=refs,
                set_if_empty=frozenset(set_if_empty or ()),
                remote_id=remote_ids.get(RecordRef(ent, key)),
                remote_refs={ref: remote_ids[ref] for ref in refs},
            )
        )
    if gated:
        result.skipped = _settle_gated(conn, ctx, gated)
    if waiting:
        result.waiting = _wait_for_dependencies(conn, ctx, waiting)
    if overdue:
        counts = apply_failures(
            conn,
            ctx,
            {row.outbox_id: row for row, _ in overdue},
            [
                Failure(
                    outbox_id=row.outbox_id,
                    error_class=FailureClass.PERMANENT,
                    error_code=DEPENDENCY_MISSING,
                    message=f"{ref.entity} {ref.record_key} never landed in {ctx.destination}, "
                    "so this record cannot point at it",
                    count_attempt=False,
                    force_dead=True,
                    log_attempt=False,
                )
                for row, ref in overdue
            ],
        )
        result.dead_lettered = counts.dead_lettered
    return result


def _refs(depends_on: Any) -> tuple[RecordRef, ...]:
    return tuple(RecordRef(str(item["entity"]), str(item["record_key"])) for item in depends_on or ())


def _remote_ids(conn: psycopg.Connection, destination: str, rows: list[Any]) -> Mapping[RecordRef, str]:
    """Return the live remote ids of the claimed records and of everything they depend on."""
    wanted = {RecordRef(row[1], row[2]) for row in rows}
    for row in rows:
        wanted.update(_refs(row[7]))
    if not wanted:
        return {}
    found = conn.execute(
        """
        SELECT s.entity, s.record_key, s.remote_id
        FROM unnest(%s::text[], %s::text[]) AS w(entity, record_key)
        JOIN sync.destination_state s
          ON s.destination = %s AND (s.entity, s.record_key) = (w.entity, w.record_key)
        WHERE s.remote_id IS NOT NULL AND s.remote_deleted_at IS NULL
        """,
        ([ref.entity for ref in wanted], [ref.record_key for ref in wanted], destination),
    ).fetchall()
    return {RecordRef(entity, key): remote_id for entity, key, remote_id in found}


def _gated_donors(
    conn: psycopg.Connection, ctx: PushContext, rows: list[Any], remote_ids: Mapping[RecordRef, str]
) -> dict[str, str]:
    """Return, for the donors of the claimed rows that miss a dependency, why the gate blocks them
    (allowed donors are left out; nothing is asked without a gate or a missing dependency)."""
    if ctx.donor_gate is None:
        return {}
    donors = {
        str(row[6])
        for row in rows
        if row[6] is not None and any(ref not in remote_ids for ref in _refs(row[7]))
    }
    if not donors:
        return {}
    return {d: reason for d, reason in ctx.donor_gate(conn, donors).items() if reason is not None}


def _settle_gated(conn: psycopg.Connection, ctx: PushContext, gated: list[tuple[int, RecordRef, str]]) -> int:
    """Settle records waiting for a dependency their donor's gate keeps out: skipped
    (``canceled``, :data:`DEPENDENCY_GATED`, the reason in the message); no attempt counted,
    nothing sent, no dead letter."""
    settled = conn.execute(
        """
        UPDATE sync.outbox o
        SET state = 'canceled', claimed_by = NULL, error_code = %s,
            error_message = 'skipped: the privacy gate keeps the donor out of ' || %s || ' (' || r.reason
                            || '), so ' || r.entity || ' ' || r.record_key || ' will never exist there'
        FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])
             AS r(outbox_id, reason, entity, record_key)
        WHERE o.outbox_id = r.outbox_id AND o.state = 'in_flight' AND o.claimed_by = %s
        """,
        (
            DEPENDENCY_GATED,
            ctx.destination,
            [outbox_id for outbox_id, _, _ in gated],
            [reason for _, _, reason in gated],
            [ref.entity for _, ref, _ in gated],
            [ref.record_key for _, ref, _ in gated],
            ctx.claimed_by,
        ),
    ).rowcount
    log.info(
        "%s: %d record(s) waiting for a dependency skipped: the privacy gate keeps their donor out",
        ctx.destination,
        settled,
    )
    return settled


def _wait_for_dependencies(
    conn: psycopg.Connection, ctx: PushContext, waiting: list[tuple[int, RecordRef]]
) -> int:
    """Send records back to pending for a short wait; no attempt counted, nothing logged."""
    base = ctx.options.dependency_wait_seconds
    jitter = ctx.options.jitter
    delays = [base * (1 - jitter + 2 * jitter * ctx.rng.random()) for _ in waiting]
    conn.execute(
        """
        UPDATE sync.outbox o
        SET state = CASE WHEN EXISTS (
                SELECT 1 FROM sync.outbox n
                WHERE (n.destination, n.entity, n.record_key) = (o.destination, o.entity, o.record_key)
                  AND n.state = 'pending' AND n.outbox_id <> o.outbox_id)
              THEN 'canceled' ELSE 'pending' END,
            claimed_by = NULL,
            next_attempt_at = now() + make_interval(secs => r.delay_s),
            error_code = %s,
            error_message = 'waiting for the remote id of ' || r.entity || ' ' || r.record_key
        FROM unnest(%s::bigint[], %s::double precision[], %s::text[], %s::text[])
             AS r(outbox_id, delay_s, entity, record_key)
        WHERE o.outbox_id = r.outbox_id AND o.state = 'in_flight' AND o.claimed_by = %s
        """,
        (
            DEPENDENCY_WAITING,
            [outbox_id for outbox_id, _ in waiting],
            delays,
            [ref.entity for _, ref in waiting],
            [ref.record_key for _, ref in waiting],
            ctx.claimed_by,
        ),
    )
    log.info("%s: %d record(s) wait for a dependency to land", ctx.destination, len(waiting))
    return len(waiting)
