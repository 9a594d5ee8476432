"""Generation settings and the result handed back to callers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENERATOR_VERSION = "1.0.0"


@dataclass(frozen=True)
class GenerationConfig:
    """Settings of one generator run; the same settings and seed give byte-identical files."""

    donors: int
    out: Path
    seed: int = 0
    bad_share: float = 0.02
    #: share of Donorbox and Classy gifts that also appear as a Stripe charge (paid through Stripe)
    link_share: float = 0.5
    #: share of persons who join another person's household (same surname and address)
    household_share: float = 0.08
    #: share of household members who share the head's email (joint mailboxes)
    household_shared_email_share: float = 0.05
    #: mean number of extra appearances (noisy duplicate records) per person
    duplicate_rate: float = 0.4
    start: datetime = datetime(2019, 1, 1, tzinfo=UTC)
    as_of: datetime = datetime(2025, 12, 31, tzinfo=UTC)
    chunk_size: int = 10_000
    #: processes writing the source files (the output does not depend on it)
    workers: int = 2
    source_weights: dict[str, float] = field(
        default_factory=lambda: {
            "stripe": 0.40,
            "donorbox": 0.25,
            "classy": 0.20,
            "bank_cheque_export": 0.08,
            "event_platform_export": 0.07,
        }
    )

    def __post_init__(self) -> None:
        """Reject settings the generator cannot honour."""
        if self.donors < 1:
            raise ValueError("donors must be at least 1")
        if not 0.0 <= self.bad_share <= 0.5:
            raise ValueError("bad_share must be between 0 and 0.5")
        if not 0.0 <= self.link_share <= 1.0:
            raise ValueError("link_share must be between 0 and 1")
        if self.as_of <= self.start:
            raise ValueError("as_of must be after start")

    def to_json(self) -> dict[str, Any]:
        """Return the settings as JSON-ready values (for the manifest)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


@dataclass(frozen=True)
class GenerationResult:
    """What a run wrote: the output folder, the manifest and the wall time."""

    out: Path
    manifest: dict[str, Any]
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        """Return the number of records written per file (relative path)."""
        counts: dict[str, int] = self.manifest["counts"]
        return counts
