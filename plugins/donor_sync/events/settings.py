"""Event subscribers: ``include/mappings/events.yaml``, validated on load.

Each subscriber names its endpoint (``url``, or ``path`` under the host of its connection), the
Airflow connection holding its signing secret(s) (``secret``: password = one or more secrets,
comma- or newline-separated, so a secret can be rolled; ``host`` = base URL for ``path``; extra
``ca_bundle``), the event types it takes and the one schema version it takes them in. Errors name
the file, the line and the field (:func:`donor_sync.yaml_source.load_yaml_model`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.events.catalogue import CATALOGUE
from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

__all__ = [
    "DESTINATION_PREFIX",
    "EventSettings",
    "SubscriberSpec",
    "default_events_path",
    "load_event_settings",
]

#: Outbox destination of a subscriber: ``webhook_<name>`` (its own queue, dead letters and breaker).
DESTINATION_PREFIX = "webhook_"

EventType = Literal[
    "donation.created", "donation.refunded", "donor.merged", "consent.changed", "donor.erased"
]


def default_events_path() -> Path:
    """Return the shipped subscribers file."""
    return include_dir() / "mappings" / "events.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubscriberSpec(_Strict):
    """One subscriber endpoint."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,54}$", description="Lower snake case; outbox destination webhook_<name>."
    )
    secret: str = Field(min_length=1, description="Airflow connection id holding the signing secret(s).")
    url: str | None = Field(default=None, description="Full https URL of the endpoint.")
    path: str | None = Field(
        default=None, description="Path under the secret connection's host, instead of url."
    )
    events: tuple[EventType, ...] = Field(min_length=1, description="Event types delivered to it.")
    version: int = Field(default=1, ge=1, description="Schema version it takes (one per subscriber).")
    enabled: bool = True
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Per-request timeout.")

    @property
    def destination(self) -> str:
        """The subscriber's outbox destination."""
        return f"{DESTINATION_PREFIX}{self.name}"

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL (events are signed, not encrypted)")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    @field_validator("events")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists an event type twice")
        return value

    @model_validator(mode="after")
    def _endpoint_and_version(self) -> SubscriberSpec:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url and path")
        missing = [t for t in self.events if self.version not in CATALOGUE[t]]
        if missing:
            raise ValueError(f"version {self.version} does not exist for {', '.join(missing)}")
        return self


class EventSettings(_Strict):
    """The whole events.yaml."""

    version: Literal[1] = 1
    subscribers: tuple[SubscriberSpec, ...] = ()

    @field_validator("subscribers")
    @classmethod
    def _names_unique(cls, value: tuple[SubscriberSpec, ...]) -> tuple[SubscriberSpec, ...]:
        names = [s.name for s in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"subscriber names must be unique: {', '.join(twice)}")
        return value

    def enabled(self) -> tuple[SubscriberSpec, ...]:
        """Return the enabled subscribers."""
        return tuple(s for s in self.subscribers if s.enabled)

    def subscriber(self, name: str) -> SubscriberSpec:
        """Return the subscriber called ``name`` (or whose destination is ``name``)."""
        for spec in self.subscribers:
            if name in (spec.name, spec.destination):
                return spec
        raise KeyError(f"no event subscriber {name!r} in events.yaml")


def load_event_settings(path: Path | None = None) -> EventSettings:
    """Load events.yaml (cached while the file is unchanged); no file: no subscribers.

    :raises ConfigError: naming the file, the line and the field of every problem.
    """
    path = path or default_events_path()
    if not path.exists():
        return EventSettings()
    return _load(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: Path, _mtime_ns: int) -> EventSettings:
    return load_yaml_model(path, EventSettings)
