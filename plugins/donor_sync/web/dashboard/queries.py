"""What the dashboard reads and records that no other module offers.

These are open circuit breakers, the counts behind ``/api/summary``, and the audit row for a view
of donor PII. Reviews and dead letters are read through :mod:`donor_sync.resolve.review` and
:mod:`donor_sync.delivery.dlq`, the same functions the CLI uses. Those modules are imported where
they are used, because the review module loads pandas.

Functions work in the caller's transaction; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from donor_sync.delivery.contracts import FailureClass
from donor_sync.observability.audit import record_pii_access

__all__ = ["Circuit", "open_circuits", "record_pii_access", "review_exists", "summary"]


@dataclass(frozen=True)
class Circuit:
    """A destination whose circuit breaker is not closed (``sync.circuit_breakers``)."""

    destination: str
    state: str
    consecutive_failures: int
    window_calls: int
    window_failures: int
    opened_at: datetime | None
    next_probe_at: datetime | None
    last_failure_at: datetime | None
    last_error_class: str | None
    last_success_at: datetime | None

    @property
    def remediation(self) -> str | None:
        """What to do about the last failure's class (None when it is not known)."""
        try:
            return FailureClass(self.last_error_class).remediation if self.last_error_class else None
        except ValueError:
            return None

    def as_dict(self) -> dict[str, Any]:
        """Return the circuit as JSON-ready values (timestamps in ISO 8601)."""
        return {
            "destination": self.destination,
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "opened_at": _iso(self.opened_at),
            "next_probe_at": _iso(self.next_probe_at),
            "last_failure_at": _iso(self.last_failure_at),
            "last_error_class": self.last_error_class,
            "last_success_at": _iso(self.last_success_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def open_circuits(conn: psycopg.Connection) -> list[Circuit]:
    """Return the breakers that stop or limit pushes (open or half-open), longest open first."""
    rows = conn.execute(
        "SELECT destination::text, state, consecutive_failures, window_calls, window_failures, opened_at,"
        " next_probe_at, last_failure_at, last_error_class::text, last_success_at"
        " FROM sync.circuit_breakers WHERE state <> 'closed' ORDER BY opened_at, destination"
    ).fetchall()
    return [Circuit(*row) for row in rows]


def summary(conn: psycopg.Connection) -> dict[str, Any]:
    """Return the health summary: review queue, open dead letters and open circuits (ids and counts)."""
    reviews: dict[str, int] = dict(
        conn.execute(
            "SELECT status, count(*) FROM sync.review_queue"
            " WHERE status IN ('pending', 'deferred') GROUP BY status"
        ).fetchall()
    )
    letters = conn.execute(
        "SELECT destination::text, error_class::text, count(*) FROM sync.dead_letters"
        " WHERE status = 'open' GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    by_destination: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for destination, error_class, count in letters:
        by_destination[destination] = by_destination.get(destination, 0) + count
        by_class[error_class] = by_class.get(error_class, 0) + count
    circuits = open_circuits(conn)
    return {
        "reviews": {"pending": reviews.get("pending", 0), "deferred": reviews.get("deferred", 0)},
        "dead_letters": {
            "open": sum(by_destination.values()),
            "by_destination": by_destination,
            "by_error_class": by_class,
        },
        "circuits": {"open": len(circuits), "destinations": [c.as_dict() for c in circuits]},
    }


def review_exists(conn: psycopg.Connection, review_id: int) -> bool:
    """Return whether the review queue has a review with this id (of any status)."""
    return (
        conn.execute("SELECT 1 FROM sync.review_queue WHERE review_id = %s", (review_id,)).fetchone()
        is not None
    )
