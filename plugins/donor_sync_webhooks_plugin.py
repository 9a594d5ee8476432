"""Airflow plugin: donor-sync's webhook receiver in the Airflow API server, at ``/donor-sync-webhooks``.

``POST /donor-sync-webhooks/stripe`` (``/donorbox``, ``/classy``, ``/<source>``) verifies each
delivery and stores it in ``raw.webhook_inbox``; ``donations_hourly`` drains the inbox. Airflow does
not put plugin apps behind its login, which is what webhooks need: the platforms cannot log in,
and each request is authenticated by its signature instead (docs/webhooks.md).

Importing this module is cheap and opens no connection: the settings file is read, and the
signing secrets (Airflow connections ``<source>_webhook``, password = one or more secrets
separated by newlines or commas) and the staging database (connection ``donor_sync_db``) are
looked up when a request arrives, then kept for a short while.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from donor_sync.hooks.connection_secrets import AirflowConnectionSecrets
from donor_sync.web.staging_conninfo import CachedStagingConninfo
from donor_sync.web.webhooks.app import create_app
from donor_sync.web.webhooks.config import load_settings
from donor_sync.web.webhooks.secret_sources import CachedSecrets

#: How long a looked-up secret or database address is reused before it is read again (a rotated
#: secret or a changed connection takes effect within this).
LOOKUP_TTL_S = 30.0


app = create_app(
    load_settings(),
    CachedSecrets(AirflowConnectionSecrets(), ttl_s=LOOKUP_TTL_S),
    conninfo=CachedStagingConninfo(LOOKUP_TTL_S),
)


class DonorSyncWebhooksPlugin(AirflowPlugin):
    """Mounts the webhook receiver in the API server (not behind Airflow auth: signatures are the auth)."""

    name = "donor_sync_webhooks"
    fastapi_apps = [{"app": app, "url_prefix": "/donor-sync-webhooks", "name": "donor-sync webhooks"}]  # noqa: RUF012
