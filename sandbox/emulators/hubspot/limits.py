"""HubSpot's request limits: a rolling window per token (10 s by default) and a daily allowance."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Verdict:
    """The outcome of counting one request: the policy that refused it (if any) and the headers."""

    policy: str | None
    headers: dict[str, str]


@dataclass
class RateLimiter:
    """Count requests in a rolling window per token and per day for the whole account."""

    windows: dict[str, deque[float]] = field(default_factory=dict)
    daily_used: int = 0
    day: str = ""

    def check(self, token: str, *, max_per_interval: int, interval_ms: int, daily_limit: int) -> Verdict:
        """Count a request by ``token``; refused requests are not counted."""
        now = time.monotonic()
        today = time.strftime("%Y-%m-%d")
        if today != self.day:
            self.day, self.daily_used = today, 0
        window = self.windows.setdefault(token, deque())
        while window and now - window[0] >= interval_ms / 1000.0:
            window.popleft()
        policy: str | None = None
        if self.daily_used >= daily_limit:
            policy = "DAILY"
        elif len(window) >= max_per_interval:
            policy = "TEN_SECONDLY_ROLLING"
        else:
            window.append(now)
            self.daily_used += 1
        headers = {
            "X-HubSpot-RateLimit-Daily": str(daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, daily_limit - self.daily_used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(interval_ms),
            "X-HubSpot-RateLimit-Max": str(max_per_interval),
            "X-HubSpot-RateLimit-Remaining": str(max(0, max_per_interval - len(window))),
        }
        return Verdict(policy, headers)
