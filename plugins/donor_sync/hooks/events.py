"""Event subscribers' connectors, built from the Airflow connections events.yaml names.

Per subscriber of ``include/mappings/events.yaml``: the connection named by ``secret`` holds the
signing secret(s) in its password (comma- or newline-separated, so a secret can be rolled), the
base URL in its host when the subscriber gives a ``path``, and may carry a ``ca_bundle`` extra.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from donor_sync.delivery.connectors.webhooks import WebhookConnector, endpoint_from_connection
from donor_sync.events.settings import DESTINATION_PREFIX, EventSettings, load_event_settings

__all__ = ["is_event_destination", "subscriber_connector", "subscriber_destinations"]


def is_event_destination(destination: str) -> bool:
    """Whether ``destination`` is an event subscriber's (``webhook_<name>``)."""
    return destination.startswith(DESTINATION_PREFIX)


def subscriber_destinations(settings: EventSettings | None = None) -> list[str]:
    """Return the destination of every enabled subscriber, in file order."""
    return [s.destination for s in (settings or load_event_settings()).enabled()]


def subscriber_connector(destination: str, settings: EventSettings | None = None) -> WebhookConnector:
    """Return the connector of the subscriber whose destination (or name) is ``destination``.

    :raises KeyError: no such subscriber. :raises ConfigError: its connection lacks a secret or host.
    """
    spec = (settings or load_event_settings()).subscriber(destination)
    conn = BaseHook.get_connection(spec.secret)
    endpoint = endpoint_from_connection(
        spec, host=conn.host, password=conn.password, extra=dict(conn.extra_dejson or {})
    )
    return WebhookConnector(endpoint)
