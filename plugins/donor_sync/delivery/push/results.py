"""Write what a destination said about a batch back to Postgres, in the caller's transaction.

Success: the outbox row is ``succeeded``; ``sync.destination_state`` keeps the payload hash, the
remote id and when it landed; the remote id also lands in core (``core.donor_sources`` for donor
records, ``core.gift_destinations`` for gifts); a merge marks its ``sync.destination_merges`` row
merged and the merged-away record deleted there; an older open dead letter of the same record is
closed as superseded.

Failure: a retryable class whose ladder is not spent goes back to ``pending`` at the next rung
(1m, 5m, 15m, 1h, 4h, 24h, +- jitter); anything else becomes a ``sync.dead_letters`` row with the
payload, the error, its class and remediation, and the outbox row is ``dead``. A rate-limited
failure never counts an attempt: the record waits for the window, not for a fix. Nor does a
record the connector never sent (``RecordResult.sent`` False): it goes back on its rung with no
attempt counted and no push_log row, so it is never dead-lettered for attempts it did not make.

Every attempt leaves a ``sync.push_log`` row. Rows the worker no longer holds (its lease expired
and another run reclaimed them) are left alone and counted as ``stale``. A record that goes back
to ``pending`` while a newer version of it is already queued is ``canceled`` instead: the newer
version replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import psycopg

from donor_sync.delivery.contracts import DeliveryError, FailureClass, Operation, RecordResult
from donor_sync.delivery.push.context import PushContext
from donor_sync.privacy.crypto.fields import seal_rows
from donor_sync.resolve.destination_ids import DestinationId, attach_destination_ids
from donor_sync.retry_ladder import delay_for_attempt

log = logging.getLogger(__name__)

#: Destination entities whose remote ids are kept in core, and the kind of core row they hold.
#: Donor entities go to core.donor_sources (role 'destination'), gift entities to
#: core.gift_destinations.
ENTITY_CORE_KIND: Mapping[str, str] = {
    "contact": "donor",
    "opportunity": "gift",
    "deal": "gift",
}
DONOR_ENTITIES = tuple(entity for entity, kind in ENTITY_CORE_KIND.items() if kind == "donor")
GIFT_ENTITIES = tuple(entity for entity, kind in ENTITY_CORE_KIND.items() if kind == "gift")
#: Operations after which the record no longer exists at the destination.
REMOVING_OPERATIONS = (Operation.DELETE.value, Operation.ARCHIVE.value)

#: Longest vendor message kept (messages carry codes and field names, never values).
MAX_MESSAGE_CHARS = 1000
_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


@dataclass
class WriteCounts:
    """What happened to the records of one write."""

    succeeded: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    superseded: int = 0
    stale: int = 0

    def add(self, other: WriteCounts) -> None:
        """Add ``other``'s counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def failed(self) -> int:
        """Records whose attempt failed (retrying, dead-lettered or replaced by a newer version)."""
        return self.retrying + self.dead_lettered + self.superseded


@dataclass(frozen=True)
class Failure:
    """One record's failed attempt, as the result writer applies it.

    :param count_attempt: False when the failure is not the record's doing and must not climb
        the ladder (rate limits; always False for ``rate_limited``).
    :param retry_after_s: the vendor's own wait, honoured when longer than the rung.
    :param force_dead: dead-letter at once whatever the class (a dependency that never landed).
    :param log_attempt: write a push_log row (False when the record was never sent).
    """

    outbox_id: int
    error_class: FailureClass
    error_code: str | None = None
    message: str | None = None
    http_status: int | None = None
    vendor_request_id: str | None = None
    count_attempt: bool = True
    retry_after_s: float | None = None
    force_dead: bool = False
    log_attempt: bool = True


@dataclass(frozen=True)
class OwnedRow:
    """An in-flight outbox row this worker still holds."""

    outbox_id: int
    entity: str
    record_key: str
    operation: str
    attempts: int


def clip_message(message: str | None) -> str | None:
    """Return ``message`` cut to :data:`MAX_MESSAGE_CHARS`."""
    if message is None:
        return None
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


def retry_delay(
    retry_number: int,
    *,
    ladder: tuple[timedelta, ...],
    jitter: float,
    rng_value: float,
) -> timedelta | None:
    """Return the wait before retry ``retry_number`` (retry n follows the n-th failure).

    None once the ladder is spent. ``rng_value`` in [0, 1) picks the jitter, so the delay lies in
    ``rung * (1 - jitter) .. rung * (1 + jitter)``.
    """
    rung = delay_for_attempt(max(retry_number, 1), ladder)
    if rung is None:
        return None
    return rung * (1 - jitter + 2 * jitter * rng_value)


