"""Circuit breaker per destination, kept in ``sync.circuit_breakers`` so every worker shares it.

* **closed**: pushes go. A failed call counts; the breaker opens after ``consecutive_failures``
  failed calls in a row, or when failed calls reach ``failure_rate`` of at least ``min_calls``
  calls within the rate window.
* **open**: no pushes until ``next_probe_at``. While open, the window counters count the failed
  probes of this outage, and each failed probe multiplies the wait by ``backoff_factor`` (up to
  ``max_open_seconds``).
* **half_open**: one worker is let through with one small probe batch; success closes the
  breaker, failure opens it again for longer. A probe whose worker died is given up after
  ``probe_timeout_seconds`` and another worker may probe.

Every change of state is returned as a :class:`BreakerTransition` so the caller can alert on it.
Times are the database's clock (``now()``), the same clock the outbox schedules with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import psycopg

from donor_sync.delivery.contracts import FailureClass
from donor_sync.delivery.push.settings import CircuitBreakerSettings

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """State of a destination's circuit breaker (``sync.circuit_breakers.state``)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerTransition:
    """A change of a breaker's state, to alert on.

    :param reason: ``consecutive_failures``, ``failure_rate``, ``probe`` (open -> half_open),
        ``probe_succeeded`` or ``probe_failed``.
    """

    destination: str
    from_state: BreakerState
    to_state: BreakerState
    reason: str
    at: datetime
    next_probe_at: datetime | None = None
    error_class: FailureClass | None = None

    def describe(self) -> str:
        """Return a one-line account for an alert (no PII: names, states and times only)."""
        text = f"circuit breaker of {self.destination}: {self.from_state} -> {self.to_state} ({self.reason})"
        if self.to_state is BreakerState.OPEN and self.next_probe_at:
            text += f"; pushes stopped, next probe at {self.next_probe_at:%Y-%m-%d %H:%M:%S %Z}"
        if self.error_class:
            text += f"; last error class {self.error_class}"
        return text


@dataclass(frozen=True)
class Admission:
    """Whether a push may go now, and whether it is the half-open probe."""

    allowed: bool
    probe: bool
    state: BreakerState
    next_probe_at: datetime | None
    transition: BreakerTransition | None = None


@dataclass(frozen=True)
class _Row:
    state: BreakerState
    consecutive_failures: int
    window_started_at: datetime
    window_calls: int
    window_failures: int
    opened_at: datetime | None
    next_probe_at: datetime | None
    now: datetime


