"""Journey rules, ``include/mappings/journeys.yaml``, as pydantic models.

A journey says which gifts enter it (an entry point and conditions on the gift, the donor and
their giving history), where its trigger goes (a Mailchimp customer-journey step or a Braze
canvas or campaign, with trigger properties), and how it is guarded: the consent it needs, the
suppression reasons that keep a donor out, a frequency cap, quiet hours in the donor's time zone,
and an optional experiment (A/B variants and a holdout). ``docs/journeys.md`` is generated from
these models (:mod:`donor_sync.journeys.rules_doc`). Errors name the file, the line and the field.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

MAILCHIMP = "mailchimp"
BRAZE = "braze"
_ID = r"^[a-z][a-z0-9_]{0,62}$"

Purpose = Literal["marketing", "fundraising", "profiling", "sharing"]
Channel = Literal["email", "sms", "phone", "mail"]
Status = Literal["opt_in", "soft_opt_in", "opt_out"]
#: Suppression reasons a journey may list, in the order they are reported when several apply.
#: ``deceased`` and ``do_not_contact`` also read the donor's own flags, ``minor`` the birth date.
SuppressionReason = Literal[
    "deceased",
    "do_not_contact",
    "minor",
    "do_not_solicit",
    "in_memoriam_only",
    "bounced",
    "cleaned",
    "complained",
    "manual",
]
SUPPRESSION_ORDER: tuple[str, ...] = SuppressionReason.__args__  # type: ignore[attr-defined]
#: Every reason code an enrollment can carry, with what it means, in the order the gate checks them.
REASON_CODES: dict[str, str] = {
    "erased": "the donor was erased (or an identifier matches an erasure tombstone)",
    "deceased": "a deceased suppression, or the donor's deceased flag",
    "do_not_contact": "a do-not-contact suppression, or the donor's do-not-contact flag",
    "minor": "a minor suppression, or a birth date younger than defaults.adult_age",
    "do_not_solicit": "a do-not-solicit suppression",
    "in_memoriam_only": "the donor is to receive in-memoriam messages only (other journeys refused)",
    "bounced": "the address bounced (suppression pulled back from the email platform)",
    "cleaned": "the email platform cleaned the address",
    "complained": "the donor marked a message as spam",
    "manual": "a staff suppression",
    "no_email": "a Mailchimp journey and the donor has no email address",
    "no_consent": "no consent state (or an expired or refused one) for the journey's purpose and channel",
    "residency": "the destination privacy policy keeps the donor's residency region away from it",
    "do_not_share": "a CCPA sharing opt-out and the destination counts as sharing",
    "no_privacy_policy": "include/mappings/privacy/destinations.yaml does not name the destination",
    "frequency_cap": "status capped: the donor reached the journey's frequency cap",
    "quiet_hours": "status pending: inside the donor's quiet hours, queued by the next run after them",
    "trigger_dead_lettered": "status failed: the trigger dead-lettered (replaying it reopens the enrollment)",
    "trigger_canceled": "status failed: the trigger was canceled before it was sent",
}

#: Gift fields a trigger property may carry (no PII: tribute names and donor fields are not offered).
PROPERTY_FIELDS: tuple[str, ...] = (
    "gift_key",
    "amount",
    "currency",
    "amount_base",
    "gift_date",
    "designation",
    "campaign",
    "tribute_type",
    "is_recurring",
    "recurring_interval",
    "installment_number",
    "source",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- entry points ------------------------------------------------------------------------------


class FirstGift(_Strict):
    """The donor's first counted gift (no earlier succeeded gift of theirs or of a donor merged into them)."""

    type: Literal["first_gift"]


class MajorGift(_Strict):
    """A gift at or above a threshold in the reporting currency (``amount_base``; the amount itself
    when the gift is in the reporting currency)."""

    type: Literal["major_gift"]
    threshold: Decimal = Field(gt=0, description="Smallest amount, in the reporting currency.")


class RecurringStarted(_Strict):
    """The first installment of a recurring plan (installment 1, or the plan's earliest gift)."""

    type: Literal["recurring_started"]


class RecurringFailed(_Strict):
    """A failed installment payment of a recurring plan."""

    type: Literal["recurring_failed"]


class RecurringLapsed(_Strict):
    """A plan that became lapsed; the entry is keyed by the plan's latest gift."""

    type: Literal["recurring_lapsed"]


class DesignationEntry(_Strict):
    """A gift to one of the designations listed."""

    type: Literal["designation"]
    designations: list[str] = Field(min_length=1, description="Designations (exact, as in core.gifts).")