def lock_owned(conn: psycopg.Connection, ctx: PushContext, outbox_ids: Iterable[int]) -> dict[int, OwnedRow]:
    """Lock and return the rows among ``outbox_ids`` still in flight under this worker's lease."""
    rows = conn.execute(
        "SELECT outbox_id, entity, record_key, operation, attempts FROM sync.outbox"
        " WHERE outbox_id = ANY(%s) AND state = 'in_flight' AND claimed_by = %s"
        " ORDER BY outbox_id FOR UPDATE",
        (list(outbox_ids), ctx.claimed_by),
    ).fetchall()
    return {row[0]: OwnedRow(*row) for row in rows}


def write_results(
    conn: psycopg.Connection,
    ctx: PushContext,
    results: Sequence[RecordResult],
    *,
    duration_ms: int | None = None,
) -> WriteCounts:
    """Apply one batch's results (successes and per-record failures); the caller commits."""
    owned = lock_owned(conn, ctx, (r.outbox_id for r in results))
    counts = WriteCounts(stale=sum(1 for r in results if r.outbox_id not in owned))
    successes = [r for r in results if r.ok and r.outbox_id in owned]
    failures = [
        Failure(
            outbox_id=r.outbox_id,
            error_class=FailureClass(r.error_class or FailureClass.TRANSIENT),
            error_code=r.error_code,
            message=r.message,
            http_status=r.http_status,
            vendor_request_id=r.vendor_request_id,
            count_attempt=r.sent and r.error_class != FailureClass.RATE_LIMITED,
            log_attempt=r.sent,
        )
        for r in results
        if not r.ok and r.outbox_id in owned
    ]
    if successes:
        _log_successes(conn, ctx, owned, successes, duration_ms)
        counts.succeeded += _apply_successes(conn, ctx, successes)
    if failures:
        counts.add(apply_failures(conn, ctx, owned, failures, duration_ms=duration_ms))
    return counts


def release_unavailable(
    conn: psycopg.Connection, ctx: PushContext, outbox_ids: Sequence[int], error: DeliveryError
) -> WriteCounts:
    """Put records back on their next rung after the call itself failed; the caller commits.

    A rate-limited call counts no attempt (the records wait for the window); any other class
    counts one, so a destination down for longer than the ladder dead-letters its records.
    """
    owned = lock_owned(conn, ctx, outbox_ids)
    counts = WriteCounts(stale=len(set(outbox_ids)) - len(owned))
    error_class = FailureClass(error.error_class)
    rate_limited = error_class is FailureClass.RATE_LIMITED
    failures = [
        Failure(
            outbox_id=outbox_id,
            error_class=error_class,
            error_code=error.error_code,
            message=str(error),
            http_status=error.http_status,
            count_attempt=not rate_limited,
            retry_after_s=error.retry_after_s,
        )
        for outbox_id in owned
    ]
    counts.add(apply_failures(conn, ctx, owned, failures, ladder_only=True))
    return counts


def apply_failures(
    conn: psycopg.Connection,
    ctx: PushContext,
    owned: Mapping[int, OwnedRow],
    failures: Sequence[Failure],
    *,
    duration_ms: int | None = None,
    ladder_only: bool = False,
) -> WriteCounts:
    """Retry or dead-letter each failed record; the caller commits.

    :param ladder_only: the failure was the call's, not the record's: retry any class on the
        ladder (dead letter only once it is spent).
    """
    counts = WriteCounts()
    retries: list[tuple[Failure, float, int]] = []
    deaths: list[tuple[Failure, int]] = []
    for failure in failures:
        row = owned[failure.outbox_id]
        counted = failure.count_attempt and failure.error_class is not FailureClass.RATE_LIMITED
        attempts_after = row.attempts + (1 if counted else 0)
        retryable = ladder_only or failure.error_class.retryable
        delay: timedelta | None = None
        if retryable and not failure.force_dead:
            # The rung of the retry about to be scheduled: retry n follows the n-th failure.
            delay = retry_delay(
                row.attempts + 1, ladder=ctx.ladder, jitter=ctx.options.jitter, rng_value=ctx.rng.random()
            )
            if delay is None and not counted:
                delay = ctx.ladder[-1]  # waiting on a window never dead-letters a record
        if delay is None:
            deaths.append((failure, attempts_after))
            continue
        seconds = delay.total_seconds()
        if failure.retry_after_s is not None:
            seconds = max(seconds, failure.retry_after_s)
        retries.append((failure, seconds, attempts_after))
    _log_failures(conn, ctx, owned, failures, duration_ms)
    if retries:
        requeued = _requeue(conn, retries)
        counts.retrying += requeued
        counts.superseded += len(retries) - requeued
    if deaths:
        counts.dead_lettered += _bury(conn, ctx, deaths)
    return counts


