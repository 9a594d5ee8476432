"""Donor merges reaching the destinations.

When identity resolution merges donor M into survivor S (``core.merge_decisions``), every
destination that holds a record of M (``sync.destination_state`` with a remote id, for the merge
entity, ``contact`` by default) must end with one record. How depends on the destination
(``include/mappings/delivery.yaml``, ``merges.method``):

* ``api`` (HubSpot): a ``sync.destination_merges`` row with method ``api`` and an outbox row
  (operation ``merge``, record key M, payload ``{"primary_remote_id", "merged_remote_id"}``)
  that depends on S's record, so the push merges once S has landed and fills in its remote id;
* ``crm_task`` (Salesforce NPSP): a ``sync.destination_merges`` row with method ``crm_task``,
  listed for a person to merge in the CRM (``donor-sync merges list``, ``merges done ID``).

The survivor is M's current ``merged_into`` (merges are never chained), not the decision's
original survivor. A merge undone before the destination merged marks its row ``superseded`` and
cancels its pending outbox row. Decisions are scanned from a watermark (``sync.watermarks``:
source = destination, stream ``outbox_merges``), re-scanning those whose merged record landed
since, and never produce a second open row for the same merged record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from donor_sync.delivery.outbox.modes import REPLACEABLE
from donor_sync.delivery.outbox.source_rows import advance_watermark, watermark_since
from donor_sync.delivery.settings import MergeSettings
from donor_sync.errors import DonorSyncError

MERGES_STREAM = "outbox_merges"
DONE_ACTION = "delivery.merge_done"
UNDONE_CODE = "merge_undone"
_REPLACEABLE_LIST = ", ".join(f"'{op}'" for op in REPLACEABLE)


class MergeError(DonorSyncError):
    """A destination merge cannot be changed as asked (unknown id, not open, merged by the API)."""


@dataclass(frozen=True)
class PlannedMerge:
    """A merge decision a destination still has to follow."""

    decision_id: str
    survivor_key: str
    merged_key: str
    survivor_remote_id: str | None
    merged_remote_id: str
    seen_at: datetime

    @property
    def same_record(self) -> bool:
        """Both donors already point at one destination record: nothing to merge there."""
        return self.survivor_remote_id is not None and self.survivor_remote_id == self.merged_remote_id


@dataclass(frozen=True)
class DestinationMerge:
    """A ``sync.destination_merges`` row (ids only: safe to print)."""

    destination_merge_id: int
    destination: str
    entity: str
    survivor_key: str
    merged_key: str
    survivor_remote_id: str | None
    merged_remote_id: str | None
    decision_id: str | None
    method: str
    status: str
    outbox_id: int | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class MergeCounts:
    """What one run did about merges of one destination."""

    queued: int = 0  # api merges queued in the outbox
    listed: int = 0  # crm tasks listed for a person
    already_one: int = 0  # both donors were one destination record already
    superseded: int = 0  # open merges whose donor merge was undone


_PLAN = """
SELECT md.decision_id::text, d.merged_into::text, md.merged_donor_id::text, sv.remote_id, ms.remote_id,
       greatest(md.decided_at, ms.updated_at)
FROM core.merge_decisions md
JOIN core.donors d ON d.donor_id = md.merged_donor_id
JOIN sync.destination_state ms
  ON ms.destination = %(d)s AND ms.entity = %(e)s AND ms.record_key = md.merged_donor_id::text
LEFT JOIN sync.destination_state sv
  ON sv.destination = %(d)s AND sv.entity = %(e)s AND sv.record_key = d.merged_into::text
     AND sv.remote_deleted_at IS NULL
WHERE md.undone_at IS NULL AND d.merged_into IS NOT NULL
  AND ms.remote_id IS NOT NULL AND ms.remote_deleted_at IS NULL
  AND (%(t)s::timestamptz IS NULL OR md.decided_at > %(t)s OR ms.updated_at > %(t)s)
  AND NOT EXISTS (SELECT 1 FROM sync.destination_merges dm
                  WHERE dm.destination = %(d)s AND dm.entity = %(e)s
                    AND dm.merged_key = md.merged_donor_id::text
                    AND dm.status IN ('pending', 'merged'))
