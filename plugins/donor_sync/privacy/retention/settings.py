"""``include/mappings/privacy/retention.yaml``: what is purged, how, and after how long."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

__all__ = [
    "DONOR_PII_FIELDS",
    "LEDGERS",
    "SUPPORTED",
    "Action",
    "Policy",
    "RetentionSettings",
    "default_retention_path",
    "load_retention_settings",
]

Action = Literal["delete", "blank", "pseudonymize"]

#: tables never purged, and why
LEDGERS: dict[str, str] = {
    "sync.audit_log": "the audit log is append-only and never purged",
    "sync.audit_anchors": "the audit chain's anchors are append-only",
    "core.consent_events": "consent events are an append-only ledger (evidence of consent)",
    "core.erasure_tombstones": "tombstones are what keeps erased donors from coming back",
    "core.gifts": "gifts are financial records: lapsed donors' gifts are kept",
    "core.gift_sources": "gift sources are part of the financial record",
    "staging.dispositions": "the disposition ledger reconciles every raw record",
    "sync.privacy_receipts": "privacy receipts are the evidence of rights requests",
    "sync.privacy_requests": "privacy requests are the evidence of rights requests",
}

#: supported tables and the actions each allows
SUPPORTED: dict[str, tuple[Action, ...]] = {
    "raw.records": ("blank",),
    "raw.webhook_inbox": ("blank", "delete"),
    "raw.csv_rows": ("delete",),
    "staging.quarantine": ("delete",),
    "sync.dead_letters": ("blank", "delete"),
    "core.donors": ("pseudonymize", "blank"),
    "sync.push_log": ("delete",),
    "sync.alert_incidents": ("delete",),
}

#: core.donors columns a lapsed-donor policy may clear (staging.donors has the same names)
DONOR_PII_FIELDS = (
    "name_prefix",
    "first_name",
    "middle_name",
    "last_name",
    "name_suffix",
    "organization_name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "birth_date",
)


class Policy(BaseModel):
    """One retention policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    table: str
    action: Action
    after_days: int | None = Field(default=None, ge=1)
    after_years: int | None = Field(default=None, ge=1)
    #: core.donors: the PII columns to clear
    fields: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Policy:
        if self.table in LEDGERS:
            raise ValueError(f"{self.table} cannot have a retention policy: {LEDGERS[self.table]}")
        if self.table not in SUPPORTED:
            raise ValueError(f"unsupported table {self.table!r}; supported: {', '.join(SUPPORTED)}")
        if self.action not in SUPPORTED[self.table]:
            raise ValueError(
                f"action {self.action!r} is not available for {self.table}; "
                f"use {' or '.join(SUPPORTED[self.table])}"
            )
        if (self.after_days is None) == (self.after_years is None):
            raise ValueError("give exactly one of after_days or after_years")
        if self.table == "core.donors":
            if not self.fields:
                raise ValueError("fields: name the PII columns to clear")
            unknown = sorted(set(self.fields) - set(DONOR_PII_FIELDS))
            if unknown:
                raise ValueError(f"fields: not PII columns of core.donors: {', '.join(unknown)}")
        elif self.fields:
            raise ValueError("fields apply to core.donors policies only")
        return self

    @property
    def age(self) -> str:
        """Return the age as text (``90 days``, ``7 years``)."""
        return f"{self.after_days} days" if self.after_days is not None else f"{self.after_years} years"


class RetentionSettings(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(default=1000, ge=1, le=100_000)
    policies: tuple[Policy, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> RetentionSettings:
        names = [p.name for p in self.policies]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"policy names must be unique: {', '.join(twice)}")
        return self


def default_retention_path() -> Path:
    """Return ``include/mappings/privacy/retention.yaml``."""
    return include_dir() / "mappings" / "privacy" / "retention.yaml"


def load_retention_settings(path: Path | None = None) -> RetentionSettings:
    """Load and validate the retention policies.

    :raises ConfigError: naming the file, line and field of every problem.
    """
    return load_yaml_model(path or default_retention_path(), RetentionSettings)
