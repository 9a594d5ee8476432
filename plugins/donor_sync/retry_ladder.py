"""The retry ladder every task and every outbox record climbs: 1m, 5m, 15m, 1h, 4h, 24h.

Plain data, so the delivery engine (which schedules ``next_attempt_at`` per record) and the
Airflow retry policy (which schedules task retries) share one definition.
"""

from __future__ import annotations

from datetime import timedelta

#: Set to 1 by the demo and the tests: a failed task fails its run at once instead of waiting on
#: the ladder (whose first rung is a minute and last a day). Never set in production.
FAIL_FAST_ENV = "DONOR_SYNC_FAIL_FAST"

RETRY_LADDER: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=4),
    timedelta(hours=24),
)


def delay_for_attempt(attempt: int, ladder: tuple[timedelta, ...] = RETRY_LADDER) -> timedelta | None:
    """Return the wait before retry number ``attempt`` (1-based), or None once the ladder is spent.

    :param attempt: 1 for the first retry after the first failure.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt}")
    if attempt > len(ladder):
        return None
    return ladder[attempt - 1]