# -- success --------------------------------------------------------------------------------------


def _success_arrays(successes: Sequence[RecordResult]) -> tuple[list[int], list[str | None]]:
    return [r.outbox_id for r in successes], [r.remote_id or None for r in successes]


def _apply_successes(conn: psycopg.Connection, ctx: PushContext, successes: Sequence[RecordResult]) -> int:
    ids, remote_ids = _success_arrays(successes)
    params = {"ids": ids, "remote_ids": remote_ids, "removing": list(REMOVING_OPERATIONS)}
    done = conn.execute(
        """
        UPDATE sync.outbox o
        SET state = 'succeeded', attempts = o.attempts + 1, next_attempt_at = now(),
            error_class = NULL, error_code = NULL, error_message = NULL
        WHERE o.outbox_id = ANY(%(ids)s)
        """,
        params,
    ).rowcount
    # What each destination record last received. A merge changes the merged-away record only
    # (below); a delete or archive forgets the hash, so the record is queued again if it returns.
    conn.execute(
        """
        INSERT INTO sync.destination_state AS s (destination, entity, record_key, donor_id, remote_id,
            last_payload_sha256, last_pushed_at, last_outbox_id, remote_deleted_at)
        SELECT o.destination, o.entity, o.record_key, o.donor_id, r.remote_id,
               CASE WHEN o.operation = ANY(%(removing)s) THEN NULL ELSE o.payload_sha256 END,
               now(), o.outbox_id,
               CASE WHEN o.operation = ANY(%(removing)s) THEN now() END
        FROM unnest(%(ids)s::bigint[], %(remote_ids)s::text[]) AS r(outbox_id, remote_id)
        JOIN sync.outbox o USING (outbox_id)
        WHERE o.operation <> 'merge'
        ON CONFLICT (destination, entity, record_key) DO UPDATE
        SET remote_id = COALESCE(EXCLUDED.remote_id, s.remote_id),
            donor_id = COALESCE(EXCLUDED.donor_id, s.donor_id),
            last_payload_sha256 = EXCLUDED.last_payload_sha256,
            last_pushed_at = EXCLUDED.last_pushed_at,
            last_outbox_id = EXCLUDED.last_outbox_id,
            remote_deleted_at = EXCLUDED.remote_deleted_at
        """,
        params,
    )
    _core_remote_ids(conn, params)
    _apply_merges(conn, ctx, dict(zip(ids, remote_ids, strict=True)))
    _supersede_dead_letters(conn, ctx, ids)
    return done


