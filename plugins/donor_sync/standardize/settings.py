"""The standardization rules file, ``include/mappings/standardize.yaml``, as validated models.

Every knob of the standardize stage lives here: defaults for the field standardizers, the action
taken for each issue code, record-level rules per kind of record, status and interval vocabularies,
review-flag thresholds, test-payment detection, the gift-key rule and the entities deliberately
not staged. ``docs/standardize-rules.md`` is generated from these models' descriptions
(:mod:`donor_sync.standardize.rules_doc`), so the reference cannot drift from the code.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.paths import include_dir
from donor_sync.standardize.intake import INTAKE_FIELDS
from donor_sync.yaml_source import load_yaml_model

Action = Literal["quarantine", "drop_value", "flag", "ignore"]
GiftStatus = Literal[
    "pending", "succeeded", "failed", "refunded", "partially_refunded", "disputed", "canceled"
]
Interval = Literal["day", "week", "month", "quarter", "year"]
ConsentChannel = Literal["email", "sms", "phone", "mail", "all"]
ConsentPurpose = Literal["marketing", "fundraising", "profiling", "sharing"]
ConsentStatus = Literal["opt_in", "soft_opt_in", "opt_out"]

_SNAKE = r"^[a-z][a-z0-9_]*$"


def default_rules_path() -> Path:
    """Return the shipped rules file."""
    return include_dir() / "mappings" / "standardize.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    """Defaults handed to the field standardizers."""

    default_region: str = Field(
        default="US",
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 region assumed for phone numbers written without a country code "
        "when the record has no country.",
    )
    default_country: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="Country assumed for addresses without one (none: leave the country empty).",
    )
    allow_special_use_domains: list[str] = Field(
        default_factory=list,
        description="Special-use domains (RFC 6761: example, test, invalid, localhost...) accepted in "
        "email addresses. The sandbox's sample data uses example.* domains, so the shipped file "
        "allows 'example'; production should remove it.",
    )
    future_tolerance_minutes: float = Field(
        default=5,
        ge=0,
        description="How far in the future a gift time may be (clock skew) before it is an error.",
    )
    timezone: str = Field(default="UTC", description="Time zone of API timestamps written without an offset.")


class GiftRules(_Strict):
    """What a gift needs to be staged. A failed rule is an issue whose action ``issue_actions`` sets."""

    require_source_id: bool = Field(
        default=True, description="A gift needs its source id (code missing_gift_source_id)."
    )
    require_currency: bool = Field(
        default=True, description="A gift needs a known ISO 4217 currency (code missing_currency)."
    )
    require_gift_at: bool = Field(
        default=True, description="A gift needs the time it was made (code missing_gift_at)."
    )
    min_amount_exclusive: Decimal = Field(
        default=Decimal(0),
        description="The amount must be above this (code non_positive_amount; missing: missing_amount).",
    )
    max_amount: dict[str, Decimal] = Field(
        default_factory=lambda: {"default": Decimal(1_000_000)},
        description="Largest plausible amount in major units per currency, 'default' for the rest "
        "(code amount_above_max).",
    )

    @field_validator("max_amount")
    @classmethod
    def _has_default(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        if "default" not in value:
            raise ValueError("needs a 'default' entry")
        return value


class DonorRules(_Strict):
    """What a donor needs to be staged."""

    require_any_of: list[str] = Field(
        default_factory=lambda: ["first_name", "last_name", "organization_name", "email"],
        description="A donor needs at least one of these standardized fields (code missing_donor_identity).",
    )


class RecordRules(_Strict):
    """Record-level rules per kind of record."""

    gift: GiftRules = Field(default_factory=GiftRules, description="Rules for gifts.")
    donor: DonorRules = Field(default_factory=DonorRules, description="Rules for donors.")


class Statuses(_Strict):
    """How each source's payment status text becomes the staging.gifts status."""

    aliases: dict[GiftStatus, list[str]] = Field(
        description="Status texts (any case) that mean each status, for every source."
    )
    by_source: dict[str, dict[str, GiftStatus]] = Field(
        default_factory=dict, description="Per-source texts that override the aliases."
    )
    missing: GiftStatus | None = Field(
        default="succeeded",
        description="Status of a gift whose source gives none (exports list completed gifts); "
        "none: code missing_status.",
    )


class Recurring(_Strict):
    """Recurring-plan vocabularies."""

    intervals: dict[Interval, list[str]] = Field(
        description="Interval texts (any case) that mean each interval; also read as 'is recurring'."
    )
    one_time: list[str] = Field(description="Texts that mean a one-time gift (not recurring).")


