"""The quota reserve: when a destination's API allowance runs low, only urgent work goes.

Connectors report the allowance the vendor last announced (:class:`QuotaState`, e.g. HubSpot's
daily limit and what is left of it). Below ``quota_reserve_share`` of the limit, only records with
``priority <= quota_priority_cut`` are pushed; the rest stay queued, due, for the next run (after
the window resets). The reserve keeps the last part of a daily quota for what matters most
(gifts, opt-outs) and for the staff who use the same API account during the day.

Calls made and quota remaining are recorded in ``sync.api_usage`` per vendor and window.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from donor_sync.delivery.contracts import QuotaState
from donor_sync.delivery.push.settings import PushOptions

#: Windows sampled per day; any other window (per_10s, rolling_24h...) is sampled per hour.
_DAILY_WINDOWS = frozenset({"daily", "day"})


@dataclass(frozen=True)
class QuotaDecision:
    """The priority cut to apply now (None: no cut) and why."""

    priority_cut: int | None
    share_remaining: float | None
    reserve_share: float

    @property
    def reserved(self) -> bool:
        """Whether the reserve is in force (low-priority work waits)."""
        return self.priority_cut is not None


def decide(quota: QuotaState | None, options: PushOptions) -> QuotaDecision:
    """Return the priority cut the reserve calls for, given what the vendor last reported."""
    share = quota.share_remaining if quota is not None else None
    reserve = options.quota_reserve_share
    if share is None or share >= reserve:
        return QuotaDecision(None, share, reserve)
    return QuotaDecision(options.quota_priority_cut, share, reserve)


def record_api_usage(
    conn: psycopg.Connection, vendor: str, quota: QuotaState | None, calls: int, *, connection_id: str = ""
) -> None:
    """Add ``calls`` to this window's row of ``sync.api_usage`` and keep the vendor's latest figures.

    Without a quota report the calls are still counted, in a daily row with no limit.
    """
    window = _window_name(quota.window if quota is not None else "daily")
    bucket = "day" if window in _DAILY_WINDOWS else "hour"
    conn.execute(
        """
        INSERT INTO sync.api_usage AS u (vendor, connection_id, quota_window, window_start, calls,
                                         quota_limit, quota_remaining)
        VALUES (%(vendor)s, %(connection_id)s, %(window)s, date_trunc(%(bucket)s, now(), 'UTC'),
                %(calls)s, %(limit)s, %(remaining)s)
        ON CONFLICT (vendor, connection_id, quota_window, window_start) DO UPDATE
        SET calls = u.calls + EXCLUDED.calls,
            quota_limit = COALESCE(EXCLUDED.quota_limit, u.quota_limit),
            quota_remaining = COALESCE(EXCLUDED.quota_remaining, u.quota_remaining),
            observed_at = now()
        """,
        {
            "vendor": vendor,
            "connection_id": connection_id,
            "window": window,
            "bucket": bucket,
            "calls": calls,
            "limit": quota.limit if quota is not None else None,
            "remaining": quota.remaining if quota is not None else None,
        },
    )


def _window_name(window: str) -> str:
    """Return the window as sync.api_usage spells it (lower case, letters, digits, underscores)."""
    cleaned = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in window.lower()).strip("_")
    return cleaned or "unknown"
