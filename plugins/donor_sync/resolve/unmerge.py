"""Undo one merge decision exactly: close its mappings, reopen what it closed, revive the merged donor.

A decision (``core.merge_decisions``) is a review approval, a manual merge, or resolve attaching
new records to an existing donor (auto_merge, deterministic). :func:`unmerge`:

1. closes the decision's current ``core.cluster_map`` rows (``closed_by_decision`` = the unmerge);
2. reopens the rows the decision closed (the very same rows, so mappings are restored exactly)
   and points their ``core.donor_sources`` back at their donor; records that had no earlier
   mapping (new records attached by resolve) go to a new donor, with an ``unmerge`` mapping;
3. revives the merged-away donor (``merged_into`` cleared) and re-points the donors that had been
   merged into it;
4. recomputes both golden records from their records and refreshes their match keys; so a merge
   followed by its unmerge gives back the same golden records and mappings;
5. writes ``donor.unmerged`` to the audit log.

A decision whose records a later decision moved again must be undone after that one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from donor_sync.errors import DonorSyncError
from donor_sync.privacy.consent.state import refresh_consent_state
from donor_sync.resolve import match_store
from donor_sync.resolve.donors import ResolveRules
from donor_sync.resolve.survivorship import recompute_golden


class UnmergeError(DonorSyncError):
    """The decision cannot be undone (unknown, already undone, or superseded by a later one)."""


@dataclass(frozen=True)
class UnmergeResult:
    """What :func:`unmerge` did (ids and counts)."""

    decision_id: str
    unmerge_decision_id: str
    survivor_id: str
    revived_donor_id: str | None
    new_donor_id: str | None
    records_restored: int


def _find_decision(conn: psycopg.Connection, target: str) -> tuple[str, str, str | None, list[str]]:
    """Return ``(decision_id, survivor, merged donor, repointed)`` of the decision to undo."""
    row = conn.execute(
        "SELECT decision_id::text, survivor_id::text, merged_donor_id::text, repointed::text[], undone_at"
        " FROM core.merge_decisions WHERE decision_id = %s::uuid FOR UPDATE",
        (target,),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT decision_id::text, survivor_id::text, merged_donor_id::text, repointed::text[], undone_at"
            " FROM core.merge_decisions WHERE undone_at IS NULL AND (merged_donor_id = %(d)s OR"
            " (merged_donor_id IS NULL AND survivor_id = %(d)s) OR survivor_id = %(d)s)"
            " ORDER BY merged_donor_id = %(d)s DESC NULLS LAST, decided_at DESC LIMIT 1 FOR UPDATE",
            {"d": target},
        ).fetchone()
    if row is None:
        raise UnmergeError(f"no merge decision {target} (nor one involving a donor of that id)")
    if row[4] is not None:
        raise UnmergeError(f"decision {row[0]} was already undone")
    return str(row[0]), str(row[1]), None if row[2] is None else str(row[2]), list(row[3] or [])


def unmerge(
    conn: psycopg.Connection,
    target: str | uuid.UUID,
    *,
    actor: str,
    rules: ResolveRules,
    now: datetime | None = None,
) -> UnmergeResult:
    """Undo a merge decision (by its decision id, or the latest one that merged away a donor id).

    Not committed.

    :raises UnmergeError: nothing to undo, or a later decision moved its records again.
    """
    now = now or datetime.now(UTC)
    decision_id, survivor, merged, repointed = _find_decision(conn, str(target))
    moved_on = conn.execute(
        "SELECT count(*) FROM core.cluster_map WHERE decision_id = %s AND valid_to IS NOT NULL",
        (decision_id,),
    ).fetchone()
    if moved_on is not None and moved_on[0]:
        raise UnmergeError(
            f"records of decision {decision_id} were moved by a later decision: undo that one first"
        )
    survivor_row = conn.execute(
        "SELECT merged_into FROM core.donors WHERE donor_id = %s", (survivor,)
    ).fetchone()
    if survivor_row is not None and survivor_row[0] is not None:
        raise UnmergeError(f"donor {survivor} was merged into another since: undo that merge first")
    undo_id = str(uuid.uuid4())
    params = {"d": decision_id, "u": undo_id, "now": now, "by": actor}
    closed = conn.execute(
        "UPDATE core.cluster_map SET valid_to = greatest(%(now)s, valid_from), closed_by_decision = %(u)s"
        " WHERE decision_id = %(d)s AND valid_to IS NULL RETURNING donor_source_id",
        params,
    ).fetchall()
    reopened = conn.execute(
        "UPDATE core.cluster_map SET valid_to = NULL, closed_by_decision = NULL WHERE closed_by_decision ="
        " %(d)s"
        " RETURNING donor_source_id, donor_id::text",
        params,
    ).fetchall()
    if reopened:
        conn.execute(
            "UPDATE core.donor_sources ds SET donor_id = r.donor_id FROM unnest(%s::bigint[], %s::uuid[])"
            " AS r(id, donor_id) WHERE ds.donor_source_id = r.id",
            ([r[0] for r in reopened], [r[1] for r in reopened]),
        )
    back = {r[0] for r in reopened}
    orphans = [r[0] for r in closed if r[0] not in back]
    new_donor = None
    if orphans:
        new_donor = str(uuid.uuid4())
        conn.execute("INSERT INTO core.donors (donor_id, created_at) VALUES (%s, %s)", (new_donor, now))
        conn.execute(
            "INSERT INTO core.cluster_map (donor_source_id, donor_id, decision, decision_id,"
            " match_explanation,"
            " decided_by, valid_from) SELECT id, %(n)s, 'unmerge', %(u)s, %(e)s::jsonb, %(by)s, %(now)s"
            " FROM unnest(%(ids)s::bigint[]) AS id",
            {**params, "n": new_donor, "ids": orphans, "e": json.dumps({"undone_decision_id": decision_id})},
        )
        conn.execute(
            "UPDATE core.donor_sources SET donor_id = %s WHERE donor_source_id = ANY(%s::bigint[])",
            (new_donor, orphans),
        )
    if merged is not None:
        conn.execute(
            "UPDATE core.donors SET merged_into = NULL, merged_at = NULL WHERE donor_id = %s", (merged,)
        )
        if repointed:
            conn.execute(
                "UPDATE core.donors SET merged_into = %s WHERE donor_id = ANY(%s::uuid[])",
                (merged, repointed),
            )
    conn.execute(
        "UPDATE core.merge_decisions SET undone_at = %(now)s, undone_by = %(by)s, undo_decision_id = %(u)s"
        " WHERE decision_id = %(d)s",
        params,
    )
    touched = [d for d in (survivor, merged, new_donor) if d is not None]
    recompute_golden(conn, touched, rules.survivorship)
    match_store.refresh_match_keys(conn, touched, rules.dedup, nicknames=rules.nicknames)
    conn.execute(
        "INSERT INTO sync.audit_log (at, actor, action, object_type, object_id, details)"
        " VALUES (%s, %s, 'donor.unmerged', 'donor', %s, %s)",
        (
            now,
            actor,
            survivor,
            json.dumps(
                {
                    "decision_id": decision_id,
                    "unmerge_decision_id": undo_id,
                    "survivor_id": survivor,
                    "revived_donor_id": merged,
                    "new_donor_id": new_donor,
                    "records_restored": len(closed),
                }
            ),
        ),
    )
    # Each donor's consent derives from its own events again.
    revived = [d for d in (survivor, merged, new_donor) if d]
    refresh_consent_state(conn, [str(d) for d in revived], actor=actor, now=now)
    return UnmergeResult(decision_id, undo_id, survivor, merged, new_donor, len(closed))