ORDER BY md.decided_at, md.merged_donor_id
"""


def plan_merges(
    conn: psycopg.Connection, destination: str, settings: MergeSettings
) -> tuple[list[PlannedMerge], datetime | None]:
    """Return the merges ``destination`` still has to follow (reads only), and the next watermark."""
    since = watermark_since(conn, destination, MERGES_STREAM)
    rows = conn.execute(_PLAN, {"d": destination, "e": settings.entity, "t": since}).fetchall()
    planned = [PlannedMerge(*row) for row in rows]
    cursor = max((p.seen_at for p in planned), default=None)
    return planned, cursor


def supersede_undone(conn: psycopg.Connection, destination: str, *, actor: str) -> int:
    """Mark open merges whose donor merge was undone ``superseded`` and cancel their outbox rows."""
    outbox_ids = [
        r[0]
        for r in conn.execute(
            "UPDATE sync.destination_merges dm SET status = 'superseded', resolved_at = now(),"
            " resolved_by = %(actor)s"
            " FROM core.merge_decisions md"
            " WHERE dm.destination = %(d)s AND dm.status = 'pending' AND md.decision_id = dm.decision_id"
            " AND md.undone_at IS NOT NULL RETURNING dm.outbox_id",
            {"d": destination, "actor": actor},
        ).fetchall()
    ]
    live_ids = [i for i in outbox_ids if i is not None]
    if live_ids:
        conn.execute(
            "UPDATE sync.outbox SET state = 'canceled', error_code = %s,"
            " error_message = 'the donor merge was undone before the destination merged the records'"
            " WHERE outbox_id = ANY(%s) AND state = 'pending' AND operation = 'merge'",
            (UNDONE_CODE, live_ids),
        )
    return len(outbox_ids)


def _queue_api_merge(
    conn: psycopg.Connection, destination: str, entity: str, merge: PlannedMerge, run_id: str | None
) -> int | None:
    payload = json.dumps(
        {"primary_remote_id": merge.survivor_remote_id, "merged_remote_id": merge.merged_remote_id},
        separators=(",", ":"),
    )
    row = conn.execute(
        "INSERT INTO sync.outbox AS o (destination, entity, record_key, donor_id, operation, payload,"
        " payload_sha256, depends_on, run_id)"
        " VALUES (%(d)s, %(e)s, %(m)s, %(s)s::uuid, 'merge', %(p)s::jsonb, core.jsonb_sha256(%(p)s::jsonb),"
        " %(dep)s::jsonb, %(run)s::uuid)"
        " ON CONFLICT (destination, entity, record_key) WHERE state = 'pending' DO UPDATE"
        " SET donor_id = EXCLUDED.donor_id, operation = EXCLUDED.operation, payload = EXCLUDED.payload,"
        " payload_sha256 = EXCLUDED.payload_sha256, depends_on = EXCLUDED.depends_on,"
        " set_if_empty = '{}', run_id = EXCLUDED.run_id"
        f" WHERE o.operation IN ({_REPLACEABLE_LIST})"
        " RETURNING outbox_id",
        {
            "d": destination,
            "e": entity,
            "m": merge.merged_key,
            "s": merge.survivor_key,
            "p": payload,
            "dep": json.dumps([{"entity": entity, "record_key": merge.survivor_key}]),
            "run": run_id,
        },
    ).fetchone()
    return None if row is None else int(row[0])


def queue_merges(
    conn: psycopg.Connection,
    destination: str,
    planned: Sequence[PlannedMerge],
    settings: MergeSettings,
    *,
    run_id: str | UUID | None = None,
    actor: str = "donor-sync",
) -> tuple[MergeCounts, datetime | None]:
    """Write the planned merges; return the counts and how far the watermark may move.

    A merge whose record has a pending write that must go first (an erasure) waits: the
    watermark stops short of it so the next run picks it up.
    """
    run = str(run_id) if run_id else None
    queued = listed = already = 0
    waiting: list[datetime] = []
    for merge in planned:
        status, outbox_id = "pending", None
        if merge.same_record:
            status, already = "merged", already + 1
        elif settings.method == "api":
            outbox_id = _queue_api_merge(conn, destination, settings.entity, merge, run)
            if outbox_id is None:
                waiting.append(merge.seen_at)
                continue
            queued += 1
        else:
            listed += 1
        conn.execute(
            "INSERT INTO sync.destination_merges (destination, entity, survivor_key, merged_key,"
            " survivor_remote_id, merged_remote_id, decision_id, method, status, outbox_id, resolved_by,"
            " resolved_at)"
            " VALUES (%(d)s, %(e)s, %(s)s, %(m)s, %(sr)s, %(mr)s, %(dec)s::uuid, %(method)s, %(status)s,"
            " %(o)s, %(by)s, CASE WHEN %(status)s = 'pending' THEN NULL ELSE now() END)"
            " ON CONFLICT (destination, entity, merged_key) WHERE status = 'pending' DO NOTHING",
            {
                "d": destination,
                "e": settings.entity,
                "s": merge.survivor_key,
                "m": merge.merged_key,
                "sr": merge.survivor_remote_id,
                "mr": merge.merged_remote_id,
                "dec": merge.decision_id,
                "method": settings.method,
                "status": status,
                "o": outbox_id,
                "by": None if status == "pending" else actor,
            },
        )
    cursor = max((p.seen_at for p in planned), default=None)
    if waiting:
        cursor = min(waiting) - timedelta(microseconds=1)
    return MergeCounts(queued=queued, listed=listed, already_one=already), cursor


def advance_merges_watermark(
    conn: psycopg.Connection, destination: str, cursor: datetime | None, *, run_id: str | UUID | None
) -> None:
    """Move the merges watermark of ``destination`` to ``cursor`` (never back)."""
    advance_watermark(conn, destination, MERGES_STREAM, cursor, run_id=run_id)


_COLUMNS = (
    "destination_merge_id, destination, entity, survivor_key, merged_key, survivor_remote_id,"
    " merged_remote_id, decision_id::text AS decision_id, method, status, outbox_id, resolved_by,"
    " resolved_at, created_at"
)


def list_merges(
    conn: psycopg.Connection,
    *,
    destination: str | None = None,
    statuses: Sequence[str] = ("pending",),
    method: str | None = None,
    limit: int = 100,
) -> list[DestinationMerge]:
    """Return destination merges, oldest first (ids only)."""
    with conn.cursor(row_factory=class_row(DestinationMerge)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM sync.destination_merges"
            " WHERE (%(d)s::text IS NULL OR destination = %(d)s) AND status = ANY(%(st)s)"
            " AND (%(m)s::text IS NULL OR method = %(m)s)"
            " ORDER BY created_at, destination_merge_id LIMIT %(n)s",
            {"d": destination, "st": list(statuses), "m": method, "n": limit},
        ).fetchall()


def get_merge(conn: psycopg.Connection, destination_merge_id: int, *, lock: bool = False) -> DestinationMerge:
    """Return one destination merge.

    :raises MergeError: when there is no such merge.
    """
    with conn.cursor(row_factory=class_row(DestinationMerge)) as cur:
        found = cur.execute(
            f"SELECT {_COLUMNS} FROM sync.destination_merges WHERE destination_merge_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (destination_merge_id,),
        ).fetchone()
    if found is None:
        raise MergeError(f"no destination merge {destination_merge_id}")
    return found


def mark_merge_done(conn: psycopg.Connection, destination_merge_id: int, *, actor: str) -> DestinationMerge:
    """Record that a person merged a listed pair in the CRM; audited. Not committed.

    The merged record no longer exists there: its destination state is marked removed, so mirror
    and the blast-radius guard stop counting it.

    :raises MergeError: unknown id, not pending, or an API merge (the push completes those).
    """
    current = get_merge(conn, destination_merge_id, lock=True)
    if current.status != "pending":
        raise MergeError(f"destination merge {destination_merge_id} is {current.status}, not pending")
    if current.method != "crm_task":
        raise MergeError(
            f"destination merge {destination_merge_id} goes through the {current.destination} merge API;"
            " the push marks it merged when the vendor confirms"
        )
    conn.execute(
        "UPDATE sync.destination_merges SET status = 'merged', resolved_by = %s, resolved_at = now()"
        " WHERE destination_merge_id = %s",
        (actor, destination_merge_id),
    )
    conn.execute(
        "UPDATE sync.destination_state SET remote_deleted_at = now()"
        " WHERE destination = %s AND entity = %s AND record_key = %s AND remote_deleted_at IS NULL",
        (current.destination, current.entity, current.merged_key),
    )
    details = {
        "destination": current.destination,
        "entity": current.entity,
        "survivor_key": current.survivor_key,
        "merged_key": current.merged_key,
        "decision_id": current.decision_id,
    }
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details)"
        " VALUES (%s, %s, 'destination_merge', %s, %s)",
        (actor, DONE_ACTION, str(destination_merge_id), json.dumps(details)),
    )
    return get_merge(conn, destination_merge_id)