class CampaignEntry(_Strict):
    """A gift to one of the campaigns listed."""

    type: Literal["campaign"]
    campaigns: list[str] = Field(min_length=1, description="Campaigns (exact, as in core.gifts).")


class TributeEntry(_Strict):
    """A gift in honor of someone (``tribute_type`` in_honor)."""

    type: Literal["tribute"]


class InMemoriamEntry(_Strict):
    """A gift in memory of someone (``tribute_type`` in_memory)."""

    type: Literal["in_memoriam"]


Entry = Annotated[
    FirstGift
    | MajorGift
    | RecurringStarted
    | RecurringFailed
    | RecurringLapsed
    | DesignationEntry
    | CampaignEntry
    | TributeEntry
    | InMemoriamEntry,
    Field(discriminator="type"),
]


class Conditions(_Strict):
    """Further conditions on the gift, the donor and their history; every one set must hold."""

    amount_min: Decimal | None = Field(
        default=None, ge=0, description="Gift amount at least (reporting currency)."
    )
    amount_max: Decimal | None = Field(
        default=None, ge=0, description="Gift amount at most (reporting currency)."
    )
    frequency: Literal["any", "one_time", "recurring"] = Field(
        default="any", description="One-time gifts, installments of a recurring plan, or both."
    )
    designations: list[str] | None = Field(default=None, description="Gift designation is one of these.")
    campaigns: list[str] | None = Field(default=None, description="Gift campaign is one of these.")
    sources: list[str] | None = Field(default=None, description="Platform the gift was first seen on.")
    lifetime_giving_min: Decimal | None = Field(
        default=None, ge=0, description="Donor's lifetime giving at least."
    )
    lifetime_giving_max: Decimal | None = Field(
        default=None, ge=0, description="Donor's lifetime giving at most."
    )
    gift_count_min: int | None = Field(default=None, ge=0, description="Donor's gift count at least.")
    gift_count_max: int | None = Field(default=None, ge=0, description="Donor's gift count at most.")
    days_since_previous_gift_min: int | None = Field(
        default=None,
        ge=0,
        description="Days between the donor's previous counted gift and this one at least "
        "(a donor with no previous gift passes: use first_gift for those).",
    )
    days_since_previous_gift_max: int | None = Field(
        default=None, ge=0, description="Days since the previous counted gift at most (none: fails)."
    )
    countries: list[str] | None = Field(default=None, description="Donor's country code is one of these.")

    @model_validator(mode="after")
    def _ranges(self) -> Conditions:
        for low, high in (
            ("amount_min", "amount_max"),
            ("lifetime_giving_min", "lifetime_giving_max"),
            ("gift_count_min", "gift_count_max"),
            ("days_since_previous_gift_min", "days_since_previous_gift_max"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} is above {high}")
        return self


# -- destinations ------------------------------------------------------------------------------


class MailchimpTarget(_Strict):
    """A Mailchimp customer-journey step with an API trigger (the donor must be a subscribed member)."""

    journey_id: int = Field(gt=0, description="Customer journey id.")
    step_id: int = Field(gt=0, description="Id of its 'API trigger' starting step.")


class BrazeTarget(_Strict):
    """A Braze canvas or campaign with an API trigger; recipients by external id (the donor id)."""

    canvas_id: str | None = Field(default=None, min_length=1, description="API-triggered canvas id.")
    campaign_id: str | None = Field(default=None, min_length=1, description="API-triggered campaign id.")

    @model_validator(mode="after")
    def _one(self) -> BrazeTarget:
        if (self.canvas_id is None) == (self.campaign_id is None):
            raise ValueError("set exactly one of canvas_id and campaign_id")
        return self


class Destination(_Strict):
    """Where the trigger goes: exactly one of ``mailchimp`` or ``braze``."""

    mailchimp: MailchimpTarget | None = Field(default=None, description="Mailchimp journey step.")
    braze: BrazeTarget | None = Field(default=None, description="Braze canvas or campaign.")

    @model_validator(mode="after")
    def _one(self) -> Destination:
        if (self.mailchimp is None) == (self.braze is None):
            raise ValueError("set exactly one of mailchimp and braze")
        return self

    @property
    def name(self) -> str:
        """The destination system (``mailchimp`` or ``braze``)."""
        return MAILCHIMP if self.mailchimp is not None else BRAZE


class ConsentNeed(_Strict):
    """The consent a donor needs to enter (``core.consent_state`` of the channel; none = no consent)."""

    purpose: Purpose = Field(description="Consent purpose.")
    channel: Channel = Field(description="Channel the journey messages on.")
    status_in: list[Status] = Field(min_length=1, description="Statuses that allow entry.")


class FrequencyCap(_Strict):
    """At most ``max_entries`` entries per donor within ``window_days`` (pending, triggered and
    holdout entries count; suppressed and capped ones do not)."""

    max_entries: int = Field(ge=1, description="Entries allowed in the window.")
    window_days: int = Field(ge=1, le=3660, description="Window length in days.")
    scope: Literal["journey", "destination"] = Field(
        default="destination",
        description="Count the donor's entries into this journey only, or into every journey of the "
        "same destination.",
    )


class QuietHours(_Strict):
    """A daily window in the donor's local time when no trigger is queued (it waits, pending,
    for the next run after the window); ``start`` later than ``end`` spans midnight."""

    start: time = Field(description="Local time the quiet window starts (HH:MM).")
    end: time = Field(description="Local time it ends (HH:MM).")

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are equal: an empty window; remove quiet_hours instead")
        return self


class Variant(_Strict):
    """One arm of an experiment: its weight and, optionally, its own journey step or canvas."""

    name: str = Field(pattern=_ID, description="Variant name, recorded in the enrollment.")
    weight: Decimal = Field(gt=0, description="Relative share of the non-holdout donors.")
    destination: Destination | None = Field(
        default=None, description="Another step or canvas for this arm (same destination system)."
    )


class Experiment(_Strict):
    """A/B test and holdout, assigned per donor by a keyed hash (``pseudonym`` key ring) of the
    donor id and the experiment id: the same donor always gets the same arm, and a donor already
    assigned keeps their arm across key rotations."""

    id: str = Field(pattern=_ID, description="Experiment id, recorded in the enrollment.")
    holdout: Decimal = Field(
        default=Decimal(0), ge=0, lt=1, description="Share of donors held out (enrolled, never triggered)."
    )
    variants: list[Variant] = Field(min_length=1, description="Arms sharing the rest by weight.")

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names) or "holdout" in names:
            raise ValueError("variant names must be unique and not 'holdout'")
        return value


