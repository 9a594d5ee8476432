"""Braze credentials and settings from the ``braze`` Airflow connection.

Host = the workspace's REST endpoint (``https://rest.iad-01.braze.com``...), password = a REST
API key with ``users.track``, ``users.delete``, ``users.export.ids``, ``subscription.status.set``,
``subscription.status.get`` and ``canvas.trigger.send``; extras ``ca_bundle``, ``timeout``,
``max_objects``, ``rate_limit_reserve``, ``max_rate_limit_wait_s``. A plain ``http`` connection
(as ``airflow_settings.yaml`` ships) is enough. Everything else lives in
``donor_sync.delivery.connectors.braze``.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.connectors.braze.connector import BrazeConnector, connector_from_connection
from donor_sync.delivery.contracts import DeliveryError
from donor_sync.errors import ConfigError

__all__ = ["BrazeHook"]


class BrazeHook(BaseHook):
    """Build a :class:`BrazeConnector` (or its client) from the ``braze`` connection."""

    conn_name_attr = "braze_conn_id"
    default_conn_name = "braze"
    conn_type = "http"
    hook_name = "Braze (donor-sync)"

    def __init__(self, braze_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.braze_conn_id = braze_conn_id

    def get_connector(self) -> BrazeConnector:
        """Return a connector for the connection (key, endpoint, limits); the key is never logged."""
        conn = self.get_connection(self.braze_conn_id)
        return connector_from_connection(conn.host, conn.password, conn.extra_dejson)

    def get_client(self) -> BrazeClient:
        """Return the connector's client (rate-limit paced), for the pull-back of unsubscribes."""
        return self.get_connector().client

    def get_conn(self) -> BrazeConnector:
        """Return :meth:`get_connector` (Airflow's generic accessor)."""
        return self.get_connector()

    def test_connection(self) -> tuple[bool, str]:
        """Make one authenticated call (an export of no one) and report; never shows the key."""
        try:
            self.get_client().export_users(external_ids=["donor-sync-connection-test"])
        except (DeliveryError, ConfigError) as exc:
            return False, str(exc)
        return True, "Connected to Braze."
