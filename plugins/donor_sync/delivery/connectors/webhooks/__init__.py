"""Outbound event webhooks: one connector per subscriber (docs/events.md)."""

from donor_sync.delivery.connectors.webhooks.connector import (
    EVENT_ID_HEADER,
    SubscriberEndpoint,
    WebhookConnector,
    classify_status,
    endpoint_from_connection,
    signed_request,
)

__all__ = [
    "EVENT_ID_HEADER",
    "SubscriberEndpoint",
    "WebhookConnector",
    "classify_status",
    "endpoint_from_connection",
    "signed_request",
]
