"""Column lists of the staging tables this stage writes, and of the projection frames it reads.

They restate include/sql/migrations/0003_staging.sql (the contract); the writer COPYs exactly
these columns, in this order.
"""

from __future__ import annotations

from typing import Final

#: Standardized donor fields of staging.donors (besides ids, flags and timestamps).
DONOR_COLUMNS: Final[tuple[str, ...]] = (
    "name_prefix",
    "first_name",
    "middle_name",
    "last_name",
    "name_suffix",
    "nickname",
    "is_organization",
    "organization_name",
    "last_name_key",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country_code",
    "address_validated",
    "birth_date",
)

#: Every column the writer fills in staging.donors.
DONOR_TABLE_COLUMNS: Final[tuple[str, ...]] = (
    "raw_record_id",
    "batch_id",
    "source",
    "source_id",
    "source_updated_at",
    *DONOR_COLUMNS,
    "consent_signals",
    "review_flags",
)

#: Standardized gift fields of staging.gifts (besides ids, flags and timestamps).
GIFT_COLUMNS: Final[tuple[str, ...]] = (
    "gift_key",
    "amount",
    "currency",
    "currency_exponent",
    "amount_minor",
    "fee_amount",
    "gift_at",
    "status",
    "refunded_amount",
    "refunded_at",
    "payment_method",
    "is_test",
    "is_anonymous",
    "is_recurring",
    "recurring_key",
    "recurring_source_id",
    "recurring_interval",
    "installment_number",
    "designation",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_extra",
    "landing_url",
    "referrer_url",
    "tribute_type",
    "tribute_name",
)

#: Every column the writer fills in staging.gifts.
GIFT_TABLE_COLUMNS: Final[tuple[str, ...]] = (
    "raw_record_id",
    "batch_id",
    "source",
    "entity",
    "source_id",
    "source_donor_id",
    "source_updated_at",
    *GIFT_COLUMNS,
    "review_flags",
)

#: Amounts travel to Postgres as exact minor units (integers: no decimal text built in Python);
#: the writer computes each numeric column as minor / 10^currency_exponent.
MINOR_UNITS: Final[dict[str, str]] = {
    "amount": "amount_minor",
    "fee_amount": "fee_amount_minor",
    "refunded_amount": "refunded_amount_minor",
}

#: Columns every projection returns besides intake fields, all as text.
#: object_entity/object_id name the object a raw record is a version of (an event's charge);
#: skip_reason is set when the projection already knows the record is not staged; linked_* name
#: the donation-platform gift a processor record pays for; source_donor_id is the donor a gift
#: belongs to when the record carries no donor of its own; encoding_errors lists intake fields
#: whose bytes were not valid in a CSV file's encoding (JSON array).
PIPELINE_COLUMNS: Final[tuple[str, ...]] = (
    "raw_record_id",
    "batch_id",
    "source",
    "entity",
    "source_id",
    "source_updated_at",
    "object_entity",
    "object_id",
    "skip_reason",
    "linked_source",
    "linked_gift_id",
    "source_donor_id",
    "encoding_errors",
)