def _core_remote_ids(conn: psycopg.Connection, params: dict[str, object]) -> None:
    """Keep the remote ids of donors and gifts in core beside their other ids."""
    params = {**params, "donor_entities": list(DONOR_ENTITIES), "gift_entities": list(GIFT_ENTITIES)}
    # Each id becomes a destination record of its donor with a cluster-map row (it follows the
    # donor through merges and unmerges); an id already known keeps the donor it has now, so a
    # push queued before a merge cannot pull the id back to the merged-away donor.
    rows = conn.execute(
        f"""
        SELECT d.donor_id::text, o.destination, r.remote_id, o.entity
        FROM unnest(%(ids)s::bigint[], %(remote_ids)s::text[]) AS r(outbox_id, remote_id)
        JOIN sync.outbox o USING (outbox_id)
        JOIN core.donors d ON d.donor_id = COALESCE(
            o.donor_id, CASE WHEN o.record_key ~ '{_UUID_PATTERN}' THEN o.record_key::uuid END)
        WHERE o.entity = ANY(%(donor_entities)s) AND r.remote_id IS NOT NULL
          AND o.operation NOT IN ('merge', 'delete', 'archive')
        """,
        params,
    ).fetchall()
    attach_destination_ids(
        conn,
        [DestinationId(str(d), str(dest), str(rid), str(entity)) for d, dest, rid, entity in rows],
        actor="push",
        now=datetime.now(UTC),
    )
    conn.execute(
        """
        UPDATE core.donor_sources ds SET retired_at = now()
        FROM unnest(%(ids)s::bigint[]) AS r(outbox_id)
        JOIN sync.outbox o USING (outbox_id)
        JOIN sync.destination_state s
          ON (s.destination, s.entity, s.record_key) = (o.destination, o.entity, o.record_key)
        WHERE o.entity = ANY(%(donor_entities)s) AND o.operation = ANY(%(removing)s)
          AND ds.role = 'destination' AND ds.system = o.destination AND ds.external_id = s.remote_id
          AND ds.retired_at IS NULL
        """,
        params,
    )
    conn.execute(
        """
        INSERT INTO core.gift_destinations AS gd (gift_id, destination, entity, remote_id)
        SELECT g.gift_id, o.destination, o.entity, r.remote_id
        FROM unnest(%(ids)s::bigint[], %(remote_ids)s::text[]) AS r(outbox_id, remote_id)
        JOIN sync.outbox o USING (outbox_id)
        JOIN core.gifts g ON g.gift_key = o.record_key
        WHERE o.entity = ANY(%(gift_entities)s) AND r.remote_id IS NOT NULL
          AND o.operation NOT IN ('merge', 'delete', 'archive')
        ON CONFLICT (gift_id, destination, entity) DO UPDATE
        SET remote_id = EXCLUDED.remote_id, last_pushed_at = now()
        """,
        params,
    )
    conn.execute(
        """
        DELETE FROM core.gift_destinations gd
        USING unnest(%(ids)s::bigint[]) AS r(outbox_id)
        JOIN sync.outbox o USING (outbox_id)
        JOIN core.gifts g ON g.gift_key = o.record_key
        WHERE o.entity = ANY(%(gift_entities)s) AND o.operation = ANY(%(removing)s)
          AND (gd.gift_id, gd.destination, gd.entity) = (g.gift_id, o.destination, o.entity)
        """,
        params,
    )


def _apply_merges(conn: psycopg.Connection, ctx: PushContext, remote_ids: Mapping[int, str | None]) -> None:
    """Mark landed merges done: their merge row merged, the merged-away record gone there."""
    merges = conn.execute(
        """
        SELECT o.outbox_id, o.destination, o.entity, o.record_key, o.payload ->> 'merged_remote_id',
               s.remote_id
        FROM sync.outbox o
        LEFT JOIN sync.destination_state s
          ON (s.destination, s.entity, s.record_key) = (o.destination, o.entity, o.record_key)
        WHERE o.outbox_id = ANY(%s) AND o.operation = 'merge'
        """,
        (list(remote_ids),),
    ).fetchall()
    for outbox_id, destination, entity, record_key, payload_merged_id, state_remote_id in merges:
        row = conn.execute(
            """
            UPDATE sync.destination_merges m
            SET status = 'merged', resolved_at = now(), resolved_by = %(actor)s,
                outbox_id = COALESCE(m.outbox_id, %(outbox_id)s),
                survivor_remote_id = COALESCE(%(survivor_remote_id)s, m.survivor_remote_id)
            WHERE m.destination = %(destination)s AND m.entity = %(entity)s AND m.status = 'pending'
              AND (m.outbox_id = %(outbox_id)s OR m.merged_key = %(record_key)s)
            RETURNING m.merged_key, m.merged_remote_id
            """,
            {
                "actor": ctx.actor,
                "outbox_id": outbox_id,
                "destination": destination,
                "entity": entity,
                "record_key": record_key,
                "survivor_remote_id": remote_ids[outbox_id],
            },
        ).fetchone()
        merged_key = row[0] if row else record_key
        merged_remote_id = (row[1] if row else None) or payload_merged_id or state_remote_id
        conn.execute(
            """
            UPDATE sync.destination_state
            SET remote_deleted_at = now(), last_pushed_at = now(), last_outbox_id = %s
            WHERE destination = %s AND entity = %s AND record_key IN (%s, %s)
            """,
            (outbox_id, destination, entity, record_key, merged_key),
        )
        if merged_remote_id:
            conn.execute(
                "UPDATE core.donor_sources SET retired_at = now() WHERE role = 'destination'"
                " AND system = %s AND external_id = %s AND retired_at IS NULL",
                (destination, merged_remote_id),
            )


