"""The data quality scorecard's settings, ``include/mappings/quality.yaml``.

Which fields of a donor and of a gift count towards completeness, and how much each weighs; which
consent state counts as explicit; how the four figures combine into the overall score. Validated
on load: errors name the file, the line and the field (:func:`donor_sync.yaml_source.load_yaml_model`).

The fields a file may name are the keys of :data:`DONOR_FIELDS` and :data:`GIFT_FIELDS`: each is a
fixed SQL test of "present" over ``core.donors`` (alias ``d``) or ``core.gifts`` (alias ``g``), so
the file chooses among them but never supplies SQL.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.paths import include_dir
from donor_sync.privacy.consent.vocabulary import Channel, Purpose, Status
from donor_sync.yaml_source import load_yaml_model


def _text(column: str) -> str:
    return f"nullif(btrim({column}), '') IS NOT NULL"


#: Donor fields (``core.donors d``, the golden record): the SQL that says the field is present,
#: and what it means.
DONOR_FIELDS: dict[str, tuple[str, str]] = {
    "email": ("d.email IS NOT NULL", "An email address."),
    "email_verified": ("d.email_verified", "The email address is verified (a boolean counts when true)."),
    "name": (
        f"CASE WHEN d.is_organization THEN {_text('d.organization_name')}"
        f" ELSE {_text('d.first_name')} AND {_text('d.last_name')} END",
        "A person's first and last name, or an organization's name.",
    ),
    "first_name": (_text("d.first_name"), "A first name."),
    "last_name": (_text("d.last_name"), "A last name."),
    "phone": ("d.phone IS NOT NULL", "A phone number (E.164)."),
    "postal_address": (
        f"{_text('d.address_line1')} AND {_text('d.city')} AND {_text('d.postal_code')}"
        " AND d.country_code IS NOT NULL",
        "A mailing address: street line, city, postal code and country all present.",
    ),
    "address_line1": (_text("d.address_line1"), "A street line."),
    "city": (_text("d.city"), "A city."),
    "region": (_text("d.region"), "A state, province or county."),
    "postal_code": (_text("d.postal_code"), "A postal code."),
    "country_code": ("d.country_code IS NOT NULL", "A country."),
    "address_validated": ("d.address_validated", "The address parsed and normalized without doubt."),
    "birth_date": ("d.birth_date IS NOT NULL", "A birth date."),
    "time_zone": (_text("d.time_zone"), "A time zone (for quiet hours)."),
}

#: Gift fields (``core.gifts g``): the SQL that says the field is present, and what it means.
GIFT_FIELDS: dict[str, tuple[str, str]] = {
    "designation": (_text("g.designation"), "The fund the donor chose."),
    "campaign": (_text("g.campaign"), "The campaign or page the gift came through."),
    "payment_method": (_text("g.payment_method"), "How the gift was paid."),
    "amount_base": ("g.amount_base IS NOT NULL", "The amount in the reporting currency."),
    "fee_amount": ("g.fee_amount IS NOT NULL", "The processor's fee."),
    "utm_source": (_text("g.utm_source"), "UTM source attribution."),
    "utm_medium": (_text("g.utm_medium"), "UTM medium attribution."),
    "utm_campaign": (_text("g.utm_campaign"), "UTM campaign attribution."),
}

DonorField = Literal[
    "email", "email_verified", "name", "first_name", "last_name", "phone", "postal_address",
    "address_line1", "city", "region", "postal_code", "country_code", "address_validated",
    "birth_date", "time_zone",
]  # fmt: skip
GiftField = Literal[
    "designation", "campaign", "payment_method", "amount_base", "fee_amount", "utm_source", "utm_medium",
    "utm_campaign",
]  # fmt: skip

#: The scorecard's figures, in the order they are shown.
COMPONENTS: tuple[str, ...] = ("completeness", "validity", "duplicate_rate", "consent_coverage")


_EXPLICIT: tuple[Status, ...] = ("opt_in", "opt_out")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldRule(_Strict):
    """How much one field counts towards completeness."""

    weight: Decimal = Field(gt=0, le=100, description="Relative weight of the field among its entity's.")
    level: Literal["required", "desired"] = Field(
        default="desired",
        description="required: a record without it is hard to use (documentation; the weight decides "
        "how much it counts); desired: nice to have.",
    )


class Completeness(_Strict):
    """The fields whose presence is scored, per entity. Completeness is the weighted share of these
    fields present, pooled over the run's donors and gifts: the sum of the weights of the fields
    present over every record, divided by the sum of every record's full weight."""

    donors: dict[DonorField, FieldRule] = Field(
        min_length=1, description="Fields of the golden donor records the run's donors resolved to."
    )
    gifts: dict[GiftField, FieldRule] = Field(
        default_factory=dict, description="Fields of the core gifts the run's gifts resolved to."
    )


class ConsentCoverage(_Strict):
    """What counts as an explicit consent state for the consent coverage figure."""

    purpose: Purpose = Field(default="marketing", description="Purpose of the consent state read.")
    channel: Channel = Field(default="email", description="Channel of the consent state read.")
    explicit: list[Status] = Field(
        default_factory=lambda: list(_EXPLICIT),
        min_length=1,
        description="Statuses that count as an explicit choice (a soft opt-in is implied, not chosen).",
    )

    @field_validator("explicit")
    @classmethod
    def _unique(cls, value: list[Status]) -> list[Status]:
        if len(set(value)) != len(value):
            raise ValueError("lists a status twice")
        return value


class ScoreWeights(_Strict):
    """How the four figures combine into the score: a weighted mean of completeness, validity,
    1 - duplicate_rate and consent coverage, over the figures the run has (a run that resolved
    nothing has no duplicate rate)."""

    completeness: Decimal = Field(ge=0, description="Weight of completeness.")
    validity: Decimal = Field(ge=0, description="Weight of validity.")
    duplicate_rate: Decimal = Field(ge=0, description="Weight of 1 - duplicate_rate.")
    consent_coverage: Decimal = Field(ge=0, description="Weight of consent coverage.")

    @model_validator(mode="after")
    def _some_weight(self) -> ScoreWeights:
        if not any(getattr(self, name) > 0 for name in COMPONENTS):
            raise ValueError("at least one weight must be above 0")
        return self

    def of(self, component: str) -> Decimal:
        """Return the weight of ``component`` (one of :data:`COMPONENTS`)."""
        weight: Decimal = getattr(self, component)
        return weight


class QualitySettings(_Strict):
    """The whole of quality.yaml."""

    version: Literal[1] = Field(description="Format version of the file.")
    completeness: Completeness
    consent: ConsentCoverage = Field(default_factory=ConsentCoverage)
    score: ScoreWeights


def default_quality_path() -> Path:
    """Return the shipped file, ``include/mappings/quality.yaml``."""
    return include_dir() / "mappings" / "quality.yaml"


def load_quality_settings(path: Path | None = None) -> QualitySettings:
    """Load and validate the scorecard settings (default: the shipped file).

    :raises donor_sync.errors.ConfigError: naming the file, the line and the field of every problem.
    """
    return load_yaml_model(path or default_quality_path(), QualitySettings)
