"""Rows of ``sync.audit_log`` (append-only): who did what to which object, with ids and counts only."""

from __future__ import annotations

import json
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
