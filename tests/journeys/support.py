"""Helpers for the journey tests: core rows inserted directly, consent, keys, rules and a policy."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from donor_sync.journeys.rules import JourneyRules
from donor_sync.privacy.gate.policy import DestinationPolicy, PrivacyPolicy
from donor_sync.privacy.keys import StaticKeys

#: The decision instant of the tests: today 15:00 UTC (outside quiet hours in UTC).
NOW = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)

KEYS = StaticKeys(
    {
        purpose: {"current": "k1", "keys": {"k1": base64.b64encode(bytes([n]) * 32).decode()}}
        for n, purpose in enumerate(("tombstone", "pseudonym", "encryption", "links"), start=1)
    }
)

POLICY = PrivacyPolicy(
    destinations={
        "mailchimp": DestinationPolicy(region="us", sharing=False),
        "braze": DestinationPolicy(region="us", sharing=False),
    }
)


def add_donor(db: psycopg.Connection, *, consent: str | None = "opt_in", **extra: Any) -> str:
    """Insert a golden donor (time zone UTC, an email); record its email consent; return its id."""
    donor_id = str(uuid.uuid4())
    columns: dict[str, Any] = {
        "donor_id": donor_id,
        "first_name": "Test",
        "last_name": "Donor",
        "email": f"donor.{donor_id[:8]}@example.org",
        "time_zone": "UTC",
        **extra,
    }
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    db.execute(f"INSERT INTO core.donors ({names}) VALUES ({marks})", list(columns.values()))
    if consent is not None:
        set_consent(db, donor_id, consent)
    return donor_id


def set_consent(
    db: psycopg.Connection,
    donor_id: str,
    status: str,
    *,
    purpose: str = "fundraising",
    channel: str = "email",
) -> None:
    """Record one consent event and make it the donor's state."""
    row = db.execute(
        "INSERT INTO core.consent_events (donor_id, purpose, channel, status, source, occurred_at,"
        " recorded_by)"
        " VALUES (%s, %s, %s, %s, 'staff', now(), 'test') RETURNING consent_event_id",
        (donor_id, purpose, channel, status),
    ).fetchone()
    assert row is not None
    db.execute(
        "INSERT INTO core.consent_state (donor_id, purpose, channel, status, consent_event_id, effective_at)"
        " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (donor_id, purpose, channel) DO UPDATE"
        " SET status = EXCLUDED.status, consent_event_id = EXCLUDED.consent_event_id",
        (donor_id, purpose, channel, status, row[0]),
    )


def suppress(db: psycopg.Connection, donor_id: str, reason: str, **scope: str) -> None:
    """Add an active suppression."""
    db.execute(
        "INSERT INTO core.suppressions (donor_id, reason_code, channel, destination, source, created_by)"
        " VALUES (%s, %s, %s, %s, 'staff', 'test')",
        (donor_id, reason, scope.get("channel", "all"), scope.get("destination", "*")),
    )


def add_gift(
    db: psycopg.Connection,
    donor_id: str,
    amount: str = "25.00",
    *,
    key: str | None = None,
    at: datetime | None = None,
    **extra: Any,
) -> str:
    """Insert a succeeded USD gift made an hour before NOW (unless ``at``); return its gift key."""
    value = Decimal(amount)
    gift_key = key or f"stripe:ch_{uuid.uuid4().hex[:16]}"
    when = at or NOW - timedelta(hours=1)
    columns: dict[str, Any] = {
        "gift_key": gift_key,
        "donor_id": donor_id,
        "source": "stripe",
        "amount": value,
        "currency": "USD",
        "currency_exponent": 2,
        "amount_minor": int(value * 100),
        "gift_at": when,
        "gift_date": when.date() if isinstance(when, datetime) else date.today(),
        "status": "succeeded",
        **extra,
    }
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    db.execute(f"INSERT INTO core.gifts ({names}) VALUES ({marks})", list(columns.values()))
    return gift_key


def add_plan(db: psycopg.Connection, donor_id: str, *, status: str = "active") -> str:
    """Insert a monthly plan of 10 USD; return its recurring_plan_id."""
    key = f"stripe:sub_{uuid.uuid4().hex[:12]}"
    row = db.execute(
        "INSERT INTO core.recurring_plans (plan_key, donor_id, source, source_id, amount, currency,"
        " currency_exponent, amount_minor, interval_unit, status, started_at)"
        " VALUES (%s, %s, 'stripe', %s, 10, 'USD', 2, 1000, 'month', %s, %s)"
        " RETURNING recurring_plan_id::text",
        (key, donor_id, key.split(":", 1)[1], status, NOW - timedelta(days=40)),
    ).fetchone()
    assert row is not None
    return str(row[0])


def rules(*journeys: dict[str, Any], **defaults: Any) -> JourneyRules:
    """Return rules with the given journeys; defaults: email fundraising consent, every suppression,
    no cap and no quiet hours unless given."""
    base: dict[str, Any] = {
        "consent": {"purpose": "fundraising", "channel": "email", "status_in": ["opt_in", "soft_opt_in"]},
        "suppressions": [
            "deceased", "do_not_contact", "minor", "do_not_solicit", "in_memoriam_only",
            "bounced", "cleaned", "complained", "manual",
        ],
    }  # fmt: skip
    base.update(defaults)
    return JourneyRules.model_validate(
        {
            "version": 1,
            "defaults": base,
            "destinations": {
                "mailchimp": {"depends_on_entity": "member"},
                "braze": {"depends_on_entity": "user"},
            },
            "journeys": list(journeys),
        }
    )


def journey(journey_id: str, entry: dict[str, Any], *, braze: bool = False, **extra: Any) -> dict[str, Any]:
    """Return one journey document (Mailchimp journey 1 step 2, or the sandbox Braze canvas)."""
    destination = (
        {"braze": {"canvas_id": "sandbox-canvas"}}
        if braze
        else {"mailchimp": {"journey_id": 1, "step_id": 2}}
    )
    return {"id": journey_id, "entry": entry, "destination": destination, **extra}


def decide_kwargs(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of decide() for tests: fixed now, USD, UTC, the test policy and keys."""
    return {
        "now": NOW,
        "reporting_currency": "USD",
        "org_time_zone": "UTC",
        "privacy_policy": POLICY,
        "keys": KEYS,
        **overrides,
    }


def enrollments(db: psycopg.Connection) -> list[tuple[str, str, str, str | None]]:
    """Return (gift_key, journey_id, status, reason_code) of every enrollment, sorted."""
    return [
        (g, j, s, r)
        for g, j, s, r in db.execute(
            "SELECT gift_key, journey_id, status, reason_code FROM sync.journey_enrollments ORDER BY 1, 2"
        ).fetchall()
    ]


def triggers(db: psycopg.Connection) -> list[tuple[str, str, str]]:
    """Return (destination, record_key, state) of every journey trigger in the outbox."""
    return [
        (d, k, s)
        for d, k, s in db.execute(
            "SELECT destination, record_key, state FROM sync.outbox WHERE entity = 'journey_trigger'"
            " ORDER BY outbox_id"
        ).fetchall()
    ]
