"""Rows of ``sync.audit_log`` (append-only): who did what to which object, with ids and counts only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg


def record_pii_access(
    conn: psycopg.Connection, *, actor: str, object_type: str, object_id: str, details: dict[str, Any]
) -> None:
    """Write a ``pii.accessed`` row: a person saw donor data (a review pair, sample payloads).

    ``details`` carries ids (donor ids, record keys) and the surface used, never the values seen.
    Not committed.
    """
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details)"
        " VALUES (%s, 'pii.accessed', %s, %s, %s)",
        (actor, object_type, object_id, json.dumps(details)),
    )


def record(
    conn: psycopg.Connection,
    *,
    actor: str,
    action: str,
    object_type: str | None,
    object_id: str | None,
    details: dict[str, Any] | None = None,
    run_id: Any = None,
) -> None:
    """Write one ``sync.audit_log`` row (``action`` as ``object.verb``); details hold ids and counts only.

    Not committed: the row lands with the caller's transaction.
    """
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details, run_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (actor, action, object_type, object_id, json.dumps(details or {}, default=str), run_id),
    )


def record_many(
    conn: psycopg.Connection,
    *,
    actor: str,
    action: str,
    object_type: str | None,
    rows: Sequence[tuple[str | None, dict[str, Any]]],
    run_id: Any = None,
) -> int:
    """Write one row per ``(object_id, details)`` of ``rows`` in one statement; return how many.

    For set-based stages (a consent refresh of thousands of donors). Not committed.
    """
    if not rows:
        return 0
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details, run_id)"
        " SELECT %s, %s, %s, r.object_id, r.details::jsonb, %s"
        " FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS r(object_id, details, n) ORDER BY r.n",
        (
            actor,
            action,
            object_type,
            run_id,
            [r[0] for r in rows],
            [json.dumps(r[1], default=str) for r in rows],
        ),
    )
    return len(rows)
