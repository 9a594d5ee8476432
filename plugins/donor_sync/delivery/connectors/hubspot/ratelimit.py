"""A client-side rolling-window limiter that uses HubSpot's request limit fully, without 429s.

HubSpot counts a private app's requests in a rolling window (100 per 10 s by default) and says
how much is left on every response (``X-HubSpot-RateLimit-Max`` / ``-Remaining`` /
``-Interval-Milliseconds``). Pacing to a fixed rate would waste the window; sending freely
would hit 429s. This limiter keeps the time of each of its requests and lets a new one go as
soon as fewer than ``max_requests`` fall inside the window, so a long push runs at the ceiling.

Each request's time is taken when its response arrives (never earlier than HubSpot counted it),
so a slot is reused only once HubSpot has forgotten it too. Requests made by other clients of
the same token show up in ``-Remaining``; they are held as "foreign" entries so this process
slows down instead of running into 429s.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

#: How long completed slots are remembered beyond the window (see :meth:`observe`).
_HISTORY_S = 5.0


@dataclass
class Slot:
    """One request's place in the window: when it completed (or started, while in flight)."""

    at: float
    started: float = 0.0
    done: bool = False


class SlidingWindowLimiter:
    """Allow at most ``max_requests`` per ``interval_s`` (thread-safe).

    :param fixed: keep ``max_requests`` and ``interval_s`` even when HubSpot reports others
        (a connection's override, e.g. to leave room for other integrations).
    :param margin_s: extra time a slot stays counted, against clock granularity.
    """

    def __init__(
        self, max_requests: int, interval_s: float, *, fixed: bool = False, margin_s: float = 0.01
    ) -> None:
        if max_requests < 1 or interval_s <= 0:
            raise ValueError("a rate limit needs at least one request per positive interval")
        self.max_requests = max_requests
        self.interval_s = interval_s
        self.server_max = max_requests
        self.fixed = fixed
        self.margin_s = margin_s
        self.waited_s = 0.0
        self._own: deque[Slot] = deque()
        self._foreign: deque[float] = deque()
        self._blocked_until = 0.0
        self._cond = threading.Condition()

    # -- internal, caller holds the lock -------------------------------------------------------
    def _purge(self, now: float) -> None:
        # Completed slots are kept a while past the window: :meth:`observe` looks back to when
        # a request was sent. Threads complete out of order, so scan rather than pop.
        horizon = now - self.interval_s - self.margin_s - _HISTORY_S
        if any(slot.done and slot.at <= horizon for slot in self._own):
            self._own = deque(slot for slot in self._own if not (slot.done and slot.at <= horizon))
        while self._foreign and self._foreign[0] <= now - self.interval_s - self.margin_s:
            self._foreign.popleft()

    def _own_in_window(self, ref: float) -> int:
        """Return this limiter's requests in flight or completed within the window ending at ``ref``."""
        start = ref - self.interval_s - self.margin_s
        return sum(1 for slot in self._own if not slot.done or slot.at > start)

    def _wait_time(self, now: float) -> float:
        """Return how long until a request may go (0 when it may go now)."""
        if self._blocked_until > now:
            return self._blocked_until - now
        own, foreign = self._own_in_window(now), len(self._foreign)
        if own < self.max_requests and own + foreign < self.server_max:
            return 0.0
        start = now - self.interval_s - self.margin_s
        expiries = [slot.at for slot in self._own if slot.done and slot.at > start] + list(self._foreign)
        if not expiries:  # every slot is in flight: wait for one to complete
            return 0.05
        return max(min(expiries) + self.interval_s + self.margin_s - now, 0.001)

    # -- public ------------------------------------------------------------------------------------
    def acquire(self) -> Slot:
        """Block until a request may be sent; return its slot (pass it to :meth:`complete`)."""
        with self._cond:
            started = time.monotonic()
            while True:
                now = time.monotonic()
                self._purge(now)
                wait = self._wait_time(now)
                if wait <= 0:
                    slot = Slot(now, now)
                    self._own.append(slot)
                    self.waited_s += now - started
                    return slot
                self._cond.wait(wait)

    def complete(self, slot: Slot) -> None:
        """Mark ``slot``'s response as received: the window counts it from now."""
        with self._cond:
            slot.at, slot.done = time.monotonic(), True
            self._cond.notify_all()

    def cancel(self, slot: Slot) -> None:
        """Forget a slot whose request never reached the vendor (connection refused)."""
        with self._cond:
            if slot in self._own:
                self._own.remove(slot)
            self._cond.notify_all()

    def observe(
        self,
        *,
        max_requests: int | None,
        interval_ms: int | None,
        remaining: int | None,
        sent_at: float | None = None,
    ) -> None:
        """Correct the limit from a response's ``X-HubSpot-RateLimit-*`` headers.

        Requests HubSpot counted beyond this limiter's own (those in flight or completed in the
        window before ``sent_at``, the request's :class:`Slot` start) are another client's: they
        are held as foreign entries for one interval.
        """
        with self._cond:
            now = time.monotonic()
            if max_requests and max_requests > 0:
                self.server_max = max_requests
                if not self.fixed:
                    self.max_requests = max_requests
            if interval_ms and interval_ms > 0 and not self.fixed:
                self.interval_s = interval_ms / 1000.0
            self._purge(now)
            if remaining is not None:
                own = self._own_in_window(now if sent_at is None else sent_at)
                used_by_others = (self.server_max - remaining) - own
                for _ in range(used_by_others - len(self._foreign)):
                    self._foreign.append(now)
            self._cond.notify_all()

    def penalize(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (after a 429 the window did not predict)."""
        with self._cond:
            self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    def in_window(self) -> int:
        """Return how many requests (own and foreign) the window holds now."""
        with self._cond:
            now = time.monotonic()
            self._purge(now)
            return self._own_in_window(now) + len(self._foreign)