def _supersede_dead_letters(conn: psycopg.Connection, ctx: PushContext, ids: list[int]) -> None:
    """Close open dead letters of records a newer version of which just landed.

    Replaying such a letter would write the older payload over the newer one.
    """
    conn.execute(
        """
        WITH closed AS (
            UPDATE sync.dead_letters d
            SET status = 'discarded', resolved_by = %(actor)s, resolved_at = now(),
                note = 'superseded: a newer version of the record landed (outbox ' || o.outbox_id || ')'
            FROM sync.outbox o
            WHERE o.outbox_id = ANY(%(ids)s) AND d.status = 'open'
              AND (d.destination, d.entity, d.record_key, d.operation)
                  = (o.destination, o.entity, o.record_key, o.operation)
              AND d.outbox_id IS DISTINCT FROM o.outbox_id
            RETURNING d.dead_letter_id, o.outbox_id, d.destination, d.error_class
        )
        INSERT INTO sync.audit_log (actor, action, object_type, object_id, details, run_id)
        SELECT %(actor)s, 'dlq.discarded', 'dead_letter', dead_letter_id::text,
               jsonb_build_object('reason', 'superseded', 'dead_letter_id', dead_letter_id,
                                  'landed_outbox_id', outbox_id, 'destination', destination,
                                  'error_class', error_class),
               %(run_id)s
        FROM closed
        """,
        {"actor": ctx.actor, "ids": ids, "run_id": ctx.run_id},
    )


# -- failure --------------------------------------------------------------------------------------


def _requeue(conn: psycopg.Connection, retries: Sequence[tuple[Failure, float, int]]) -> int:
    """Put failed records back to pending on their rung; return how many (the rest were replaced)."""
    rows = conn.execute(
        """
        UPDATE sync.outbox o
        SET state = CASE WHEN EXISTS (
                SELECT 1 FROM sync.outbox n
                WHERE (n.destination, n.entity, n.record_key) = (o.destination, o.entity, o.record_key)
                  AND n.state = 'pending' AND n.outbox_id <> o.outbox_id)
              THEN 'canceled' ELSE 'pending' END,
            claimed_by = NULL,
            attempts = r.attempts,
            next_attempt_at = now() + make_interval(secs => r.delay_s),
            error_class = r.error_class, error_code = r.error_code, error_message = r.message
        FROM unnest(%s::bigint[], %s::double precision[], %s::integer[], %s::text[], %s::text[], %s::text[])
             AS r(outbox_id, delay_s, attempts, error_class, error_code, message)
        WHERE o.outbox_id = r.outbox_id
        RETURNING o.state
        """,
        (
            [f.outbox_id for f, _, _ in retries],
            [delay for _, delay, _ in retries],
            [attempts for _, _, attempts in retries],
            [f.error_class.value for f, _, _ in retries],
            [f.error_code for f, _, _ in retries],
            [clip_message(f.message) for f, _, _ in retries],
        ),
    ).fetchall()
    return sum(1 for (state,) in rows if state == "pending")


def _bury(conn: psycopg.Connection, ctx: PushContext, deaths: Sequence[tuple[Failure, int]]) -> int:
    """Dead-letter records: the outbox row is ``dead``, its payload and error in sync.dead_letters.

    A record with a letter still open gets that letter updated (one open letter per record).
    """
    ids = [f.outbox_id for f, _ in deaths]
    classes = [f.error_class.value for f, _ in deaths]
    remediations = [f.error_class.remediation for f, _ in deaths]
    rows = conn.execute(
        """
        WITH r AS (
            SELECT * FROM unnest(%s::bigint[], %s::integer[], %s::text[], %s::text[], %s::text[], %s::text[])
                AS r(outbox_id, attempts, error_class, error_code, message, remediation)
        ), dead AS (
            UPDATE sync.outbox o
            SET state = 'dead', attempts = r.attempts, next_attempt_at = now(),
                error_class = r.error_class, error_code = r.error_code, error_message = r.message
            FROM r WHERE o.outbox_id = r.outbox_id
            RETURNING o.*
        )
        INSERT INTO sync.dead_letters AS d (outbox_id, destination, entity, record_key, donor_id, operation,
            payload, payload_sha256, error_class, error_code, message, remediation, attempts,
            first_failed_at, last_failed_at)
        SELECT dead.outbox_id, dead.destination, dead.entity, dead.record_key, dead.donor_id, dead.operation,
               dead.payload, dead.payload_sha256, r.error_class, r.error_code, r.message, r.remediation,
               r.attempts,
               LEAST(now(), COALESCE((SELECT min(p.pushed_at) FROM sync.push_log p
                                      WHERE p.outbox_id = dead.outbox_id AND p.outcome = 'failed'), now())),
               now()
        FROM dead JOIN r USING (outbox_id)
        ON CONFLICT (destination, entity, record_key) WHERE status = 'open' DO UPDATE
        SET outbox_id = EXCLUDED.outbox_id, donor_id = EXCLUDED.donor_id, operation = EXCLUDED.operation,
            payload = EXCLUDED.payload, payload_sha256 = EXCLUDED.payload_sha256, edited_payload = NULL,
            error_class = EXCLUDED.error_class, error_code = EXCLUDED.error_code,
            message = EXCLUDED.message, remediation = EXCLUDED.remediation,
            attempts = EXCLUDED.attempts,
            first_failed_at = LEAST(d.first_failed_at, EXCLUDED.first_failed_at),
            last_failed_at = GREATEST(d.last_failed_at, EXCLUDED.last_failed_at)
        RETURNING d.dead_letter_id
        """,
        (
            ids,
            [attempts for _, attempts in deaths],
            classes,
            [f.error_code for f, _ in deaths],
            [clip_message(f.message) for f, _ in deaths],
            remediations,
        ),
    ).fetchall()
    # The payload was copied from the outbox in SQL: seal it (encryption.yaml) before the commit.
    seal_rows(conn, "sync.dead_letters", [r[0] for r in rows])
    _mark_failed_merges(conn, ctx, ids)
    log.info("%s: %d record(s) dead-lettered (outbox ids %s)", ctx.destination, len(rows), ids[:20])
    return len(rows)