class CircuitBreaker:
    """The breaker of one destination; each method works in the caller's transaction.

    :param conn: the caller commits (the engine commits with the batch's results).
    """

    def __init__(self, conn: psycopg.Connection, destination: str, settings: CircuitBreakerSettings) -> None:
        self.conn = conn
        self.destination = destination
        self.settings = settings

    def _lock(self) -> _Row:
        self.conn.execute(
            "INSERT INTO sync.circuit_breakers (destination) VALUES (%s) ON CONFLICT DO NOTHING",
            (self.destination,),
        )
        row = self.conn.execute(
            "SELECT state, consecutive_failures, window_started_at, window_calls, window_failures,"
            " opened_at, next_probe_at, now() FROM sync.circuit_breakers WHERE destination = %s FOR UPDATE",
            (self.destination,),
        ).fetchone()
        assert row is not None
        return _Row(BreakerState(row[0]), *row[1:])

    @staticmethod
    def read_state(conn: psycopg.Connection, destination: str) -> BreakerState:
        """Return a destination's breaker state as stored (closed when it has none yet)."""
        row = conn.execute(
            "SELECT state FROM sync.circuit_breakers WHERE destination = %s", (destination,)
        ).fetchone()
        return BreakerState(row[0]) if row else BreakerState.CLOSED

    def release_probe(self) -> None:
        """Give back a probe that found nothing to push: the next push may probe at once."""
        self.conn.execute(
            "UPDATE sync.circuit_breakers SET state = 'open', next_probe_at = now()"
            " WHERE destination = %s AND state = 'half_open'",
            (self.destination,),
        )

    def admit(self) -> Admission:
        """Decide whether to push now; an open breaker past its wait turns half-open for one probe."""
        row = self._lock()
        if row.state is BreakerState.CLOSED:
            return Admission(True, False, row.state, None)
        if row.next_probe_at is not None and row.next_probe_at > row.now:
            return Admission(False, False, row.state, row.next_probe_at)
        probe_until = row.now + timedelta(seconds=self.settings.probe_timeout_seconds)
        self.conn.execute(
            "UPDATE sync.circuit_breakers SET state = 'half_open', next_probe_at = %s WHERE destination = %s",
            (probe_until, self.destination),
        )
        transition = None
        if row.state is BreakerState.OPEN:
            transition = BreakerTransition(
                self.destination, BreakerState.OPEN, BreakerState.HALF_OPEN, "probe", row.now, probe_until
            )
            log.warning("%s", transition.describe())
        return Admission(True, True, BreakerState.HALF_OPEN, probe_until, transition)

    def record(self, *, ok: bool, error_class: FailureClass | None = None) -> BreakerTransition | None:
        """Count one call's outcome; return the transition it caused, if any."""
        row = self._lock()
        if row.state is BreakerState.HALF_OPEN:
            return self._close(row) if ok else self._open(row, "probe_failed", error_class, reopen=True)
        if row.state is BreakerState.OPEN:
            # A call that started before another worker opened the breaker: note it, nothing more.
            column = "last_success_at" if ok else "last_failure_at"
            self.conn.execute(
                f"UPDATE sync.circuit_breakers SET {column} = now(),"
                " last_error_class = COALESCE(%s, last_error_class) WHERE destination = %s",
                (error_class, self.destination),
            )
            return None
        started, calls, failures = self._window(row)
        calls += 1
        failures += 0 if ok else 1
        consecutive = 0 if ok else row.consecutive_failures + 1
        self.conn.execute(
            "UPDATE sync.circuit_breakers SET consecutive_failures = %s, window_started_at = %s,"
            " window_calls = %s, window_failures = %s,"
            " last_success_at = CASE WHEN %s THEN now() ELSE last_success_at END,"
            " last_failure_at = CASE WHEN %s THEN last_failure_at ELSE now() END,"
            " last_error_class = COALESCE(%s, last_error_class) WHERE destination = %s",
            (consecutive, started, calls, failures, ok, ok, error_class, self.destination),
        )
        if ok:
            return None
        s = self.settings
        if consecutive >= s.consecutive_failures:
            return self._open(row, "consecutive_failures", error_class)
        if calls >= s.min_calls and failures / calls >= s.failure_rate:
            return self._open(row, "failure_rate", error_class)
        return None

    def _window(self, row: _Row) -> tuple[datetime, int, int]:
        """Return the rate window's start and counts, restarted when it has run out."""
        if row.now - row.window_started_at > timedelta(seconds=self.settings.window_seconds):
            return row.now, 0, 0
        return row.window_started_at, row.window_calls, row.window_failures

    def _open(
        self, row: _Row, reason: str, error_class: FailureClass | None, *, reopen: bool = False
    ) -> BreakerTransition:
        s = self.settings
        failed_probes = row.window_failures + 1 if reopen else 0
        wait = min(s.max_open_seconds, s.open_seconds * s.backoff_factor**failed_probes)
        next_probe_at = row.now + timedelta(seconds=wait)
        self.conn.execute(
            "UPDATE sync.circuit_breakers SET state = 'open', opened_at = now(), next_probe_at = %s,"
            " window_started_at = now(), window_calls = %s, window_failures = %s,"
            " consecutive_failures = consecutive_failures + %s,"
            " last_failure_at = now(), last_error_class = COALESCE(%s, last_error_class)"
            " WHERE destination = %s",
            (next_probe_at, failed_probes, failed_probes, 1 if reopen else 0, error_class, self.destination),
        )
        transition = BreakerTransition(
            self.destination, row.state, BreakerState.OPEN, reason, row.now, next_probe_at, error_class
        )
        log.warning("%s", transition.describe())
        return transition

    def _close(self, row: _Row) -> BreakerTransition:
        self.conn.execute(
            "UPDATE sync.circuit_breakers SET state = 'closed', consecutive_failures = 0, opened_at = NULL,"
            " next_probe_at = NULL, window_started_at = now(), window_calls = 1, window_failures = 0,"
            " last_success_at = now() WHERE destination = %s",
            (self.destination,),
        )
        transition = BreakerTransition(
            self.destination, BreakerState.HALF_OPEN, BreakerState.CLOSED, "probe_succeeded", row.now
        )
        log.warning("%s", transition.describe())
        return transition
