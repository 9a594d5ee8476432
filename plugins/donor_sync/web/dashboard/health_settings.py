"""Thresholds of the JSON health endpoint, from ``include/mappings/sync_health.yaml``.

How old each DAG's last successful run may be, how many open dead letters (and how old) are
tolerated, and how little API quota is too little. Errors name the file, the line and the field
(:func:`donor_sync.yaml_source.load_yaml_model`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

__all__ = ["DeadLetterLimits", "HealthSettings", "QuotaLimits", "default_health_path", "load_health_settings"]

#: An Airflow DAG id (letters, digits, ``_``, ``-``, ``.``).
DagId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeadLetterLimits(_Strict):
    """When open dead letters make the sync degraded."""

    max_open: int = Field(default=100, ge=0, description="Most open dead letters before health degrades.")
    max_oldest_age_hours: float = Field(
        default=48, gt=0, description="Oldest an open dead letter may be before health degrades."
    )


class QuotaLimits(_Strict):
    """When a vendor's API quota makes the sync degraded."""

    min_remaining_ratio: float = Field(
        default=0.1, ge=0, le=1, description="Least share of a quota left (latest window) that is ok."
    )
    max_observation_age_hours: float = Field(
        default=26, gt=0, description="Windows observed longer ago are reported but not judged."
    )


def _default_max_ages() -> dict[str, float]:
    return {"donations_hourly": 2.0, "privacy_requests": 2.0, "donors_nightly": 26.0}


class HealthSettings(_Strict):
    """Everything the health endpoint judges against."""

    last_success_max_age_hours: dict[DagId, Annotated[float, Field(gt=0)]] = Field(
        default_factory=_default_max_ages,
        description="Per DAG: the longest time since its last successful run that is ok.",
    )
    dead_letters: DeadLetterLimits = Field(default_factory=DeadLetterLimits)
    quota: QuotaLimits = Field(default_factory=QuotaLimits)


def default_health_path() -> Path:
    """Return the shipped thresholds file."""
    return include_dir() / "mappings" / "sync_health.yaml"


def load_health_settings(path: Path | None = None) -> HealthSettings:
    """Load and validate the thresholds (the defaults when the shipped file does not exist).

    :raises ConfigError: naming the file, line and field of every problem.
    """
    target = path or default_health_path()
    if path is None and not target.exists():
        return HealthSettings()
    return load_yaml_model(target, HealthSettings)
