"""Airflow plugin: donor-sync's sync-health dashboard in the API server at ``/sync-health``.

The plugin also adds a "Sync health" entry to the Airflow UI's Browse menu. The UI shows the page
in a frame of the same origin, so the login cookie goes with it. Airflow does not protect plugin
apps, so the dashboard checks every request with Airflow's own auth manager. It accepts the UI's
``_token`` cookie or a Bearer token and refuses anything else with 401 (docs/dashboard.md).
External monitors read ``/sync-health/api/health`` with the monitor token instead: the password
of the Airflow connection ``sync_health_monitor`` (one token per line while one is rotated), which
opens that endpoint only.

Importing this module is cheap and opens nothing. When a request arrives, the staging database
is looked up from the ``donor_sync_db`` connection and the monitor token from
``sync_health_monitor`` (each then kept for a short while), and the auth manager and
``[api] secret_key`` are read. ``[api] secret_key`` keys the forms' CSRF tokens, and
every API server worker must share it, as Airflow itself requires.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

from donor_sync.hooks.connection_secrets import AirflowConnectionSecrets
from donor_sync.hooks.privacy_keys import install
from donor_sync.web.dashboard.app import create_app
from donor_sync.web.dashboard.auth import AirflowAuthenticator, CsrfTokens
from donor_sync.web.staging_conninfo import CachedStagingConninfo
from donor_sync.web.webhooks.secret_sources import CachedSecrets

#: Where the dashboard is mounted in the API server, and its route in the Airflow UI.
URL_PREFIX = "/sync-health"
#: How long the staging database's address and the monitor token are reused before their
#: connections are read again (a rotated token takes effect within this).
LOOKUP_TTL_S = 30.0


def _csrf_secret() -> bytes:
    """Return ``[api] secret_key``, the secret every API server worker shares."""
    from airflow.configuration import conf

    return str(conf.get("api", "secret_key")).encode()


def _airflow_base_path() -> str:
    """Return the Airflow UI's base path (``[api] base_url``'s path; ``/`` by default)."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "/").path or "/"


install()  # dead-letter payloads are encrypted at rest: use the deployment's keys
app = create_app(
    conninfo=CachedStagingConninfo(LOOKUP_TTL_S),
    auth=AirflowAuthenticator(),
    csrf=CsrfTokens(_csrf_secret),
    airflow_base_path=_airflow_base_path(),
    monitor_tokens=CachedSecrets(AirflowConnectionSecrets(), ttl_s=LOOKUP_TTL_S),
)


class DonorSyncDashboardPlugin(AirflowPlugin):
    """Mounts the sync-health dashboard and links it from the Airflow UI (Browse, "Sync health")."""

    name = "donor_sync_dashboard"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "donor-sync sync health"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Sync health",
            "href": URL_PREFIX.lstrip("/") + "/",
            "destination": "nav",
            "category": "browse",
            "url_route": URL_PREFIX.lstrip("/"),
        }
    ]
