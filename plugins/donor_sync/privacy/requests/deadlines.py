"""The 30-day deadline of rights requests: which are due soon or overdue, and alerting on them.

Alerts are incidents (``erasure_deadline:<request id>``, :mod:`donor_sync.observability.alerting`):
one message when a request comes within the window of its deadline, one when it is overdue, one
when it is completed or rejected. Texts name request ids, kinds, states and deadlines, never a
donor. Sending is passed in (``send``; the operators give the Slack sender), so this module stays
free of Airflow.
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


def check_deadlines(
    conn: psycopg.Connection,
    send: Callable[[str], bool],
    *,
    within_days: int = 7,
    now: datetime | None = None,
) -> list[DueRequest]:
    """Alert on requests due within ``within_days`` or overdue, once when due and once when overdue.

    The ``erasure_deadline`` rule of include/mappings/alerts.yaml with ``days_before`` set to
    ``within_days``; an undelivered alert is sent by the next check. Commits.

    :return: the requests whose alert (due or overdue) was delivered by this call.
    """
    from donor_sync.observability.alerting import Links, evaluate_and_notify, load_alert_rules
    from donor_sync.observability.alerting.rules import ERASURE_DEADLINE

    rules = load_alert_rules()
    rule = rules.rules.erasure_deadline.model_copy(update={"days_before": within_days, "enabled": True})
    rules = rules.model_copy(update={"rules": rules.rules.model_copy(update={ERASURE_DEADLINE: rule})})
    report = evaluate_and_notify(
        conn,
        run_id=None,
        send=send,
        links=Links(docs_base_url=rules.slack.docs_base_url),
        rules=rules,
        kinds={ERASURE_DEADLINE},
        now=now,
    )
    delivered = {
        key.split(":", 1)[1]
        for kind, key in report.delivery.sent
        if kind in ("opened", "escalated") and key.startswith(f"{ERASURE_DEADLINE}:")
    }
    return [r for r in due_soon(conn, within_days, now=now) if str(r.request_id) in delivered]
