"""The ``privacy_keys`` Airflow connection as a key source (its extra holds the key rings document).

A secrets backend serves the connection in production. :func:`install` puts it first in every
:func:`~donor_sync.privacy.keys.default_key_source` chain of the process, so tasks, the API
server's plugins and the library code they call (field encryption, tombstone checks, signed links)
all use it without passing it around. Lookups are lazy and cached for ``ttl_s`` seconds, so a
rotation is seen within that time and importing this module does no I/O.
"""

from __future__ import annotations

import threading
import time

from donor_sync.privacy.keys import KeyRing, StaticKeys, install_source, key_source_from_document

KEYS_CONNECTION = "privacy_keys"
LOOKUP_TTL_S = 30.0


class AirflowConnectionKeys:
    """Key rings from the ``privacy_keys`` connection's extra; no rings when there is no such connection."""

    def __init__(self, conn_id: str = KEYS_CONNECTION, ttl_s: float = LOOKUP_TTL_S) -> None:
        self.conn_id = conn_id
        self.ttl_s = ttl_s
        self._cached: tuple[float, StaticKeys | None] | None = None
        self._lock = threading.Lock()

    def _source(self) -> StaticKeys | None:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl_s:
                return self._cached[1]
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            extra = BaseHook.get_connection(self.conn_id).extra
        except AirflowNotFoundException:
            extra = None
        found = key_source_from_document(extra, where=f"connection {self.conn_id} extra") if extra else None
        with self._lock:
            self._cached = (time.monotonic(), found)
        return found

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the connection's ring of ``purpose`` (``None`` when it has none)."""
        source = self._source()
        return None if source is None else source.ring(purpose)


_installed: AirflowConnectionKeys | None = None


def install() -> AirflowConnectionKeys:
    """Install the connection source once per process; return it."""
    global _installed  # noqa: PLW0603 - one source per process
    if _installed is None:
        _installed = AirflowConnectionKeys()
        install_source(_installed)
    return _installed
