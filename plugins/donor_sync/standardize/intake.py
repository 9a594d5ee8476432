"""The intake vocabulary: the flat, source-neutral columns every raw record is projected into.

Standardization runs in three steps:

1. **Project** (set-based SQL): each source/entity's raw jsonb payloads are flattened into these
   columns, as text exactly as the source wrote them (a CSV export's mapping names, per format,
   which header feeds which intake field).
2. **Standardize** (vectorized pandas, ``donor_sync.standardize.fields``): intake columns become
   the typed, normalized columns of ``staging.donors`` and ``staging.gifts``, and every problem
   found becomes an issue (row, field, code, severity, message).
3. **Validate and route** (rules in ``include/mappings/standardize.yaml``): each issue code maps to
   an action (quarantine the record, drop the value and flag it, or flag only), then each raw
   record is staged, quarantined with every reason, or skipped with a reason.

This module is the contract between those steps and the CSV format files, which may only name
fields listed here.
"""

from __future__ import annotations

from typing import Final

#: Columns every projection carries from ``raw.records`` itself.
RECORD_FIELDS: Final[tuple[str, ...]] = (
    "raw_record_id",
    "batch_id",
    "source",
    "entity",
    "source_id",
    "source_updated_at",
)

#: Donor fields, as text as received.
DONOR_FIELDS: Final[dict[str, str]] = {
    "donor_source_id": "The source's id of the donor (customer, supporter, donor id, CSV id column).",
    "full_name": "The whole name in one field ('Jane Q. Doe', 'Doe, Jane', 'Acme Foundation').",
    "name_prefix": "Title (Dr, Mrs) when the source has its own field.",
    "first_name": "Given name when the source has its own field.",
    "middle_name": "Middle name(s) when the source has its own field.",
    "last_name": "Family name when the source has its own field.",
    "name_suffix": "Suffix (Jr, III, PhD) when the source has its own field.",
    "organization_name": "Company or organization giving (a donating company, an employer gift).",
    "email": "Email address.",
    "phone": "Phone number in any national or international format.",
    "address_line1": "Street address, first line.",
    "address_line2": "Street address, second line (apartment, suite).",
    "city": "City or town.",
    "region": "State, province, county or region code or name.",
    "postal_code": "ZIP or postal code.",
    "country": "Country as ISO code or name ('US', 'USA', 'United States').",
    "birth_date": "Date of birth.",
    "consent_text": "Contact preferences as 'channel.purpose=status' pairs separated by ';'.",
    "email_opt_in": "Marketing email opt-in flag (yes/no, true/false, Y/blank).",
    "sms_opt_in": "SMS opt-in flag.",
    "email_opt_out": "Email opt-out flag.",
    "do_not_mail": "Do-not-mail flag.",
    "do_not_call": "Do-not-call flag.",
    "deceased": "Deceased flag.",
}

#: Gift fields, as text as received.
GIFT_FIELDS: Final[dict[str, str]] = {
    "gift_source_id": "The source's id of the gift (charge, donation, transaction, CSV reference).",
    "amount": "Amount in major units as text ('1,250.00', '25').",
    "amount_minor": "Amount in minor units (Stripe's integer cents), when the source uses them.",
    "currency": "ISO 4217 currency code in any case ('usd', 'CAD').",
    "fee_amount": "Processor fee in major units.",
    "fee_amount_minor": "Processor fee in minor units.",
    "gift_at": "When the gift was made (ISO 8601, epoch seconds, or the format's date format).",
    "status": "The source's own payment status text (succeeded, paid, success, failed, refunded...).",
    "refunded_amount": "Amount refunded in major units.",
    "refunded_amount_minor": "Amount refunded in minor units.",
    "refunded_at": "When it was refunded.",
    "disputed": "Whether the payment is disputed (true/false).",
    "payment_method": "Payment method text (card, paypal, ach, check...).",
    "processor": "Payment processor the gift was paid through (stripe, paypal), when named.",
    "processor_transaction_id": "The processor's transaction id (a Stripe charge id on a Donorbox gift).",
    "livemode": "Whether the payment was made in live mode (false: a test-mode payment).",
    "card_last4": "Last four digits of the card, to recognize test cards.",
    "is_anonymous": "Donor asked not to be named publicly.",
    "is_recurring": "Part of a recurring plan (true/false, or a frequency text).",
    "recurring_source_id": "The source's id of the recurring plan (subscription, plan id).",
    "recurring_interval": "How often the plan charges (month, monthly, year, annually...).",
    "installment_number": "Which installment of the plan this is.",
    "designation": "Fund the donor chose.",
    "campaign": "Campaign, appeal, event or form name.",
    "utm_source": "utm_source when the source has its own field.",
    "utm_medium": "utm_medium.",
    "utm_campaign": "utm_campaign.",
    "utm_term": "utm_term.",
    "utm_content": "utm_content.",
    "landing_url": "Landing page URL (UTM parameters are parsed out of it).",
    "referrer_url": "Referrer URL (UTM parameters are parsed out of it).",
    "tribute_text": "Tribute as free text ('In memory of Jane Doe', 'In honour of ...').",
    "tribute_type": "Tribute type when the source has its own field (honor, memory).",
    "tribute_name": "Honoree when the source has its own field.",
    "comment": "Donor's comment or note.",
}

#: Every field a projection or a CSV format may fill.
INTAKE_FIELDS: Final[frozenset[str]] = frozenset(DONOR_FIELDS) | frozenset(GIFT_FIELDS)
