"""The destination erasers of the ``privacy_requests`` DAG, built from Airflow connections.

Connections: ``salesforce_npsp``, ``hubspot``, ``mailchimp`` (host, password = API key, extra
``list_id``), ``braze`` (host = REST endpoint, password = REST key) and, per outbound
subscriber of ``include/mappings/privacy/erasure.yaml``, the connection it names (host = base
URL, password = signing secret(s), comma-separated). Every connection may carry a ``ca_bundle``
extra. The erasers themselves live in :mod:`donor_sync.privacy.erasers` (no Airflow there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from airflow.sdk import BaseHook

from donor_sync.delivery.connectors.braze.client import client_from_connection as braze_client
from donor_sync.delivery.connectors.mailchimp.client import client_from_connection as mailchimp_client
from donor_sync.delivery.connectors.salesforce import SalesforceClient
from donor_sync.delivery.connectors.salesforce.client import DEFAULT_TIMEOUT
from donor_sync.errors import ConfigError
from donor_sync.hooks._extras import base_url
from donor_sync.privacy.contracts import DestinationEraser
from donor_sync.privacy.erasers import (
    BrazeEraser,
    HubSpotEraser,
    MailchimpEraser,
    OutboundEraser,
    SalesforceEraser,
    Subscriber,
)
from donor_sync.privacy.erasers.settings import ErasureSettings, load_erasure_settings

__all__ = ["SYSTEMS", "erasers_for"]

MAILCHIMP_CONN_ID = "mailchimp"
BRAZE_CONN_ID = "braze"
#: Every system an eraser exists for, in cascade order.
SYSTEMS: tuple[str, ...] = ("salesforce", "hubspot", "mailchimp", "braze", "outbound_webhooks")


def _salesforce(settings: ErasureSettings) -> DestinationEraser:
    from donor_sync.hooks.salesforce_npsp import SalesforceNpspHook, credentials_from_settings

    conn = SalesforceNpspHook().settings()
    client = SalesforceClient(
        credentials_from_settings(conn),
        api_version=conn.api_version,
        verify=conn.verify,
        timeout=conn.timeout or DEFAULT_TIMEOUT,
    )
    return SalesforceEraser(client, settings.destinations.salesforce)


def _hubspot(settings: ErasureSettings) -> DestinationEraser:
    from donor_sync.hooks.hubspot import HubSpotHook

    connector = HubSpotHook().get_connector()
    connector.ensure_properties()  # the donor_sync_id lookup needs the unique property (2 reads if there)
    return HubSpotEraser(
        connector.client,
        settings.destinations.hubspot,
        contact_id_property=connector.settings.contact_id_property,
    )


def _mailchimp(settings: ErasureSettings) -> DestinationEraser:
    conn = BaseHook.get_connection(MAILCHIMP_CONN_ID)
    extra = conn.extra_dejson
    client = mailchimp_client(conn.host, conn.password, extra)
    list_id = extra.get("list_id")
    return MailchimpEraser(
        client, settings.destinations.mailchimp, default_list_id=str(list_id) if list_id else None
    )


def _braze(settings: ErasureSettings) -> DestinationEraser:
    conn = BaseHook.get_connection(BRAZE_CONN_ID)
    return BrazeEraser(braze_client(conn.host, conn.password, conn.extra_dejson), settings.destinations.braze)


def _outbound(settings: ErasureSettings) -> DestinationEraser:
    subscribers: list[Subscriber] = []
    for spec in settings.destinations.outbound_webhooks.subscribers:
        conn = BaseHook.get_connection(spec.connection)
        secrets = tuple(s.strip() for s in (conn.password or "").split(",") if s.strip())
        if not secrets:
            raise ConfigError(
                f"erasure.yaml: destinations.outbound_webhooks.subscribers[{spec.name}]: connection "
                f"{spec.connection!r} has no signing secret in its password"
            )
        url = spec.url or base_url(conn.host).rstrip("/") + spec.path
        ca_bundle = conn.extra_dejson.get("ca_bundle")
        subscribers.append(Subscriber(spec.name, url, secrets, verify=str(ca_bundle) if ca_bundle else True))
    return OutboundEraser(subscribers)


_BUILDERS: dict[str, Callable[[ErasureSettings], DestinationEraser]] = {
    "salesforce": _salesforce,
    "hubspot": _hubspot,
    "mailchimp": _mailchimp,
    "braze": _braze,
    "outbound_webhooks": _outbound,
}


def erasers_for(
    systems: Sequence[str] | None = None, *, settings: ErasureSettings | None = None
) -> list[DestinationEraser]:
    """Return the eraser of each enabled system (of ``systems``, all when None), in cascade order.

    :param settings: default: ``include/mappings/privacy/erasure.yaml``.
    :raises ValueError: ``systems`` names a system no eraser exists for.
    :raises ConfigError: erasure.yaml or a connection is invalid (the message names it).
    """
    unknown = sorted(set(systems or ()) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"no eraser for {', '.join(unknown)} (known: {', '.join(SYSTEMS)})")
    chosen = settings or load_erasure_settings()
    enabled = [s for s in chosen.enabled_systems() if systems is None or s in systems]
    return [_BUILDERS[name](chosen) for name in enabled]