class Journey(_Strict):
    """One stewardship journey."""

    id: str = Field(pattern=_ID, description="Journey id (sync.journey_enrollments.journey_id).")
    description: str = Field(default="", description="What the journey is for.")
    enabled: bool = Field(default=True, description="Disabled journeys enroll nobody.")
    entry: Entry = Field(description="Entry point (see the entry types below).")
    conditions: Conditions = Field(default_factory=Conditions, description="Further conditions.")
    destination: Destination = Field(description="Where the trigger goes.")
    trigger_properties: dict[str, str] = Field(
        default_factory=dict,
        description="Braze trigger (canvas entry) properties: property name -> gift field "
        f"({', '.join(PROPERTY_FIELDS)}). Mailchimp triggers carry none.",
    )
    priority: int = Field(
        default=100, ge=0, le=1000, description="Lower wins when the frequency cap admits only some entries."
    )
    consent: ConsentNeed | None = Field(default=None, description="Overrides defaults.consent.")
    suppressions: list[SuppressionReason] | None = Field(
        default=None, description="Overrides defaults.suppressions."
    )
    frequency_cap: FrequencyCap | None = Field(default=None, description="Overrides defaults.frequency_cap.")
    quiet_hours: QuietHours | None = Field(default=None, description="Overrides defaults.quiet_hours.")
    respect_quiet_hours: bool = Field(default=True, description="False: trigger at any hour.")
    experiment: Experiment | None = Field(default=None, description="A/B variants and holdout.")

    @field_validator("trigger_properties")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(f for f in value.values() if f not in PROPERTY_FIELDS)
        if unknown:
            raise ValueError(f"not trigger property fields: {', '.join(unknown)}")
        bad = sorted(k for k in value if not k or not k.replace("_", "").isalnum())
        if bad:
            raise ValueError(f"property names must be letters, digits and underscores: {bad}")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Journey:
        if self.destination.mailchimp is not None and self.trigger_properties:
            raise ValueError("trigger_properties: Mailchimp journey triggers carry no properties")
        if self.experiment is not None:
            for variant in self.experiment.variants:
                if variant.destination is not None and variant.destination.name != self.destination.name:
                    raise ValueError(
                        f"experiment.variants.{variant.name}.destination must be {self.destination.name}"
                    )
        return self