class Tributes(_Strict):
    """How tribute text ('In memory of Jane Doe') becomes a tribute type and honoree."""

    in_memory: list[str] = Field(description="Prefixes or type texts that mean an in-memory gift.")
    in_honor: list[str] = Field(description="Prefixes or type texts that mean an in-honor gift.")


class ConsentFlag(_Strict):
    """The consent signal a true flag stands for."""

    channel: ConsentChannel = Field(description="Channel the choice covers (core.consent_channel).")
    purpose: ConsentPurpose = Field(description="Purpose it covers (core.consent_purpose).")
    status: ConsentStatus = Field(description="The choice (core.consent_status).")


class EmailShared(_Strict):
    """email_shared: one email on several different people."""

    enabled: bool = Field(default=True, description="Check incoming donors' emails.")
    same_name_similarity: float = Field(
        default=80,
        ge=0,
        le=100,
        description="Two names sharing an email are the same person when both their first names and "
        "their last names are at least this similar (rapidfuzz ratio, 0-100) or one first name "
        "starts with the other (initials, short forms); otherwise the email is shared.",
    )


class OutlierAmount(_Strict):
    """outlier_amount: gifts far above what is usual."""

    enabled: bool = Field(default=True, description="Check staged gifts' amounts.")
    ceiling: dict[str, Decimal] = Field(
        default_factory=lambda: {"default": Decimal(25_000)},
        description="Amount in major units per currency above which a gift is flagged "
        "('default' for the rest).",
    )
    multiple_of_median: Decimal = Field(
        default=Decimal(50),
        gt=0,
        description="A gift is also flagged when above this multiple of the median gift of the same "
        "source and currency in the same chunk of the run (cheap: no history scan).",
    )
    min_sample: int = Field(
        default=50,
        ge=1,
        description="The median is only used when the chunk holds at least this many such gifts.",
    )

    @field_validator("ceiling")
    @classmethod
    def _has_default(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        if "default" not in value:
            raise ValueError("needs a 'default' entry")
        return value


class ReviewFlags(_Strict):
    """Suspicious data: staged, with a review flag."""

    email_shared: EmailShared = Field(default_factory=EmailShared, description="See below.")
    outlier_amount: OutlierAmount = Field(default_factory=OutlierAmount, description="See below.")
    sql_like_patterns: list[str] = Field(
        default_factory=list,
        description="Regular expressions (case-insensitive) that make a text field look like SQL "
        "injection (code sql_like); the value is kept, parameterized writes make it harmless.",
    )


class TestPayments(_Strict):
    """Test-mode and test-card payments: staged with is_test and a test_payment flag."""

    expect_livemode: dict[str, bool | Literal["auto"]] = Field(
        default_factory=dict,
        description="Per source: true when its payments should be live (a livemode=false payment is "
        "then a test payment); false for a test account; 'auto' to decide from the API key the "
        "extractor uses (sk_live_/rk_live_: true, sk_test_/rk_test_: false), resolved by the "
        "standardize task; unresolved 'auto' counts as true.",
    )
    test_card_last4: list[str] = Field(
        default_factory=list,
        description="Last four digits of the processors' published test cards. They mark a payment as "
        "a test only when its source does not say whether it was live (a live-mode charge cannot use "
        "a test card, so there a match is a real card).",
    )

    @field_validator("test_card_last4")
    @classmethod
    def _four_digits(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not (len(v) == 4 and v.isdigit())]
        if bad:
            raise ValueError(f"not four digits: {', '.join(map(repr, bad))}")
        return value


class GiftKeys(_Strict):
    """The cross-platform gift key rule (see :mod:`donor_sync.standardize.gift_keys`)."""

    key_by_platform_id: list[str] = Field(
        default_factory=lambda: ["classy"],
        description="Platforms whose records do not carry the processor's payment id: their gifts are "
        "keyed by the platform's own id, and a processor record naming such a gift takes that key.",
    )


def _default_unknown_actions() -> dict[Literal["error", "warning"], Action]:
    return {"error": "quarantine", "warning": "flag"}


class StandardizeSettings(_Strict):
    """The whole ``standardize.yaml``."""

    defaults: Defaults = Field(default_factory=Defaults, description="Defaults for the field standardizers.")
    chunk_size: int = Field(
        default=100_000,
        ge=1,
        description="Raw records standardized per chunk (by raw_record_id range): bounds memory.",
    )
    max_lengths: dict[str, int] = Field(
        default_factory=lambda: {"default": 500},
        description="Longest text accepted per intake field, 'default' for the rest (code too_long).",
    )
    issue_actions: dict[str, Action] = Field(
        default_factory=dict,
        description="What each issue code does: quarantine the record, drop_value (set it empty and "
        "flag it), flag (stage with a review flag) or ignore.",
    )
    field_actions: dict[str, dict[str, Action]] = Field(
        default_factory=dict, description="Per intake field, actions that override issue_actions."
    )
    unknown_issue_action: dict[Literal["error", "warning"], Action] = Field(
        default_factory=_default_unknown_actions,
        description="Action for an issue code not listed in issue_actions, by its severity.",
    )
    record_rules: RecordRules = Field(default_factory=RecordRules, description="Record-level rules (below).")
    statuses: Statuses = Field(description="Status vocabulary (below).")
    recurring: Recurring = Field(description="Recurring-plan vocabulary (below).")
    tributes: Tributes = Field(description="Tribute vocabulary (below).")
    payment_methods: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Payment method texts (any case) that mean each method; others are kept lower-cased.",
    )
    consent_flags: dict[str, ConsentFlag] = Field(
        default_factory=dict,
        description="Intake flag fields and the consent signal each stands for when true.",
    )
    review_flags: ReviewFlags = Field(
        default_factory=ReviewFlags, description="Suspicious-data checks (below)."
    )
    test_payments: TestPayments = Field(default_factory=TestPayments, description="Test payments (below).")
    gift_keys: GiftKeys = Field(default_factory=GiftKeys, description="Cross-platform gift key (below).")
    skip_entities: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per source, entities deliberately not staged and the disposition reason recorded "
        "for them (e.g. a Stripe payment intent is represented by its charge).",
    )

    @field_validator("max_lengths", "field_actions")
    @classmethod
    def _intake_fields(cls, value: dict[str, object]) -> dict[str, object]:
        unknown = sorted(set(value) - INTAKE_FIELDS - {"default"})
        if unknown:
            raise ValueError(f"not intake fields: {', '.join(unknown)}")
        return value

    @field_validator("consent_flags")
    @classmethod
    def _flag_fields(cls, value: dict[str, ConsentFlag]) -> dict[str, ConsentFlag]:
        unknown = sorted(set(value) - INTAKE_FIELDS)
        if unknown:
            raise ValueError(f"not intake fields: {', '.join(unknown)}")
        return value

    @field_validator("skip_entities")
    @classmethod
    def _snake_reasons(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for source, entities in value.items():
            for entity, reason in entities.items():
                if not re.match(_SNAKE, reason):
                    raise ValueError(f"{source}.{entity}: reason must be lower snake case, got {reason!r}")
        return value

    @model_validator(mode="after")
    def _donor_fields(self) -> StandardizeSettings:
        from donor_sync.standardize.columns import DONOR_COLUMNS

        unknown = sorted(set(self.record_rules.donor.require_any_of) - set(DONOR_COLUMNS))
        if unknown:
            raise ValueError(
                f"record_rules.donor.require_any_of: not staging.donors fields: {', '.join(unknown)}"
            )
        return self

    def action_for(self, code: str, field: str, severity: str) -> Action:
        """Return what an issue with ``code`` on ``field`` does."""
        per_field = self.field_actions.get(field)
        if per_field and code in per_field:
            return per_field[code]
        if code in self.issue_actions:
            return self.issue_actions[code]
        return self.unknown_issue_action["error" if severity == "error" else "warning"]

    def max_length(self, field: str) -> int:
        """Return the longest text accepted in ``field``."""
        return self.max_lengths.get(field, self.max_lengths.get("default", 500))

    def expects_live(self, source: str) -> bool:
        """Return whether ``source``'s payments should be live ('auto' not resolved counts as live)."""
        value = self.test_payments.expect_livemode.get(source, True)
        return value is not False

    def with_expect_livemode(self, source: str, live: bool) -> StandardizeSettings:
        """Return a copy with ``source``'s expected mode set (how the task resolves 'auto')."""
        modes = {**self.test_payments.expect_livemode, source: live}
        payments = self.test_payments.model_copy(update={"expect_livemode": modes})
        return self.model_copy(update={"test_payments": payments})


def load_settings(path: Path | None = None) -> StandardizeSettings:
    """Load and validate the rules file (the shipped one by default).

    :raises ConfigError: naming the file, line and field of every problem.
    """
    return load_yaml_model(path or default_rules_path(), StandardizeSettings)


def livemode_from_api_key(api_key: str) -> bool | None:
    """Return whether a Stripe-style API key is live (``sk_live_``/``rk_live_``), test, or unknown."""
    if "_live_" in api_key[:8]:
        return True
    if "_test_" in api_key[:8]:
        return False
    return None
