"""The destination privacy policy, ``include/mappings/privacy/destinations.yaml``, as pydantic models.

Per destination: its data ``region``, whether it counts as selling or sharing under CCPA
(``sharing``), the consent a donor needs to be sent there at all (``requires``), the suppression
reasons that keep a donor out entirely (``suppressions``), and the donor fields that go only with
a given consent (``fields_requiring_consent``). Then the residency policy: which destination
regions may receive the data of a donor resident in a region.

A destination the file does not name receives nothing: the gate refuses to run for it (privacy by
default), so adding a destination means writing its policy first.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.errors import ConfigError
from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

Purpose = Literal["marketing", "fundraising", "profiling", "sharing"]
Channel = Literal["email", "sms", "phone", "mail", "all"]
Status = Literal["opt_in", "soft_opt_in", "opt_out"]
#: Reason codes of ``core.suppressions`` (0004_core.sql); ``deceased`` and ``do_not_contact`` are
#: also read from the donor's own flags.
SuppressionReason = Literal[
    "deceased",
    "do_not_contact",
    "do_not_solicit",
    "bounced",
    "cleaned",
    "complained",
    "in_memoriam_only",
    "minor",
    "manual",
]
_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_REGION = r"^[a-z][a-z0-9_-]{0,31}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsentCondition(_Strict):
    """A consent state the donor must be in: purpose, channel and the statuses that satisfy it.

    No ``core.consent_state`` row (or an expired one) means no consent: it satisfies nothing.
    """

    purpose: Purpose = Field(description="Consent purpose.")
    channel: Channel = Field(description="Consent channel (a state on channel `all` also counts).")
    status_in: list[Status] = Field(min_length=1, description="Statuses that satisfy the condition.")

    def describe(self) -> str:
        """Return the condition as one line of text."""
        return f"{self.purpose}/{self.channel} in {', '.join(self.status_in)}"


class FieldConsentRule(ConsentCondition):
    """Donor fields sent only when the donor is in a consent state; else withheld (sent as empty)."""

    fields: list[str] = Field(min_length=1, description="Donor source fields the rule guards.")

    @field_validator("fields")
    @classmethod
    def _donor_fields(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in SOURCE_FIELDS["donor"]]
        if unknown:
            raise ValueError(f"not donor source fields: {', '.join(unknown)}")
        return value


class DestinationPolicy(_Strict):
    """What one destination may receive."""

    region: str = Field(pattern=_REGION, description="Where the destination keeps data (us, eu...).")
    sharing: bool = Field(
        description="The destination counts as selling or sharing under CCPA: a donor with a "
        "`sharing` opt-out on channel `all` never reaches it."
    )
    requires: list[ConsentCondition] = Field(
        default_factory=list,
        description="Consent a donor needs to be sent at all (every condition must hold).",
    )
    suppressions: list[SuppressionReason] = Field(
        default_factory=list,
        description="Active suppression reasons (any channel, destination `*` or this one) that keep "
        "a donor out entirely.",
    )
    fields_requiring_consent: list[FieldConsentRule] = Field(
        default_factory=list, description="Donor fields sent only with a given consent."
    )
    description: str = Field(default="", description="What the destination is used for.")


class ResidencyRule(_Strict):
    """Destinations a resident of ``donor_region`` may be sent to."""

    donor_region: str = Field(pattern=_REGION, description="Residency region of the donor.")
    allowed_destination_regions: list[str] = Field(
        min_length=1, description="Destination regions allowed for these donors."
    )


class Residency(_Strict):
    """How a donor's residency region is found, and where its data may go."""

    regions: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Region -> ISO country codes. A country listed nowhere is its own region "
        "(its lower-case code: `us`, `ca`).",
    )
    rules: list[ResidencyRule] = Field(default_factory=list, description="Residency rules.")

    @field_validator("regions")
    @classmethod
    def _countries(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for region, countries in value.items():
            for code in countries:
                if len(code) != 2 or not code.isalpha() or not code.isupper():
                    raise ValueError(f"{region}: {code!r} is not an upper-case ISO 3166 country code")
                if code in seen and seen[code] != region:
                    raise ValueError(f"{code} is in both {seen[code]} and {region}")
                seen[code] = region
        return value

    def region_of_country(self, country_code: str | None) -> str | None:
        """Return the residency region of a country (None for no country)."""
        if not country_code:
            return None
        code = country_code.upper()
        for region, countries in self.regions.items():
            if code in countries:
                return region
        return code.lower()

    def allowed(self, donor_region: str | None, destination_region: str) -> bool:
        """Return whether a resident of ``donor_region`` may be sent to ``destination_region``.

        A donor of unknown residency, or of a region no rule names, is not restricted.
        """
        for rule in self.rules:
            if (
                rule.donor_region == donor_region
                and destination_region not in rule.allowed_destination_regions
            ):
                return False
        return True


class PrivacyPolicy(_Strict):
    """The whole file."""

    version: Literal[1] = Field(default=1, description="File format version.")
    destinations: dict[str, DestinationPolicy] = Field(description="Policy per destination name.")
    residency: Residency = Field(default_factory=Residency, description="Data residency policy.")

    @field_validator("destinations")
    @classmethod
    def _names(cls, value: dict[str, DestinationPolicy]) -> dict[str, DestinationPolicy]:
        import re

        bad = [name for name in value if not re.match(_NAME, name)]
        if bad:
            raise ValueError(f"destination names must be lower snake case: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _known_regions(self) -> PrivacyPolicy:
        names = {rule.donor_region for rule in self.residency.rules}
        if len(names) != len(self.residency.rules):
            raise ValueError("residency.rules: a donor region is listed twice")
        return self

    def for_destination(self, destination: str, *, path: Path | None = None) -> DestinationPolicy:
        """Return ``destination``'s policy.

        :raises ConfigError: the file names no such destination (it receives nothing until it does).
        """
        try:
            return self.destinations[destination]
        except KeyError:
            where = path or policy_path()
            raise ConfigError(
                f"{where}: destinations.{destination}: no privacy policy for destination "
                f"{destination!r}; it receives nothing until one is written (known: "
                f"{', '.join(sorted(self.destinations)) or 'none'})"
            ) from None


def policy_path() -> Path:
    """Return the shipped policy file."""
    return include_dir() / "mappings" / "privacy" / "destinations.yaml"


def load_policy(path: Path | None = None) -> PrivacyPolicy:
    """Load and validate the policy file (default: the shipped one).

    :raises ConfigError: naming the file, line and field of every problem.
    """
    if path is None:
        return _shipped()
    return load_yaml_model(path, PrivacyPolicy)


@cache
def _shipped_at(path: Path, mtime: float) -> PrivacyPolicy:
    return load_yaml_model(path, PrivacyPolicy)


def _shipped() -> PrivacyPolicy:
    path = policy_path()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return _shipped_at(path, mtime)