class Defaults(_Strict):
    """What a journey uses unless it sets its own."""

    consent: ConsentNeed = Field(description="Consent needed to enter.")
    suppressions: list[SuppressionReason] = Field(description="Suppression reasons that keep a donor out.")
    frequency_cap: FrequencyCap | None = Field(default=None, description="Cap per donor and window.")
    quiet_hours: QuietHours | None = Field(default=None, description="Local quiet window.")
    adult_age: int = Field(default=18, ge=13, le=21, description="Donors younger (by birth_date) are minors.")
    max_gift_age_days: int = Field(
        default=14,
        ge=1,
        description="Gifts older than this (by gift_at) never enter: a first run or a backfill of "
        "old gifts must not send thank-yous for them.",
    )


class DestinationSettings(_Strict):
    """How triggers of one destination system are queued."""

    depends_on_entity: str | None = Field(
        default=None,
        pattern=_ID,
        description="Outbox entity of the donor's record there (record key = donor id); the trigger "
        "waits for it to land. Null: no dependency.",
    )
    outbox_priority: int = Field(default=50, ge=0, le=32767, description="sync.outbox priority of triggers.")


class TimeZones(_Strict):
    """How a donor's time zone is found for quiet hours, first that is known: ``core.donors.time_zone``;
    the donor's country and region in ``by_region``; a country with a single time zone (tz
    database); the organization's time zone (include/mappings/giving.yaml)."""

    by_region: dict[str, list[str]] = Field(
        default_factory=dict,
        description="IANA zone -> `CC-REGION` codes (country and region as in core.donors).",
    )

    @field_validator("by_region")
    @classmethod
    def _zones(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for zone in value:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {zone!r}") from None
        return value


class JourneyRules(_Strict):
    """The whole file."""

    version: Literal[1] = Field(description="File format version.")
    defaults: Defaults = Field(description="Defaults for every journey.")
    destinations: dict[Literal["mailchimp", "braze"], DestinationSettings] = Field(
        default_factory=dict, description="Per destination system."
    )
    time_zones: TimeZones = Field(default_factory=TimeZones, description="Time-zone fallbacks.")
    journeys: list[Journey] = Field(default_factory=list, description="The journeys.")

    @field_validator("journeys")
    @classmethod
    def _unique_ids(cls, value: list[Journey]) -> list[Journey]:
        seen: set[str] = set()
        for journey in value:
            if journey.id in seen:
                raise ValueError(f"journey id {journey.id!r} is used twice")
            seen.add(journey.id)
        return value

    @model_validator(mode="after")
    def _experiments(self) -> JourneyRules:
        owners: dict[str, str] = {}
        for journey in self.journeys:
            if journey.experiment is not None:
                other = owners.setdefault(journey.experiment.id, journey.id)
                if other != journey.id:
                    raise ValueError(
                        f"experiment {journey.experiment.id!r} is used by journeys {other!r} "
                        f"and {journey.id!r}"
                    )
        return self

    # -- resolved settings ---------------------------------------------------------------------
    def journey(self, journey_id: str) -> Journey:
        """Return the journey ``journey_id`` (KeyError when there is none)."""
        for journey in self.journeys:
            if journey.id == journey_id:
                return journey
        raise KeyError(journey_id)

    def consent_of(self, journey: Journey) -> ConsentNeed:
        return journey.consent or self.defaults.consent

    def suppressions_of(self, journey: Journey) -> list[str]:
        return list(journey.suppressions if journey.suppressions is not None else self.defaults.suppressions)

    def cap_of(self, journey: Journey) -> FrequencyCap | None:
        return journey.frequency_cap or self.defaults.frequency_cap

    def quiet_hours_of(self, journey: Journey) -> QuietHours | None:
        if not journey.respect_quiet_hours:
            return None
        return journey.quiet_hours or self.defaults.quiet_hours

    def destination_settings(self, destination: str) -> DestinationSettings:
        found: DestinationSettings | None = self.destinations.get(destination)  # type: ignore[call-overload]
        return found if found is not None else DestinationSettings()


def default_rules_path() -> Path:
    """Return ``include/mappings/journeys.yaml``."""
    return include_dir() / "mappings" / "journeys.yaml"


def load_rules(path: Path | None = None) -> JourneyRules:
    """Load and validate the journey rules.

    :raises donor_sync.errors.ConfigError: naming the file, the line and the field of every problem.
    """
    return load_yaml_model(path or default_rules_path(), JourneyRules)
