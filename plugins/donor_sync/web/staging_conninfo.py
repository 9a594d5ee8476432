"""The staging database's address for apps served by the Airflow API server (webhook receiver,
dashboard): read from the ``donor_sync_db`` connection when a request first needs it, then reused
for a while, so importing a plugin opens nothing and a changed connection takes effect soon."""

from __future__ import annotations

import threading
import time

#: How long a looked-up address is reused before the connection is read again.
LOOKUP_TTL_S = 30.0


class CachedStagingConninfo:
    """Callable returning the staging database's conninfo, looked up at most every ``ttl_s``."""

    def __init__(self, ttl_s: float = LOOKUP_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._cached: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl_s:
                return self._cached[1]
        from donor_sync.hooks.staging_db import StagingDbHook

        conninfo = StagingDbHook().conninfo()
        with self._lock:
            self._cached = (time.monotonic(), conninfo)
        return conninfo
