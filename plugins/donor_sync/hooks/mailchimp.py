"""Mailchimp connector and pull-back client from the ``mailchimp`` Airflow connection.

Connection (``conn_type`` http): host = API base URL (empty: the API key's data centre,
``https://<dc>.api.mailchimp.com``; the sandbox emulator otherwise), password = API key, extras
``list_id`` (required), ``ca_bundle``, ``timeout``, ``max_connections``, ``batches_threshold``,
``batch_poll_s``, ``batch_timeout_s``, ``mirror_archive``, ``marketing_permissions``
(docs/connectors/mailchimp.md). Everything else lives in
:mod:`donor_sync.delivery.connectors.mailchimp`.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from donor_sync.delivery.connectors.mailchimp.connector import MailchimpConnector, connector_from_connection
from donor_sync.delivery.contracts import DeliveryError
from donor_sync.errors import ConfigError

__all__ = ["MailchimpHook"]


class MailchimpHook(BaseHook):
    """Build a :class:`MailchimpConnector` from the ``mailchimp`` connection."""

    conn_name_attr = "mailchimp_conn_id"
    default_conn_name = "mailchimp"
    conn_type = "http"
    hook_name = "Mailchimp (donor-sync)"

    def __init__(self, mailchimp_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mailchimp_conn_id = mailchimp_conn_id

    def get_connector(self) -> MailchimpConnector:
        """Return the connector (no API call)."""
        conn = self.get_connection(self.mailchimp_conn_id)
        try:
            return connector_from_connection(conn.host, conn.password, dict(conn.extra_dejson))
        except ConfigError as exc:
            raise ConfigError(f"Airflow connection {self.mailchimp_conn_id!r}: {exc}") from None

    def get_conn(self) -> MailchimpConnector:
        """Return the connector (Airflow's conventional name)."""
        return self.get_connector()

    def test_connection(self) -> tuple[bool, str]:
        """Ping the API and read the audience (never shows the key)."""
        try:
            connector = self.get_connector()
            connector.client.get("/ping")
            audience = connector.client.get(f"/lists/{connector.settings.list_id}") or {}
        except (ConfigError, DeliveryError) as exc:
            return False, str(exc)
        count = (audience.get("stats") or {}).get("member_count")
        return True, f"Mailchimp audience {connector.settings.list_id} reachable ({count} subscribed members)"
