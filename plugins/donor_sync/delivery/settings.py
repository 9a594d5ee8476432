"""Outbox settings from ``include/mappings/delivery.yaml``: the blast-radius guard and merges.

The file is shared: ``push:`` and ``circuit_breaker:`` belong to the push engine
(:mod:`donor_sync.delivery.push.settings`), which reads only those keys; this module reads only
``blast_radius:``, ``merges:`` and ``destinations:`` (other top-level keys are left to their
owners, so each part of delivery validates its own sections strictly without knowing the
others'). The top-level ``blast_radius`` and ``merges`` are the defaults; ``destinations.<name>``
overrides any of their fields for one destination. Errors name the file, the line and the field
(:func:`donor_sync.yaml_source.load_yaml_model`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from donor_sync.delivery.push.settings import CircuitBreakerSettings, PushOptions, default_delivery_path
from donor_sync.yaml_source import load_yaml_model

SystemName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BlastRadius(_Strict):
    """How much of a destination one run may destroy or overwrite before it stops for approval.

    Shares are of the records that landed there (``sync.destination_state`` rows with a remote id
    that were not deleted), per entity: a run that archives 40 of 50 opportunities stops even
    when the destination holds 10,000 contacts.
    """

    max_destructive_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Largest share of an entity's landed records one run may delete, archive, "
        "unsubscribe or merge away.",
    )
    max_overwrite_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Largest share of an entity's landed records one run may overwrite (update). "
        "Higher than the destructive share: a new gift changes its donor's rollups every hour.",
    )
    min_records: int = Field(
        default=100,
        ge=0,
        description="The shares apply once the destination holds this many landed records of the "
        "entity; below it (a new destination filling up) any run passes.",
    )


class MergeSettings(_Strict):
    """How a donor merge reaches the destination."""

    method: Literal["api", "crm_task"] = Field(
        default="crm_task",
        description="api: merge the two records with the vendor's merge endpoint (HubSpot); "
        "crm_task: list the pair for a person to merge in the CRM (Salesforce NPSP, whose merge "
        "keeps household rollups right).",
    )
    entity: str = Field(
        default="contact",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Destination entity keyed by donor id whose records are merged.",
    )


class DestinationSettings(_Strict):
    """Everything the outbox reads for one destination (defaults overlaid with its own keys)."""

    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    merges: MergeSettings = Field(default_factory=MergeSettings)
    #: False for a system this organization does not use: its queue, push and pull-back tasks do
    #: nothing (and say so) instead of failing for want of a connection.
    enabled: bool = True


class DeliverySettings(BaseModel):
    """The whole of delivery.yaml: the outbox's keys, and the push engine's (``push``,
    ``circuit_breaker``; see :mod:`donor_sync.delivery.push.settings`). An unknown key is an error
    naming its line, so a misspelt setting never silently falls back to its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    push: PushOptions = Field(default_factory=PushOptions)
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    merges: MergeSettings = Field(default_factory=MergeSettings)
    destinations: dict[SystemName, DestinationSettings] = Field(default_factory=dict)

    def for_destination(self, destination: str) -> DestinationSettings:
        """Return the defaults with the destination's own keys laid over them, field by field."""
        base = DestinationSettings(blast_radius=self.blast_radius, merges=self.merges)
        own = self.destinations.get(destination)
        return base if own is None else _overlay(base, own)


def _overlay(base: M, over: M) -> M:
    """Return ``base`` with the fields ``over`` set explicitly (recursively for sections)."""
    updates: dict[str, object] = {}
    for name in over.model_fields_set:
        value = getattr(over, name)
        current = getattr(base, name)
        if isinstance(value, BaseModel) and isinstance(current, BaseModel):
            value = _overlay(current, value)
        updates[name] = value
    return base.model_copy(update=updates)


def load_delivery_settings(path: Path | None = None) -> DeliverySettings:
    """Load the outbox settings (default: ``include/mappings/delivery.yaml``, or defaults without it).

    :raises donor_sync.errors.ConfigError: naming the file, the line and the field of a problem.
    """
    if path is None:
        path = default_delivery_path()
        if not path.exists():
            return DeliverySettings()
    return load_yaml_model(path, DeliverySettings)


def destination_enabled(destination: str, settings: DeliverySettings | None = None) -> bool:
    """Whether ``destination`` is in use here (``destinations.<name>.enabled`` in delivery.yaml)."""
    return (settings or load_delivery_settings()).for_destination(destination).enabled
