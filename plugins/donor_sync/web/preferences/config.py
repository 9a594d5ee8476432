"""include/mappings/privacy/preference_centre.yaml: the choices shown, the form text, the limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from donor_sync.paths import include_dir
from donor_sync.privacy.consent.vocabulary import Channel, Purpose
from donor_sync.yaml_source import load_yaml_model

__all__ = ["ChoiceGroup", "PreferenceCentreSettings", "default_path", "load_preference_settings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChoiceGroup(_Strict):
    """A purpose and the channels it is offered on."""

    purpose: Purpose
    label: str = Field(min_length=1, description="What the donor reads.")
    channels: list[Channel] = Field(min_length=1)

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        if "all" in value and len(value) > 1:
            raise ValueError("'all' is one choice for every channel: list it alone")
        return value


class PreferenceCentreSettings(_Strict):
    """The whole file."""

    version: int = Field(ge=1, le=1)
    form_version: str = Field(min_length=1)
    form_text: str = Field(min_length=1)
    base_url: str = Field(pattern=r"^https?://")
    link_days: int = Field(default=30, ge=1, le=366)
    max_body_bytes: int = Field(default=8192, ge=256, le=1_048_576)
    choices: list[ChoiceGroup] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _one_group_per_purpose(cls, value: list[ChoiceGroup]) -> list[ChoiceGroup]:
        purposes = [g.purpose for g in value]
        if len(set(purposes)) != len(purposes):
            raise ValueError("a purpose is listed twice")
        return value

    def offered(self) -> set[tuple[str, str]]:
        """Return the (purpose, channel) pairs a donor may change here."""
        return {(g.purpose, c) for g in self.choices for c in g.channels}


def default_path() -> Path:
    return include_dir() / "mappings" / "privacy" / "preference_centre.yaml"


def load_preference_settings(path: Path | None = None) -> PreferenceCentreSettings:
    """Load and validate the preference-centre settings (errors name the file, line and field)."""
    return load_yaml_model(path or default_path(), PreferenceCentreSettings)
