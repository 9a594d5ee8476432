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

from airflow.plugins_manager import AirflowPlugin

from donor_sync.hooks.privacy_keys import install
from donor_sync.privacy.keys import default_key_source
from donor_sync.web.preferences.app import create_app
from donor_sync.web.preferences.config import load_preference_settings
from donor_sync.web.staging_conninfo import CachedStagingConninfo

#: How long a looked-up key ring or database address is reused before it is read again.
LOOKUP_TTL_S = 30.0


install()
app = create_app(
    load_preference_settings(),
    conninfo=CachedStagingConninfo(LOOKUP_TTL_S),
    keys=default_key_source(),
)


class DonorSyncPreferencesPlugin(AirflowPlugin):
    """Mounts the preference centre in the API server (not behind Airflow auth: signed links are the auth)."""

    name = "donor_sync_preferences"
    fastapi_apps = [  # noqa: RUF012
        {"app": app, "url_prefix": "/donor-sync-preferences", "name": "donor-sync preference centre"}
    ]
