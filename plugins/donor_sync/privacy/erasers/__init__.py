"""Erasure in every destination: one :class:`DestinationEraser` per system, each with a read-back.

Plain Python: the constructors below take explicit clients and settings, so the core pipeline
(:mod:`donor_sync.privacy.erasure`), the CLI and tests need no Airflow.
:func:`donor_sync.hooks.privacy_erasers.erasers_for` builds them from Airflow connections.

Each eraser is idempotent (a second run answers ``not_held``, done and verified; outbound
subscribers are re-sent the same event id) and turns every vendor refusal into a failed
:class:`Receipt` naming the step, HTTP status and vendor code, never an email or a name.
"""

from __future__ import annotations

from collections.abc import Sequence

from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.connectors.hubspot.client import HubSpotClient
from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient
from donor_sync.delivery.connectors.salesforce import PollPolicy, SalesforceClient
from donor_sync.privacy.erasers.braze import BrazeEraser
from donor_sync.privacy.erasers.hubspot import HubSpotEraser
from donor_sync.privacy.erasers.mailchimp import MailchimpEraser
from donor_sync.privacy.erasers.outbound import OutboundEraser, Subscriber
from donor_sync.privacy.erasers.salesforce import SalesforceEraser
from donor_sync.privacy.erasers.settings import (
    BrazeErasure,
    ErasureSettings,
    HubSpotErasure,
    MailchimpErasure,
    SalesforceErasure,
    load_erasure_settings,
)

__all__ = [
    "BrazeEraser",
    "ErasureSettings",
    "HubSpotEraser",
    "MailchimpEraser",
    "OutboundEraser",
    "SalesforceEraser",
    "Subscriber",
    "braze_eraser",
    "hubspot_eraser",
    "load_erasure_settings",
    "mailchimp_eraser",
    "outbound_eraser",
    "salesforce_eraser",
]


def salesforce_eraser(
    client: SalesforceClient, settings: SalesforceErasure | None = None, *, poll: PollPolicy | None = None
) -> SalesforceEraser:
    """Return the Salesforce eraser (settings default to erasure.yaml's ``salesforce`` section)."""
    return SalesforceEraser(client, settings or load_erasure_settings().destinations.salesforce, poll=poll)


def hubspot_eraser(
    client: HubSpotClient,
    settings: HubSpotErasure | None = None,
    *,
    contact_id_property: str = "donor_sync_id",
) -> HubSpotEraser:
    """Return the HubSpot eraser; ``contact_id_property`` is the connection's unique donor id property."""
    return HubSpotEraser(
        client,
        settings or load_erasure_settings().destinations.hubspot,
        contact_id_property=contact_id_property,
    )


def mailchimp_eraser(
    client: MailchimpClient, settings: MailchimpErasure | None = None, *, default_list_id: str | None = None
) -> MailchimpEraser:
    """Return the Mailchimp eraser; ``default_list_id`` is the connection's audience."""
    return MailchimpEraser(
        client, settings or load_erasure_settings().destinations.mailchimp, default_list_id=default_list_id
    )


def braze_eraser(client: BrazeClient, settings: BrazeErasure | None = None) -> BrazeEraser:
    """Return the Braze eraser."""
    return BrazeEraser(client, settings or load_erasure_settings().destinations.braze)


def outbound_eraser(subscribers: Sequence[Subscriber]) -> OutboundEraser:
    """Return the eraser notifying ``subscribers`` (URLs and secrets resolved by the caller)."""
    return OutboundEraser(subscribers)
