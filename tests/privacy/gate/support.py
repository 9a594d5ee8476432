"""A test policy (a consent-requiring email platform, a CCPA sharing destination, an EU one), a
test mapping and profile, and a renderer that leaks every row it is given into the payload."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

from donor_sync.delivery.contracts import RenderedRecord
from donor_sync.delivery.mapping import validate_text
from donor_sync.delivery.outbox.renderer import MappingRenderer
from donor_sync.privacy.gate import DestinationGate, PrivacyPolicy, load_gate
from donor_sync.privacy.keys import StaticKeys, new_key
from donor_sync.privacy.profiles import Profile

ESP, SHARE, EU = "esp_test", "share_test", "eu_test"
POLICY = PrivacyPolicy.model_validate(
    {
        "destinations": {
            ESP: {
                "region": "us",
                "sharing": False,
                "requires": [
                    {"purpose": "marketing", "channel": "email", "status_in": ["opt_in", "soft_opt_in"]}
                ],
                "suppressions": ["deceased", "do_not_contact", "bounced"],
                "fields_requiring_consent": [
                    {"fields": ["phone"], "purpose": "marketing", "channel": "sms", "status_in": ["opt_in"]}
                ],
            },
            SHARE: {"region": "us", "sharing": True},
            EU: {"region": "eu", "sharing": False},
        },
        "residency": {
            "regions": {"eu": ["DE", "FR", "IE"]},
            "rules": [{"donor_region": "eu", "allowed_destination_regions": ["eu"]}],
        },
    }
)
KEYS = StaticKeys(
    {
        "pseudonym": {"current": "p1", "keys": {"p1": new_key()}},
        "tombstone": {"current": "t1", "keys": {"t1": new_key()}},
    }
)

MAPPING = """
version: 1
destination: {destination}
objects:
  - name: contact
    object: Contact
    source: donor
    key: donor_id
    external_id: ext_id
    mode: {mode}
    {mirror}
    fields:
      - {{to: email, from: email, type: string}}
      - {{to: first_name, from: first_name, type: string}}
      - {{to: surname_hash, from: last_name, type: string}}
      - {{to: phone, from: phone, type: string}}
      - {{to: birth_year, from: birth_date, type: integer}}
      - {{to: zip, from: postal_code, type: string}}
  - name: gift
    object: Gift
    source: gift
    key: gift_key
    external_id: ext_id
    fields:
      - {{to: contact, from: donor_id, reference: {{entity: contact}}}}
      - {{to: amount, from: amount, type: number}}
"""


def profile(destination: str) -> Profile:
    """The test profile: surname pseudonymized, birth year, postcode district, city excluded."""
    return Profile.model_validate(
        {
            "destination": destination,
            "use_case": "tests",
            "kinds": {
                "donor": {
                    "pseudonymize": ["last_name"],
                    "generalize": {"birth_date": "year", "postal_code": {"prefix": 3}},
                    "exclude": ["city", "middle_name"],
                }
            },
        }
    )


class LeakyRenderer(MappingRenderer):
    """The mapping engine, plus the whole row it was handed in the payload (``_row``): what the
    gate lets through is exactly what a renderer could ever send."""

    def render(self, kind: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[RenderedRecord]:
        batch = list(rows)
        key = {"donor": "donor_id", "gift": "gift_key"}.get(kind)
        by_key = {str(r[key]): r for r in batch} if key else {}
        for record in super().render(kind, batch):
            row = by_key.get(record.record_key, {})
            yield dataclasses.replace(record, payload={**record.payload, "_row": dict(row)})


def renderer(destination: str, *, mirror: bool = False) -> MappingRenderer:
    """The test mapping of ``destination`` as a leaky renderer."""
    text = MAPPING.format(
        destination=destination,
        mode="mirror" if mirror else "upsert",
        mirror="mirror_action: delete" if mirror else "",
    )
    mapping, problems = validate_text(text, Path(f"{destination}.yaml"))
    assert mapping is not None, problems
    return LeakyRenderer(mapping)


def gate(destination: str, render: MappingRenderer) -> DestinationGate:
    """The destination's gate under the test policy, profile and keys."""
    return load_gate(destination, render, policy=POLICY, profile=profile(destination), keys=KEYS)


def add_donor(db: psycopg.Connection, **extra: Any) -> str:
    """Insert a donor with every field the test mapping and profile look at; return its id."""
    donor_id = str(uuid.uuid4())
    columns: dict[str, Any] = {
        "donor_id": donor_id,
        "first_name": "Ada",
        "middle_name": "Augusta",
        "last_name": f"King-{donor_id[:4]}",
        "email": f"ada.{donor_id[:8]}@example.org",
        "phone": "+14155550100",
        "city": f"Springfield{donor_id[:3]}",
        "postal_code": "SW1Y 4JH",
        "birth_date": date(1815, 12, 10),
        **extra,
    }
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    db.execute(f"INSERT INTO core.donors ({names}) VALUES ({marks})", list(columns.values()))
    return donor_id


def add_gift(db: psycopg.Connection, donor_id: str, key: str) -> str:
    """Insert a succeeded 25 USD gift; return its key."""
    db.execute(
        "INSERT INTO core.gifts (gift_key, donor_id, source, amount, currency, currency_exponent,"
        " amount_minor,"
        " gift_at, gift_date, status) VALUES (%s, %s, 'stripe', 25, 'USD', 2, 2500, now(), current_date,"
        " 'succeeded')",
        (key, donor_id),
    )
    return key


def set_consent(
    db: psycopg.Connection,
    donor_id: str,
    purpose: str,
    channel: str,
    status: str,
    *,
    at: datetime | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Record a consent event and make it the donor's state (what the consent part derives)."""
    when = at or datetime.now(UTC)
    row = db.execute(
        "INSERT INTO core.consent_events (donor_id, purpose, channel, status, source, occurred_at,"
        " expires_at, recorded_by) VALUES (%s, %s, %s, %s, 'preference_centre', %s, %s, 'test')"
        " RETURNING consent_event_id",
        (donor_id, purpose, channel, status, when, expires_at),
    ).fetchone()
    assert row is not None
    db.execute(
        "INSERT INTO core.consent_state (donor_id, purpose, channel, status, consent_event_id, effective_at,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (donor_id, purpose, channel) DO UPDATE"
        " SET status = EXCLUDED.status, consent_event_id = EXCLUDED.consent_event_id,"
        " effective_at = EXCLUDED.effective_at, expires_at = EXCLUDED.expires_at",
        (donor_id, purpose, channel, status, row[0], when, expires_at),
    )


def suppress(
    db: psycopg.Connection, donor_id: str, reason: str, *, lifted: bool = False, channel: str = "all"
) -> None:
    """Record a suppression (lifted at once when ``lifted``)."""
    db.execute(
        "INSERT INTO core.suppressions (donor_id, reason_code, channel, source, created_by, lifted_at,"
        " lifted_by)"
        " VALUES (%s, %s, %s, 'staff', 'test', CASE WHEN %s THEN now() END, CASE WHEN %s THEN 'test' END)",
        (donor_id, reason, channel, lifted, lifted),
    )


def outbox(db: psycopg.Connection, destination: str) -> list[dict[str, Any]]:
    """Pending outbox rows of ``destination``."""
    from psycopg.rows import dict_row

    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT entity, record_key, donor_id::text AS donor_id, operation, payload, state"
            " FROM sync.outbox"
            " WHERE destination = %s AND state = 'pending' ORDER BY outbox_id",
            (destination,),
        ).fetchall()
