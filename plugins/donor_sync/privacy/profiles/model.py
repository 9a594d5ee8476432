"""PII minimization profiles, ``include/mappings/privacy/profiles/<destination>.yaml``.

A profile says, per kind of core row (donor, household, gift, recurring_plan), what of it may go
to one destination for its use case:

* ``fields`` -- the fields that go at all. Default (the key left out): exactly the fields the
  destination's mapping reads; every other field is removed from the row before rendering.
* ``pseudonymize`` -- fields sent as HMAC-SHA256 hex under the ``pseudonym`` key ring instead of
  their value (the same value always gives the same pseudonym, so records stay joinable).
* ``generalize`` -- fields sent coarser: ``year`` (a date becomes its year), ``{prefix: N}`` (text
  cut to its first N characters: a postcode district), ``{bands: [...]}`` (a number becomes the
  band it falls in, ``"100-500"``; below the first bound ``"<100"``, from the last ``"1000+"``).
* ``exclude`` -- fields never sent, even if a mapping comes to read them: a mapping that reads an
  excluded field is a validation error (``donor-sync privacy profiles validate``), and the gate
  refuses to run with it, rather than silently sending something else than the mapping says.

A destination without a profile file gets the default: what its mapping reads, as is.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

Kind = Literal["donor", "household", "gift", "recurring_plan"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prefix(_Strict):
    """Keep the first ``prefix`` characters of a text (a postcode's outward part)."""

    prefix: int = Field(ge=1, le=20, description="Characters kept.")


class Bands(_Strict):
    """Replace a number by the band it falls in."""

    bands: list[Decimal] = Field(min_length=1, description="Ascending band bounds.")

    @field_validator("bands")
    @classmethod
    def _ascending(cls, value: list[Decimal]) -> list[Decimal]:
        if any(b <= a for a, b in pairwise(value)):
            raise ValueError("band bounds must be strictly ascending")
        return value


Generalizer = Literal["year"] | Prefix | Bands


class KindProfile(_Strict):
    """What of one kind of core row goes to the destination."""

    fields: list[str] | None = Field(
        default=None, description="Fields that go at all (default: what the mapping reads)."
    )
    pseudonymize: list[str] = Field(default_factory=list, description="Fields sent as keyed hashes.")
    generalize: dict[str, Generalizer] = Field(
        default_factory=dict, description="Fields sent coarser: `year`, `{prefix: N}`, `{bands: [...]}`."
    )
    exclude: list[str] = Field(default_factory=list, description="Fields never sent.")

    @model_validator(mode="after")
    def _disjoint(self) -> KindProfile:
        groups = {
            "pseudonymize": set(self.pseudonymize),
            "generalize": set(self.generalize),
            "exclude": set(self.exclude),
        }
        names = list(groups)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                both = groups[a] & groups[b]
                if both:
                    raise ValueError(f"{', '.join(sorted(both))} both in {a} and {b}")
        if self.fields is not None:
            left_out = (groups["pseudonymize"] | groups["generalize"]) - set(self.fields)
            if left_out:
                raise ValueError(f"{', '.join(sorted(left_out))} transformed but not in fields")
            both = set(self.fields) & groups["exclude"]
            if both:
                raise ValueError(f"{', '.join(sorted(both))} both in fields and exclude")
        return self

    def named_fields(self) -> set[str]:
        """Return every field the profile names."""
        return set(self.fields or ()) | set(self.pseudonymize) | set(self.generalize) | set(self.exclude)


class Profile(_Strict):
    """One destination's minimization profile."""

    version: Literal[1] = Field(default=1, description="File format version.")
    destination: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="Destination name.")
    use_case: str = Field(min_length=1, description="What the destination uses the data for.")
    kinds: dict[Kind, KindProfile] = Field(default_factory=dict, description="Rules per kind of core row.")

    @model_validator(mode="after")
    def _known_fields(self) -> Profile:
        for kind, rules in self.kinds.items():
            unknown = sorted(rules.named_fields() - set(SOURCE_FIELDS[kind]))
            if unknown:
                raise ValueError(f"kinds.{kind}: not {kind} source fields: {', '.join(unknown)}")
        return self

    def for_kind(self, kind: str) -> KindProfile:
        """Return the rules of ``kind`` (the default rules when the profile names none)."""
        found = self.kinds.get(kind)  # type: ignore[call-overload]
        return found if isinstance(found, KindProfile) else KindProfile()


def profiles_dir() -> Path:
    """Return the folder of the shipped profiles."""
    return include_dir() / "mappings" / "privacy" / "profiles"


def profile_path(destination: str) -> Path:
    """Return the shipped profile file of ``destination`` (it may not exist)."""
    return profiles_dir() / f"{destination}.yaml"


def load_profile(path: Path) -> Profile:
    """Load and validate a profile file; :raises ConfigError: naming file, line and field."""
    return load_yaml_model(path, Profile)


def profile_for(destination: str, path: Path | None = None) -> Profile:
    """Return ``destination``'s profile: the file at ``path`` or the shipped one, else the default."""
    path = path or profile_path(destination)
    if not path.exists():
        return Profile(destination=destination, use_case="default: what the mapping reads")
    profile = load_profile(path)
    if profile.destination != destination:
        from donor_sync.errors import ConfigError

        raise ConfigError(f"{path}: destination: is {profile.destination!r}, expected {destination!r}")
    return profile
