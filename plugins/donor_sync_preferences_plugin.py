"""Airflow plugin: donor-sync's preference centre in the Airflow API server, at ``/donor-sync-preferences``.

``GET`` / ``POST /donor-sync-preferences/preferences/<token>`` read and change a donor's consent
choices through a signed link (docs/consent.md). Airflow does not put plugin apps behind its
login, which is what a donor's link needs: the link's signature is the authentication.

Importing this module is cheap and opens no connection: the settings file is read; the ``links``
key ring (the ``privacy_keys`` connection's extra, then ``$DONOR_SYNC_PRIVACY_KEYS``, then the local
development file) and the staging database (connection ``donor_sync_db``) are looked up when a
request arrives, then kept for a short while.
"""

from __future__ import annotations

import threading
import time

from airflow.plugins_manager import AirflowPlugin

from donor_sync.privacy.keys import KeyRing, StaticKeys, default_key_source, key_source_from_document
from donor_sync.web.preferences.app import create_app
from donor_sync.web.preferences.config import load_preference_settings
from donor_sync.web.staging_conninfo import CachedStagingConninfo

#: How long a looked-up key ring or database address is reused before it is read again.
LOOKUP_TTL_S = 30.0
KEYS_CONNECTION = "privacy_keys"


class AirflowConnectionKeys:
    """Key rings from the ``privacy_keys`` Airflow connection's extra (a secrets backend serves it)."""

    def __init__(self, ttl_s: float = LOOKUP_TTL_S) -> None:
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
            extra = BaseHook.get_connection(KEYS_CONNECTION).extra
            found = key_source_from_document(extra, where=f"connection {KEYS_CONNECTION}") if extra else None
        except AirflowNotFoundException:
            found = None
        with self._lock:
            self._cached = (time.monotonic(), found)
        return found

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the connection's ring of ``purpose`` (``None`` when it has none)."""
        source = self._source()
        return None if source is None else source.ring(purpose)


app = create_app(
    load_preference_settings(),
    conninfo=CachedStagingConninfo(LOOKUP_TTL_S),
    keys=default_key_source(AirflowConnectionKeys()),
)


class DonorSyncPreferencesPlugin(AirflowPlugin):
    """Mounts the preference centre in the API server (not behind Airflow auth: signed links are the auth)."""

    name = "donor_sync_preferences"
    fastapi_apps = [  # noqa: RUF012
        {"app": app, "url_prefix": "/donor-sync-preferences", "name": "donor-sync preference centre"}
    ]
