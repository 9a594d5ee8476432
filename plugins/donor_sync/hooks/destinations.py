"""The connector of each destination, built from its Airflow connection (tasks and the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from donor_sync.delivery.contracts import BRAZE, HUBSPOT, MAILCHIMP, SALESFORCE, Connector

#: Destinations with a connector, in the order donations_hourly pushes them.
DESTINATIONS: tuple[str, ...] = (SALESFORCE, HUBSPOT, MAILCHIMP, BRAZE)


def connector_for(destination: str, *, on_deprecation: Callable[..., Any] | None = None) -> Connector:
    """Return ``destination``'s connector from its default Airflow connection.

    HubSpot's unique id properties (donor_sync_id, donor_sync_gift_key) are created where missing,
    so a new portal works without a manual setup step (two reads when they exist).
    """
    if destination == SALESFORCE:
        from donor_sync.hooks.salesforce_npsp import SalesforceNpspHook

        return SalesforceNpspHook(on_deprecation=on_deprecation).get_connector()
    if destination == HUBSPOT:
        from donor_sync.hooks.hubspot import HubSpotHook

        connector = HubSpotHook(on_deprecation=on_deprecation).get_connector()
        connector.ensure_properties()
        return connector
    if destination == MAILCHIMP:
        from donor_sync.delivery.connectors.mailchimp.merge_fields import merge_field_specs
        from donor_sync.delivery.mapping import load_destination
        from donor_sync.hooks.mailchimp import MailchimpHook

        mailchimp = MailchimpHook().get_connector()
        # The merge fields the mapping writes are created where missing (one read when there).
        mailchimp.ensure_merge_fields(merge_field_specs(load_destination(MAILCHIMP)))
        return mailchimp
    if destination == BRAZE:
        from donor_sync.hooks.braze import BrazeHook

        return BrazeHook().get_connector()
    if destination.startswith("webhook_"):  # an event subscriber of include/mappings/events.yaml
        from donor_sync.hooks.events import subscriber_connector

        return subscriber_connector(destination)
    raise ValueError(f"no connector for destination {destination!r} (known: {', '.join(DESTINATIONS)})")
