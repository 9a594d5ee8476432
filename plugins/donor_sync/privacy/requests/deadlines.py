"""The 30-day deadline of rights requests: which are due soon or overdue, and alerting once a day.

The alert text names request ids, kinds, states and deadlines, never a donor. Sending is passed in
(``send``: the operator gives :func:`donor_sync.observability.alerts.send_alert`), so this module
stays free of Airflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg


@dataclass(frozen=True)
class DueRequest:
    """An open request close to or past its deadline."""

    request_id: UUID
    kind: str
    status: str
    due_at: datetime
    alerted_at: datetime | None

    def overdue(self, now: datetime) -> bool:
        """Return whether the deadline has passed."""
        return self.due_at <= now


def due_soon(
    conn: psycopg.Connection, within_days: int = 7, *, now: datetime | None = None
) -> list[DueRequest]:
    """Return open requests due within ``within_days`` (overdue ones included), soonest first."""
    now = now or datetime.now(UTC)
    rows = conn.execute(
        "SELECT request_id, kind, status, due_at, alerted_at FROM sync.privacy_requests"
        " WHERE status NOT IN ('completed', 'rejected') AND due_at <= %s ORDER BY due_at",
        (now + timedelta(days=within_days),),
    ).fetchall()
    return [DueRequest(*r) for r in rows]


def alert_text(requests: list[DueRequest], now: datetime) -> str:
    """Return the Slack text for these requests (ids, kinds, states, deadlines)."""
    overdue = [r for r in requests if r.overdue(now)]
    lines = [
        f":rotating_light: {len(requests)} privacy request(s) near or past their 30-day deadline"
        f" ({len(overdue)} overdue). Runbook: docs/erasure.md#deadlines"
    ]
    for r in requests:
        state = "OVERDUE" if r.overdue(now) else "due"
        lines.append(f"• {r.request_id} {r.kind} ({r.status}): {state} {r.due_at:%Y-%m-%d %H:%M} UTC")
    return "\n".join(lines)


def check_deadlines(
    conn: psycopg.Connection,
    send: Callable[[str], bool],
    *,
    within_days: int = 7,
    now: datetime | None = None,
) -> list[DueRequest]:
    """Alert on requests due within ``within_days`` or overdue, each at most once a day; commit.

    :return: the requests alerted on (``alerted_at`` is set only when the alert was delivered).
    """
    now = now or datetime.now(UTC)
    due = [
        r
        for r in due_soon(conn, within_days, now=now)
        if r.alerted_at is None or r.alerted_at <= now - timedelta(days=1)
    ]
    if not due:
        return []
    if send(alert_text(due, now)):
        conn.execute(
            "UPDATE sync.privacy_requests SET alerted_at = %s WHERE request_id = ANY(%s::uuid[])",
            (now, [r.request_id for r in due]),
        )
        conn.commit()
        return due
    return []
