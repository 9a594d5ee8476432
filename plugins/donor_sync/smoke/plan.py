"""Which checks a deployment gets: one set per source, destination, event subscriber, plus receiver and Slack.

* **Sources** with an API extractor (Stripe, Donorbox, Classy): credential and limits. A source
  without an Airflow connection is not configured here: its checks are skipped.
* **Destinations** (Salesforce, HubSpot, Mailchimp, Braze): credential, limits and the mapping
  against the destination's metadata. One switched off in ``include/mappings/delivery.yaml``
  (``destinations.<name>.enabled: false``) is skipped; an enabled one without a connection fails,
  since its push would.
* **Event subscribers** of ``include/mappings/events.yaml``: reachable over trusted TLS.
* **The webhook receiver** answers; **the Slack alerts connection** is a well-formed webhook.

Connections are looked up here, one after another, before any check runs; the checks then build
their clients through the vendor hooks, in parallel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from donor_sync.delivery.contracts import BRAZE, HUBSPOT, MAILCHIMP, SALESFORCE
from donor_sync.smoke import braze, hubspot, mailchimp, salesforce
from donor_sync.smoke.checks import Check, Outcome, failed, skipped
from donor_sync.smoke.endpoints import DEFAULT_HTTP_TIMEOUT_S, receiver_check, receiver_url, subscriber_check
from donor_sync.smoke.runner import unexpected_reason
from donor_sync.smoke.slack import SLACK_CONN_ID, slack_check
from donor_sync.smoke.sources import SOURCES, source_checks

if TYPE_CHECKING:
    from donor_sync.delivery.settings import DeliverySettings
    from donor_sync.events.settings import EventSettings
    from donor_sync.smoke.connections import ConnectionLookup

__all__ = ["DESTINATIONS", "SmokeOptions", "plan_checks"]

#: Destinations with a connector: their default connection and their checks, in push order.
DESTINATIONS: Mapping[str, tuple[str, Callable[[str], list[Check]]]] = {
    SALESFORCE: (salesforce.CONN_ID, salesforce.salesforce_checks),
    HUBSPOT: (hubspot.CONN_ID, hubspot.hubspot_checks),
    MAILCHIMP: (mailchimp.CONN_ID, mailchimp.mailchimp_checks),
    BRAZE: (braze.CONN_ID, braze.braze_checks),
}
DELIVERY_FILE = "include/mappings/delivery.yaml"


@dataclass(frozen=True)
class SmokeOptions:
    """What the command line chose.

    :param receiver_url: the webhook receiver's base URL (None: the environment or Airflow's).
    :param receiver_verify: CA bundle the receiver's certificate is checked with (True: the defaults).
    :param post_slack: post one test message to the alerts channel.
    :param only: targets to check (empty: all).
    """

    receiver_url: str | None = None
    receiver_verify: str | bool = True
    post_slack: bool = False
    only: frozenset[str] = field(default_factory=frozenset)
    http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    slack_conn_id: str = SLACK_CONN_ID


def _first_only(checks: list[Check], outcome: Outcome) -> list[Check]:
    """Replace the first check's probe by a fixed outcome; the rest follow it (skipped after it)."""
    first = checks[0]
    return [replace(first, run=lambda: outcome), *checks[1:]]


def _gated(checks: list[Check], conn_id: str, lookup: ConnectionLookup, *, missing: Outcome) -> list[Check]:
    """Return ``checks``, or them led by ``missing`` when ``conn_id`` is not defined (or the lookup fails)."""
    try:
        found = lookup(conn_id)
    except Exception as exc:  # a secrets backend or the metadata database failed
        return _first_only(
            checks, failed(f"cannot look up Airflow connection {conn_id!r}: {unexpected_reason(exc)}")
        )
    return _first_only(checks, missing) if found is None else checks


def _source_plan(lookup: ConnectionLookup) -> list[Check]:
    planned: list[Check] = []
    for source, conn_id in SOURCES.items():
        reason = f"not configured here: no Airflow connection {conn_id!r}"
        planned += _gated(source_checks(source, conn_id), conn_id, lookup, missing=skipped(reason))
    return planned


def _destination_plan(lookup: ConnectionLookup, delivery: DeliverySettings) -> list[Check]:
    planned: list[Check] = []
    for destination, (conn_id, make) in DESTINATIONS.items():
        checks = make(conn_id)
        if not delivery.for_destination(destination).enabled:
            reason = f"disabled (destinations.{destination}.enabled: false in {DELIVERY_FILE})"
            planned += _first_only(checks, skipped(reason))
            continue
        missing = failed(
            f"no Airflow connection {conn_id!r}: add it, or set destinations.{destination}.enabled: false "
            f"in {DELIVERY_FILE}"
        )
        planned += _gated(checks, conn_id, lookup, missing=missing)
    return planned


def _subscriber_plan(
    lookup: ConnectionLookup, delivery: DeliverySettings, events: EventSettings, timeout_s: float
) -> list[Check]:
    planned: list[Check] = []
    for spec in events.enabled():
        check = subscriber_check(spec.destination, spec.secret, timeout_s=timeout_s)
        if not delivery.for_destination(spec.destination).enabled:
            reason = f"disabled (destinations.{spec.destination}.enabled: false in {DELIVERY_FILE})"
            planned += _first_only([check], skipped(reason))
            continue
        missing = failed(
            f"no Airflow connection {spec.secret!r} (the signing secret events.yaml names for "
            f"subscriber {spec.name}): add it, or disable the subscriber"
        )
        planned += _gated([check], spec.secret, lookup, missing=missing)
    return planned


def plan_checks(
    lookup: ConnectionLookup,
    options: SmokeOptions | None = None,
    *,
    delivery: DeliverySettings | None = None,
    events: EventSettings | None = None,
    receiver_sources: Sequence[str] | None = None,
    api_base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Check]:
    """Return the checks of this deployment, in report order.

    :param lookup: finds Airflow connections (:class:`~donor_sync.smoke.connections.AirflowConnections`).
    :param delivery: delivery.yaml's settings (default: the shipped file).
    :param events: events.yaml's settings (default: the shipped file).
    :param receiver_sources: the receiver's endpoints (default: those of webhooks.yaml).
    :param api_base_url: Airflow's ``[api] base_url``, for the receiver's default URL.
    :raises ValueError: ``options.only`` names an unknown target (the message lists the known ones).
    """
    from donor_sync.delivery.settings import load_delivery_settings
    from donor_sync.events.settings import load_event_settings

    options = options or SmokeOptions()
    delivery = delivery or load_delivery_settings()
    events = events or load_event_settings()
    if receiver_sources is None:
        from donor_sync.web.webhooks.config import load_settings

        receiver_sources = list(load_settings().endpoints)
    url = receiver_url(options.receiver_url, os.environ if environ is None else environ, api_base_url)
    checks = [
        *_source_plan(lookup),
        *_destination_plan(lookup, delivery),
        *_subscriber_plan(lookup, delivery, events, options.http_timeout_s),
        receiver_check(
            url, receiver_sources, verify=options.receiver_verify, timeout_s=options.http_timeout_s
        ),
        *_gated(
            [slack_check(options.slack_conn_id, post=options.post_slack)],
            options.slack_conn_id,
            lookup,
            missing=failed(
                f"no Airflow connection {options.slack_conn_id!r}: "
                "failures and missed deadlines would alert no one"
            ),
        ),
    ]
    if options.only:
        known = list(dict.fromkeys(c.target for c in checks))
        unknown = sorted(options.only - set(known))
        if unknown:
            raise ValueError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(known)}")
        checks = [c for c in checks if c.target in options.only]
    return checks
