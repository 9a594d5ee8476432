"""Giving rules (``include/mappings/giving.yaml``) and the calendar arithmetic they imply.

The settings the gift side of resolve and the donor aggregates share: the organization's time
zone and fiscal year, the reporting currency, which statuses count as giving, which sources are
payment processors, the lapsed-recurring rule and the recency-frequency-monetary segments.
Validated with pydantic; errors name the file, the line and the field
(:func:`donor_sync.yaml_source.load_yaml_model`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

GiftStatus = Literal[
    "pending", "succeeded", "failed", "refunded", "partially_refunded", "disputed", "canceled"
]
Interval = Literal["day", "week", "month", "quarter", "year"]
INTERVALS: tuple[Interval, ...] = ("day", "week", "month", "quarter", "year")

_SNAKE = r"^[a-z][a-z0-9_]*$"
_COUNTED: tuple[GiftStatus, ...] = ("succeeded", "partially_refunded", "refunded")


def default_giving_path() -> Path:
    """Return the shipped giving rules file."""
    return include_dir() / "mappings" / "giving.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecurringRules(_Strict):
    """When a recurring plan counts as lapsed."""

    grace_days: dict[Interval, int] = Field(
        description="Days after one interval past the last successful installment before the plan "
        "is lapsed, per interval unit (every unit needed)."
    )
    default_interval: Interval = Field(
        default="month", description="Interval of a plan whose installments do not name one."
    )

    @field_validator("grace_days")
    @classmethod
    def _every_interval(cls, value: dict[Interval, int]) -> dict[Interval, int]:
        missing = [unit for unit in INTERVALS if unit not in value]
        if missing:
            raise ValueError(f"needs an entry for {', '.join(missing)}")
        if any(days < 0 for days in value.values()):
            raise ValueError("grace days cannot be negative")
        return value


class Segment(_Strict):
    """One RFM segment: a name and bounds on the three 1..5 scores (left out: no bound)."""

    name: str = Field(pattern=_SNAKE, description="Segment name written to core.donors.rfm_segment.")
    min_recency: int = Field(default=1, ge=1, le=5)
    max_recency: int = Field(default=5, ge=1, le=5)
    min_frequency: int = Field(default=1, ge=1, le=5)
    max_frequency: int = Field(default=5, ge=1, le=5)
    min_monetary: int = Field(default=1, ge=1, le=5)
    max_monetary: int = Field(default=5, ge=1, le=5)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Segment:
        for score in ("recency", "frequency", "monetary"):
            if getattr(self, f"min_{score}") > getattr(self, f"max_{score}"):
                raise ValueError(f"min_{score} is above max_{score}: no donor can match")
        return self


def _ascending(values: Sequence[Decimal]) -> None:
    if len(values) != 4:
        raise ValueError("needs four thresholds (scores 1 to 5)")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError("thresholds must be strictly ascending")
    if values[0] < 0:
        raise ValueError("thresholds cannot be negative")


class RfmRules(_Strict):
    """Recency-frequency-monetary scores (1..5 each, from thresholds) and named segments."""

    recency_days: list[int] = Field(
        description="Days since the last gift: score 5 up to the first, 4 up to the second... "
        "1 beyond the last."
    )
    frequency_gifts: list[int] = Field(
        description="Gift counts: score 1 plus how many of these the count reaches."
    )
    monetary: list[Decimal] = Field(
        description="Lifetime giving in the reporting currency: score 1 plus how many of these it reaches."
    )
    segments: list[Segment] = Field(description="Segments, first match wins.")
    default_segment: str = Field(pattern=_SNAKE, description="Segment of a donor no rule matches.")

    @field_validator("recency_days", "frequency_gifts", "monetary")
    @classmethod
    def _thresholds(cls, value: list[int] | list[Decimal]) -> list[int] | list[Decimal]:
        _ascending([Decimal(v) for v in value])
        return value

    @field_validator("segments")
    @classmethod
    def _unique_names(cls, value: list[Segment]) -> list[Segment]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"segment names repeat: {', '.join(dupes)}")
        return value


class GivingSettings(_Strict):
    """Everything ``giving.yaml`` configures."""

    time_zone: str = Field(default="UTC", description="IANA time zone of gift dates and the fiscal year.")
    fiscal_year_start_month: int = Field(
        default=1, ge=1, le=12, description="First month of the fiscal year."
    )
    reporting_currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency of the aggregates.")
    counted_statuses: list[GiftStatus] = Field(
        default_factory=lambda: list(_COUNTED),
        description="Statuses a gift may have to count as giving (net of refunds above zero, not a test).",
    )
    processors: list[str] = Field(
        default_factory=lambda: ["stripe"],
        description="Sources that are payment processors: payment facts from them, gift details "
        "from platforms.",
    )
    recurring: RecurringRules
    rfm: RfmRules

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("processors")
    @classmethod
    def _processor_names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.match(_SNAKE, v)]
        if bad:
            raise ValueError(f"not a source name: {', '.join(bad)}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        """Return the organization's time zone."""
        return ZoneInfo(self.time_zone)

    def today(self, now: datetime) -> date:
        """Return the organization's date at the instant ``now`` (timezone-aware)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.astimezone(self.zone).date()

    def fiscal_year(self, day: date) -> tuple[date, date]:
        """Return the fiscal year holding ``day`` as ``(first day, first day of the next year)``."""
        return fiscal_year_bounds(day, self.fiscal_year_start_month)


def fiscal_year_bounds(day: date, start_month: int) -> tuple[date, date]:
    """Return ``(start, next_start)`` of the fiscal year, starting in ``start_month``, that holds ``day``.

    >>> fiscal_year_bounds(date(2025, 6, 30), 7)
    (datetime.date(2024, 7, 1), datetime.date(2025, 7, 1))
    """
    if not 1 <= start_month <= 12:
        raise ValueError("start_month must be 1..12")
    year = day.year if day.month >= start_month else day.year - 1
    return date(year, start_month, 1), date(year + 1, start_month, 1)


def fiscal_year_label(day: date, start_month: int) -> int:
    """Return the fiscal year's usual name: the calendar year it ends in (FY2025 = July 2024 - June 2025)."""
    start, _ = fiscal_year_bounds(day, start_month)
    return start.year if start_month == 1 else start.year + 1


def load_giving_settings(path: Path | None = None) -> GivingSettings:
    """Load and validate the giving rules (default: ``include/mappings/giving.yaml``).

    :raises donor_sync.errors.ConfigError: naming the file, the line and the field of every problem.
    """
    return load_yaml_model(path or default_giving_path(), GivingSettings)
