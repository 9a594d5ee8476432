"""Thresholds of the push engine: leases, dependency waits, the quota reserve, the circuit breaker.

They live in ``include/mappings/delivery.yaml`` under the keys ``push:`` and ``circuit_breaker:``
(the rest of that file belongs to the outbox settings). Each key may be left out, and so may the
whole file: the defaults below are what a nonprofit's CRM and ESP accounts tolerate. Errors name
the file, the line and the field (:func:`donor_sync.yaml_source.load_yaml_model`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from donor_sync.paths import include_dir


def default_delivery_path() -> Path:
    """Return the shipped delivery settings file (it may not exist)."""
    return include_dir() / "mappings" / "delivery.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CircuitBreakerSettings(_Strict):
    """When a destination's breaker opens, and how long it stays open before a probe."""

    consecutive_failures: int = Field(
        default=5, ge=1, description="Failed calls in a row that open the breaker."
    )
    failure_rate: float = Field(
        default=0.5, gt=0, le=1, description="Share of failed calls in the window that opens it."
    )
    window_seconds: int = Field(default=600, ge=1, description="Length of the failure-rate window.")
    min_calls: int = Field(
        default=10, ge=1, description="Calls the window needs before the failure rate counts."
    )
    open_seconds: int = Field(default=60, ge=1, description="Wait before the first probe.")
    backoff_factor: float = Field(
        default=2.0, ge=1, description="Each failed probe multiplies the wait by this."
    )
    max_open_seconds: int = Field(default=3600, ge=1, description="Longest wait between probes.")
    probe_batch_size: int = Field(
        default=10, ge=1, description="Records in the one batch a half-open breaker lets through."
    )
    probe_timeout_seconds: int = Field(
        default=900,
        ge=1,
        description="A half-open breaker whose probe never reported (worker killed) probes again after this.",
    )

    @model_validator(mode="after")
    def _waits_ordered(self) -> CircuitBreakerSettings:
        if self.max_open_seconds < self.open_seconds:
            raise ValueError("max_open_seconds must be at least open_seconds")
        return self


class PushOptions(_Strict):
    """How the engine claims and retries records."""

    lease_seconds: int = Field(
        default=900,
        ge=10,
        description="How long a claimed record stays in flight before another run may reclaim it; "
        "longer than one batch takes (Bulk API jobs included).",
    )
    jitter: float = Field(
        default=0.1, ge=0, lt=1, description="Retry delays vary by +- this share, so retries spread out."
    )
    dependency_wait_seconds: int = Field(
        default=120, ge=1, description="Wait before retrying a record whose dependency has no remote id."
    )
    dependency_timeout_seconds: int = Field(
        default=86_400,
        ge=60,
        description="A record still missing a dependency this long after it was queued is dead-lettered.",
    )
    quota_reserve_share: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Below this share of the destination's quota left, only high-priority records go.",
    )
    quota_priority_cut: int = Field(
        default=50,
        description="Highest priority value still pushed under the reserve (lower values go first).",
    )


class PushSettings(_Strict):
    """Everything the push engine reads from delivery.yaml."""

    push: PushOptions = Field(default_factory=PushOptions)
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)


def load_push_settings(path: Path | None = None) -> PushSettings:
    """Load the push and circuit-breaker settings; defaults when the file or a key is missing.

    :raises ConfigError: naming the file, line and field of an invalid value.
    """
    from donor_sync.delivery.settings import load_delivery_settings

    path = path or default_delivery_path()
    if not path.exists():
        return PushSettings()
    loaded = load_delivery_settings(path)
    return PushSettings(push=loaded.push, circuit_breaker=loaded.circuit_breaker)
