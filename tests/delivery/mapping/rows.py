"""Core rows as the outbox hands them to the mapping engine: every SOURCE_FIELDS key, psycopg types."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from donor_sync.delivery.contracts import SOURCE_FIELDS

DONOR_ID = uuid.UUID("6f1c2a3e-8d4b-4f5a-9c7e-1b2d3e4f5a6b")
HOUSEHOLD_ID = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")


def row(kind: str, **values: Any) -> dict[str, Any]:
    """Return a row of ``kind`` with every field None except ``values``."""
    unknown = set(values) - set(SOURCE_FIELDS[kind])
    assert not unknown, f"not {kind} fields: {unknown}"
    return {**dict.fromkeys(SOURCE_FIELDS[kind]), **values}


def donor(**values: Any) -> dict[str, Any]:
    """A person donor in a household, with an address and giving totals."""
    base: dict[str, Any] = {
        "donor_id": DONOR_ID,
        "first_name": " Ada ",
        "last_name": "Lovelace",
        "is_organization": False,
        "email": "Ada@Example.org",
        "email_verified": True,
        "phone": "+442071234567",
        "address_line1": "12 St James's Square",
        "address_line2": "Flat 3",
        "city": "London",
        "region": None,
        "postal_code": "SW1Y 4JH",
        "country_code": "GB",
        "address_validated": True,
        "is_deceased": False,
        "do_not_contact": False,
        "giving_currency": "GBP",
        "gift_count": 3,
        "lifetime_giving": Decimal("150.0000"),
        "fiscal_year_giving": Decimal("50.0000"),
        "recurring_status": "active",
        "household_id": HOUSEHOLD_ID,
        "household_name": "Lovelace Household",
        "household_role": "primary",
    }
    return row("donor", **{**base, **values})


def household(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "household_id": HOUSEHOLD_ID,
        "name": "Lovelace Household",
        "address_line1": "12 St James's Square",
        "address_line2": None,
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country_code": "GB",
        "member_count": 2,
        "primary_donor_id": DONOR_ID,
    }
    return row("household", **{**base, **values})


def gift(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "gift_key": "stripe:ch_3PZ",
        "gift_id": uuid.UUID("11111111-2222-4333-8444-555555555555"),
        "donor_id": DONOR_ID,
        "household_id": HOUSEHOLD_ID,
        "source": "stripe",
        "amount": Decimal("25.5000"),
        "currency": "GBP",
        "amount_base": Decimal("25.5000"),
        "fee_amount": Decimal("1.0500"),
        "gift_at": dt.datetime(2024, 3, 1, 23, 30, 5, 250000, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "gift_date": dt.date(2024, 3, 1),
        "status": "succeeded",
        "refunded_amount": Decimal("0.0000"),
        "payment_method": "card",
        "is_anonymous": False,
        "campaign": "spring-appeal",
        "utm_source": "mailchimp",
        "utm_medium": "email",
        "utm_campaign": "spring-appeal",
    }
    return row("gift", **{**base, **values})


def plan(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "plan_key": "stripe:sub_1Q",
        "donor_id": DONOR_ID,
        "household_id": HOUSEHOLD_ID,
        "source": "stripe",
        "amount": Decimal("10.0000"),
        "currency": "GBP",
        "interval_unit": "month",
        "interval_count": 1,
        "status": "active",
        "started_at": dt.datetime(2023, 11, 5, 9, 0, tzinfo=dt.UTC),
        "next_payment_at": dt.datetime(2024, 4, 5, 9, 0, tzinfo=dt.UTC),
        "failed_payment_count": 0,
    }
    return row("recurring_plan", **{**base, **values})