def _mark_failed_merges(conn: psycopg.Connection, ctx: PushContext, ids: list[int]) -> None:
    conn.execute(
        """
        UPDATE sync.destination_merges m
        SET status = 'failed', resolved_at = now(), resolved_by = %s,
            outbox_id = COALESCE(m.outbox_id, o.outbox_id)
        FROM sync.outbox o
        WHERE o.outbox_id = ANY(%s) AND o.operation = 'merge' AND m.status = 'pending'
          AND m.destination = o.destination AND m.entity = o.entity
          AND (m.outbox_id = o.outbox_id OR m.merged_key = o.record_key)
        """,
        (ctx.actor, ids),
    )


# -- push log -------------------------------------------------------------------------------------


def _log_successes(
    conn: psycopg.Connection,
    ctx: PushContext,
    owned: Mapping[int, OwnedRow],
    successes: Sequence[RecordResult],
    duration_ms: int | None,
) -> None:
    _insert_log(
        conn,
        ctx,
        [
            (r.outbox_id, owned[r.outbox_id].attempts + 1, "succeeded", r.http_status, r.remote_id, None,
             None, None, r.vendor_request_id)
            for r in successes
        ],
        duration_ms,
    )  # fmt: skip


def _log_failures(
    conn: psycopg.Connection,
    ctx: PushContext,
    owned: Mapping[int, OwnedRow],
    failures: Sequence[Failure],
    duration_ms: int | None,
) -> None:
    _insert_log(
        conn,
        ctx,
        [
            (f.outbox_id, owned[f.outbox_id].attempts + 1, "failed", f.http_status, None,
             f.error_class.value, f.error_code, clip_message(f.message), f.vendor_request_id)
            for f in failures
            if f.log_attempt
        ],
        duration_ms,
    )  # fmt: skip


_LogRow = tuple[int, int, str, int | None, str | None, str | None, str | None, str | None, str | None]


def _insert_log(
    conn: psycopg.Connection, ctx: PushContext, rows: Sequence[_LogRow], duration_ms: int | None
) -> None:
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    conn.execute(
        """
        INSERT INTO sync.push_log (outbox_id, run_id, destination, entity, record_key, operation, attempt,
            outcome, http_status, remote_id, error_class, error_code, message, vendor_request_id, duration_ms)
        SELECT o.outbox_id, %s, o.destination, o.entity, o.record_key, o.operation, r.attempt, r.outcome,
               r.http_status, r.remote_id, r.error_class, r.error_code, r.message, r.vendor_request_id, %s
        FROM unnest(%s::bigint[], %s::integer[], %s::text[], %s::smallint[], %s::text[], %s::text[],
                    %s::text[], %s::text[], %s::text[])
             AS r(outbox_id, attempt, outcome, http_status, remote_id, error_class, error_code, message,
                  vendor_request_id)
        JOIN sync.outbox o USING (outbox_id)
        """,
        (ctx.run_id, duration_ms, *(list(c) for c in columns)),
    )
