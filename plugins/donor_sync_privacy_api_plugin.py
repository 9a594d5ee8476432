"""Airflow plugin: donor-sync's privacy-request API in the API server at ``/donor-sync-privacy``.

``POST /donor-sync-privacy/requests`` records an erasure, export or consent-change request;
``GET /donor-sync-privacy/requests/{id}`` shows its state and receipts. Airflow does not protect
plugin apps, so every request is checked with Airflow's own auth manager, as the dashboard does
(docs/erasure.md): read on the ``privacy_requests`` DAG to show, edit to create (Bearer header only).

Importing this module is cheap and opens nothing: the staging database (``donor_sync_db``) and the
key ring (``privacy_keys`` connection, then the environment) are looked up per request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from donor_sync.hooks.privacy_keys import install
from donor_sync.privacy.keys import default_key_source
from donor_sync.web.dashboard.auth import AirflowAuthenticator
from donor_sync.web.privacy_api.app import PRIVACY_DAG_ID, create_app
from donor_sync.web.staging_conninfo import CachedStagingConninfo

URL_PREFIX = "/donor-sync-privacy"
LOOKUP_TTL_S = 30.0


install()
app = create_app(
    conninfo=CachedStagingConninfo(LOOKUP_TTL_S),
    auth=AirflowAuthenticator(dag_id=PRIVACY_DAG_ID),
    keys=default_key_source(),
)


class DonorSyncPrivacyApiPlugin(AirflowPlugin):
    """Mounts the privacy-request API."""

    name = "donor_sync_privacy_api"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "donor-sync privacy requests"}]  # noqa: RUF012
