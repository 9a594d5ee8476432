"""The trigger payload of one enrollment, as queued in ``sync.outbox`` (entity ``journey_trigger``).

Mailchimp: ``{"journey_id", "step_id", "email_address"}`` -- the customer-journey API takes the
member's email and nothing else. Braze: ``{"canvas_id" | "campaign_id", "external_user_id",
"properties"}`` -- the external id is the donor id (what the Braze user record is keyed on), the
properties are the journey's ``trigger_properties`` (gift fields only, never PII) plus
``journey_id`` and, in an experiment, ``experiment_id`` and ``variant``. The senders
(``delivery/connectors/<vendor>/journey_triggers.py``) batch them into vendor calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from donor_sync.journeys.rules import Destination, Journey

ENTITY = "journey_trigger"


def record_key(gift_key: str, journey_id: str) -> str:
    """Return the outbox record key of a gift's trigger into a journey."""
    return f"{gift_key}:{journey_id}"


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def build_payload(
    journey: Journey,
    *,
    destination: Destination,
    donor_id: str,
    email: str | None,
    gift: Mapping[str, Any],
    experiment_id: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """Return the trigger payload of one entry (``destination`` is the journey's or its variant's)."""
    if destination.mailchimp is not None:
        if not email:
            raise ValueError(f"journey {journey.id}: a Mailchimp trigger needs the donor's email")
        return {
            "journey_id": destination.mailchimp.journey_id,
            "step_id": destination.mailchimp.step_id,
            "email_address": email,
        }
    assert destination.braze is not None
    properties: dict[str, Any] = {
        name: _json_value(gift.get(field)) for name, field in sorted(journey.trigger_properties.items())
    }
    properties["journey_id"] = journey.id
    if experiment_id is not None:
        properties["experiment_id"] = experiment_id
        properties["variant"] = variant
    target = (
        {"canvas_id": destination.braze.canvas_id}
        if destination.braze.canvas_id is not None
        else {"campaign_id": destination.braze.campaign_id}
    )
    return {**target, "external_user_id": donor_id, "properties": properties}
