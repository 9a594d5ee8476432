"""include/mappings/reconcile.yaml: which CRM fields are pulled back into core, which only compared."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

#: core donor fields a CRM value may stand for (the standardized attributes survivorship reads)
PULLABLE: frozenset[str] = frozenset(
    {
        "first_name",
        "middle_name",
        "last_name",
        "email",
        "phone",
        "address_line1",
        "address_line2",
        "city",
        "region",
        "postal_code",
        "country_code",
        "birth_date",
        "do_not_contact",
        "is_deceased",
        "deceased_date",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldRule(_Strict):
    """One CRM field: the core field it stands for and the conflict policy."""

    to: str = Field(description="Core donor field the CRM field holds.")
    policy: Literal["pull", "report"] = Field(
        description="pull: the CRM value is a staff edit survivorship weighs; report: compared only (drift)."
    )

    @field_validator("to")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SOURCE_FIELDS["donor"]:
            raise ValueError(f"{value!r} is not a core donor field")
        return value


class DestinationReconcile(_Strict):
    """What to read back from one CRM."""

    entity: str = Field(description="Destination entity (sync.destination_state.entity) of the records.")
    object: str = Field(description="CRM object name (Contact, contacts).")
    key_field: str = Field(description="CRM field holding donor-sync's donor id.")
    merged_ids_field: str | None = Field(
        default=None, description="CRM field listing ids merged into a record (HubSpot hs_merged_object_ids)."
    )
    overlap_minutes: int = Field(default=10, ge=0, description="Re-read this much before the watermark.")
    fields: dict[str, FieldRule]

    @field_validator("fields")
    @classmethod
    def _pullable(cls, value: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for name, rule in value.items():
            if rule.policy == "pull" and rule.to not in PULLABLE:
                raise ValueError(
                    f"{name}: {rule.to!r} is source-owned and cannot be pulled (use policy report)"
                )
        return value

    def pulled(self) -> dict[str, str]:
        """CRM field -> core field, for the fields pulled back."""
        return {name: r.to for name, r in self.fields.items() if r.policy == "pull"}


class ReconcileSettings(_Strict):
    """The whole file."""

    destinations: dict[str, DestinationReconcile]


def default_path() -> Path:
    return include_dir() / "mappings" / "reconcile.yaml"


def load_reconcile_settings(path: Path | None = None) -> ReconcileSettings:
    """Load and validate reconcile.yaml (errors name the file, line and field)."""
    return load_yaml_model(path or default_path(), ReconcileSettings)
