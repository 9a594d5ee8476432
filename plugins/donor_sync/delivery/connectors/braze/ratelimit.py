"""Braze rate limits: read ``X-RateLimit-*`` on every answer, pace before the window runs out.

Braze limits requests per API key and endpoint group in fixed windows (``/users/track`` 3,000 per
3 s; ``/users/delete`` 20,000 per minute; subscription status set 5,000 per minute; most other
endpoints share 250,000 per hour). Every answer carries ``X-RateLimit-Limit``, ``-Remaining`` and
``-Reset`` (UTC epoch seconds when the window restarts). :class:`RatePacer` keeps the last values
per group; when a group has no request left (or only the ``reserve`` kept for other clients of the
key), the next request of that group sleeps until the reset instead of drawing a 429. A reset
further away than ``max_wait_s`` stops the push with a ``rate_limited``
:class:`~donor_sync.delivery.contracts.DestinationUnavailableError` (the records wait for the next
run). A 429 that still happens (another client spent the window) is retried by the client's retry
policy, which waits for the reset too (:func:`rate_limit_wait_s`).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass

log = logging.getLogger(__name__)

#: Endpoint -> the rate-limit group Braze counts it in (v1 and v2 subscription set share one).
GROUPS: Mapping[str, str] = {
    "/users/track": "users_track",
    "/users/delete": "users_delete",
    "/users/export/ids": "users_export",
    "/subscription/status/set": "subscription_set",
    "/v2/subscription/status/set": "subscription_set",
    "/subscription/status/get": "subscription_get",
    "/canvas/trigger/send": "messaging",
    "/campaigns/trigger/send": "messaging",
}
#: Slack after a reset before the next request (Braze's reset is whole seconds).
RESET_SLACK_S = 0.05


def rate_limit_wait_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Return the wait a 429 asks for: ``Retry-After`` (seconds or date), else until ``X-RateLimit-Reset``."""
    moment = time.time() if now is None else now
    for name in ("Retry-After", "X-RateLimit-Retry-After"):
        value = (headers.get(name) or "").strip()
        if value.replace(".", "", 1).isdigit():
            return float(value)
        if value:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - moment)
            except (TypeError, ValueError):
                pass
    reset = (headers.get("X-RateLimit-Reset") or "").strip()
    if reset.isdigit():
        return max(0.0, float(reset) - moment)
    return None


def _int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


@dataclass
class Window:
    """What Braze last said about one group's window."""

    limit: int | None
    remaining: int | None
    reset_at: float | None


@dataclass
class RatePacer:
    """Pace requests by the ``X-RateLimit-*`` headers Braze last sent, per endpoint group.

    :param reserve: requests of each window left for other clients of the same key.
    :param max_wait_s: the longest wait for a reset before the push stops (``rate_limited``).
    """

    reserve: int = 0
    max_wait_s: float = 60.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    windows: dict[str, Window] = field(default_factory=dict)
    #: Seconds spent waiting for resets, and how many waits (for sync.api_usage and tests).
    waited_s: float = 0.0
    waits: int = 0

    @staticmethod
    def group(path: str) -> str:
        """Return the rate-limit group of ``path``."""
        return GROUPS.get(path, path)

    def before(self, path: str) -> None:
        """Wait for the group's reset when its window has no request left beyond the reserve."""
        window = self.windows.get(self.group(path))
        if window is None or window.remaining is None or window.remaining > self.reserve:
            return
        now = self.clock()
        if window.reset_at is None or window.reset_at <= now:
            return
        wait = window.reset_at - now + RESET_SLACK_S
        if wait > self.max_wait_s:
            raise DestinationUnavailableError(
                f"Braze {self.group(path)} rate limit spent until its reset in {wait:.0f} s "
                f"(more than the {self.max_wait_s:.0f} s a push waits); the records wait for the next run",
                error_class=FailureClass.RATE_LIMITED,
                error_code="RATE_LIMIT_WINDOW",
                retry_after_s=wait,
            )
        log.info("Braze %s: window spent, waiting %.2f s for its reset", self.group(path), wait)
        self.sleep(wait)
        self.waited_s += wait
        self.waits += 1
        window.remaining = None  # unknown until the next answer

    def after(self, path: str, headers: Mapping[str, str]) -> None:
        """Remember the window an answer reported (answers without the headers change nothing)."""
        remaining = _int(headers.get("X-RateLimit-Remaining"))
        if remaining is None:
            return
        reset = _int(headers.get("X-RateLimit-Reset"))
        self.windows[self.group(path)] = Window(
            _int(headers.get("X-RateLimit-Limit")), remaining, float(reset) if reset is not None else None
        )
