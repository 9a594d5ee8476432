"""Push every subscriber's queued events: one delivery-engine push per subscriber, in turn.

Each subscriber is its own destination (``webhook_<name>``), so its breaker, ladder and dead
letters are its own: a subscriber that fails (or whose connector cannot even be built) is
reported and the others are still pushed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import psycopg

from donor_sync.delivery.contracts import Connector
from donor_sync.delivery.push import PushReport, push_destination
from donor_sync.delivery.push.settings import PushSettings

__all__ = ["EventPushReport", "push_subscribers"]

log = logging.getLogger(__name__)


@dataclass
class EventPushReport:
    """Per subscriber destination: its push report, or the name of the error that stopped it."""

    reports: dict[str, PushReport] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    idle: list[str] = field(default_factory=list)


def _has_due(conn: psycopg.Connection, destination: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM sync.outbox WHERE destination = %s"
        " AND state IN ('pending', 'in_flight') AND next_attempt_at <= now())",
        (destination,),
    ).fetchone()
    conn.commit()
    return bool(row and row[0])


def push_subscribers(
    conn: psycopg.Connection,
    destinations: Sequence[str],
    connector_for: Callable[[str], Connector],
    *,
    run_id: UUID | None,
    worker_id: str,
    deadline: datetime | None = None,
    settings: PushSettings | None = None,
) -> EventPushReport:
    """Push the due events of each destination; commit as it goes.

    :param destinations: ``webhook_<name>`` of each enabled subscriber.
    :param connector_for: builds a destination's connector (only called when it has due events).
    """
    report = EventPushReport()
    for destination in destinations:
        if not _has_due(conn, destination):
            report.idle.append(destination)
            continue
        try:
            connector = connector_for(destination)
            report.reports[destination] = push_destination(
                conn, connector, run_id=run_id, worker_id=worker_id, deadline=deadline, settings=settings
            )
        except Exception as exc:  # one subscriber's failure must not hold back the others
            conn.rollback()
            report.errors[destination] = type(exc).__name__
            log.warning("events push to %s failed: %s", destination, type(exc).__name__)
    return report
