"""Alert rules, ``include/mappings/alerts.yaml``, as pydantic models.

Six threshold rules (failed share per destination, dead-letter growth, quota below the reserve,
an open circuit, a quality-score drop, an erasure deadline near) plus the runbooks of the two
alerts Airflow raises itself (a task that failed, a run that missed its deadline), and where the
messages link to. ``docs/alerts.md`` is generated from these models
(:mod:`donor_sync.observability.alerting.docs`). Errors name the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

FAILED_SHARE = "failed_share"
DEAD_LETTER_GROWTH = "dead_letter_growth"
QUOTA_RESERVE = "quota_reserve"
CIRCUIT_OPEN = "circuit_open"
SCORECARD_DROP = "scorecard_drop"
ERASURE_DEADLINE = "erasure_deadline"
TASK_FAILED = "task_failed"
DEADLINE_MISSED = "deadline_missed"

#: Kinds evaluated from run metrics and live tables, in the order they are evaluated.
THRESHOLD_KINDS: tuple[str, ...] = (
    FAILED_SHARE,
    DEAD_LETTER_GROWTH,
    QUOTA_RESERVE,
    CIRCUIT_OPEN,
    SCORECARD_DROP,
    ERASURE_DEADLINE,
)
#: Kinds recorded by Airflow's notifiers (task failure and deadline callbacks).
EVENT_KINDS: tuple[str, ...] = (TASK_FAILED, DEADLINE_MISSED)

#: The runbooks under docs/runbooks/ an alert may link to.
Runbook = Literal[
    "sync-failure.md",
    "rate-limits-and-quota.md",
    "open-circuit.md",
    "dead-letter-review.md",
    "dedup-review.md",
    "erasure-request.md",
    "credential-rotation.md",
    "backfill-and-replay.md",
    "vendor-schema-change.md",
]
#: Components of the data quality scorecard (stage ``quality`` in sync.run_metrics).
ScoreComponent = Literal["completeness", "validity", "duplicate_rate", "consent_coverage"]
SystemName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


def default_alerts_path() -> Path:
    """Return the shipped alert rules file."""
    return include_dir() / "mappings" / "alerts.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSettings(_Strict):
    """Where the messages' links point, and how many messages one evaluation may post."""

    docs_base_url: str = Field(
        default="docs/runbooks",
        min_length=1,
        description="Where the runbooks are: a URL (e.g. the repository's docs/runbooks on its git "
        "host), linked from each message, or a repo-relative path, quoted as text.",
    )
    max_messages_per_evaluation: int = Field(
        default=6,
        ge=2,
        description="Messages one evaluation posts at most; beyond it the rest go as one digest, so "
        "a wide outage is a handful of messages rather than a storm.",
    )


class _Rule(_Strict):
    enabled: bool = Field(default=True, description="False: the rule is not evaluated.")
    runbook: Runbook = Field(default="sync-failure.md", description="Runbook linked from the message.")
    clear_after_runs: int = Field(
        default=1,
        ge=1,
        description="Evaluations in a row that must find the condition clear before the incident "
        "is resolved (and its resolution posted).",
    )


class FailedShareOverride(_Strict):
    """One destination's own failed-share limits (unset fields keep the rule's)."""

    enabled: bool | None = Field(default=None, description="False: not evaluated for this destination.")
    max_share: float | None = Field(default=None, gt=0, le=1, description="Its own max_share.")
    min_pushed: int | None = Field(default=None, ge=1, description="Its own min_pushed.")


class FailedShareRule(_Rule):
    """Records a run pushed to a destination that failed, over the records it pushed.

    Read from ``push/<destination>`` in sync.run_metrics: ``failed`` (retrying, dead-lettered or
    superseded; the dead-lettered are counted in it) over ``pushed``. A run that pushed fewer than
    ``min_pushed`` records there says nothing either way.
    """

    runbook: Runbook = Field(default="sync-failure.md", description="Runbook linked from the message.")
    max_share: float = Field(
        default=0.05, gt=0, le=1, description="Alert when the failed share exceeds this."
    )
    critical_share: float | None = Field(
        default=0.5, gt=0, le=1, description="At or above this share the incident is critical."
    )
    min_pushed: int = Field(default=50, ge=1, description="Records pushed before the share counts.")
    destinations: dict[SystemName, FailedShareOverride] = Field(
        default_factory=dict, description="Per-destination limits, overriding the ones above."
    )

    @model_validator(mode="after")
    def _critical_above_max(self) -> FailedShareRule:
        if self.critical_share is not None and self.critical_share <= self.max_share:
            raise ValueError("critical_share must be above max_share")
        return self

    def limits_for(self, destination: str) -> tuple[bool, float, int]:
        """Return (enabled, max_share, min_pushed) for ``destination``."""
        own = self.destinations.get(destination) or FailedShareOverride()
        enabled = self.enabled if own.enabled is None else own.enabled
        return (
            enabled,
            self.max_share if own.max_share is None else own.max_share,
            self.min_pushed if own.min_pushed is None else own.min_pushed,
        )


class DeadLetterGrowthRule(_Rule):
    """Dead letters piling up at a destination: many new in one run, or the open depth growing.

    Read from ``dead_letters/<destination>`` in sync.run_metrics: ``new`` (``push/<destination>``
    ``dead_lettered`` when ``new`` was not recorded) and ``open``, compared with the earliest
    ``open`` recorded within ``window_hours`` before the run.
    """

    runbook: Runbook = Field(default="dead-letter-review.md", description="Runbook linked from the message.")
    clear_after_runs: int = Field(
        default=3,
        ge=1,
        description="Evaluations in a row without the condition before the incident is resolved "
        "(dead letters come in bursts).",
    )
    max_new_per_run: int | None = Field(
        default=25, ge=0, description="Alert when one run creates more dead letters than this (null: off)."
    )
    max_growth: int | None = Field(
        default=100,
        ge=0,
        description="Alert when the open depth grew by more than this over the window (null: off).",
    )
    window_hours: int = Field(default=24, ge=1, le=24 * 30, description="Window of the depth growth.")

    @model_validator(mode="after")
    def _one_limit(self) -> DeadLetterGrowthRule:
        if self.max_new_per_run is None and self.max_growth is None:
            raise ValueError("set max_new_per_run, max_growth or both (or enabled: false)")
        return self


class QuotaReserveRule(_Rule):
    """A vendor's API quota left below the reserve the push engine keeps for high-priority records.

    Read from ``api/<vendor>`` ``quota_remaining_ratio`` in sync.run_metrics.
    """

    runbook: Runbook = Field(
        default="rate-limits-and-quota.md", description="Runbook linked from the message."
    )
    reserve_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Alert below this share of the quota left; null: the push engine's own "
        "reserve, push.quota_reserve_share in include/mappings/delivery.yaml.",
    )


class CircuitOpenRule(_Rule):
    """A destination's circuit breaker open or half open (sync.circuit_breakers, as it is now).

    The push tasks check it as soon as a breaker changes state, so the message comes with the
    push that opened it; the incident is resolved when the breaker closes.
    """

    runbook: Runbook = Field(default="open-circuit.md", description="Runbook linked from the message.")


def _default_component_runbooks() -> dict[ScoreComponent, Runbook]:
    return {"duplicate_rate": "dedup-review.md"}


class ScorecardDropRule(_Rule):
    """The data quality score of a run below the median of the DAG's previous runs.

    Read from ``quality`` ``score`` (and its components, to name the one that moved most) in
    sync.run_metrics, against the same DAG's last ``trailing_runs`` runs that recorded a score.
    """

    runbook: Runbook = Field(
        default="vendor-schema-change.md",
        description="Runbook linked from the message (a sudden drop in completeness or validity "
        "is most often a source changing its data).",
    )
    component_runbooks: dict[ScoreComponent, Runbook] = Field(
        default_factory=_default_component_runbooks,
        description="A different runbook when this component moved most.",
    )
    trailing_runs: int = Field(default=7, ge=2, le=100, description="Previous runs the median is taken over.")
    min_runs: int = Field(default=3, ge=1, description="Previous runs needed before the rule applies.")
    max_drop_points: float = Field(
        default=5.0,
        gt=0,
        le=100,
        description="Alert when the score is more points (of 100) below the median.",
    )

    @model_validator(mode="after")
    def _min_within_trailing(self) -> ScorecardDropRule:
        if self.min_runs > self.trailing_runs:
            raise ValueError("min_runs must not exceed trailing_runs")
        return self


class ErasureDeadlineRule(_Rule):
    """A donor's rights request (erasure, export, consent change) not done close to its 30-day deadline.

    Read from sync.privacy_requests as it is now. One incident per request, critical (and posted
    again, once) when the deadline passes; resolved when the request is completed or rejected.
    """

    runbook: Runbook = Field(default="erasure-request.md", description="Runbook linked from the message.")
    days_before: int = Field(
        default=7, ge=0, le=30, description="Alert this many days before the deadline (and past it)."
    )


class EventAlert(_Strict):
    """An alert Airflow raises itself (a notifier), recorded as an incident too."""

    runbook: Runbook = Field(default="sync-failure.md", description="Runbook linked from the message.")


class Rules(_Strict):
    """The threshold rules, each evaluated by every check_alerts task."""

    failed_share: FailedShareRule = Field(default_factory=FailedShareRule)
    dead_letter_growth: DeadLetterGrowthRule = Field(default_factory=DeadLetterGrowthRule)
    quota_reserve: QuotaReserveRule = Field(default_factory=QuotaReserveRule)
    circuit_open: CircuitOpenRule = Field(default_factory=CircuitOpenRule)
    scorecard_drop: ScorecardDropRule = Field(default_factory=ScorecardDropRule)
    erasure_deadline: ErasureDeadlineRule = Field(default_factory=ErasureDeadlineRule)


class AlertRules(_Strict):
    """The whole of alerts.yaml. Every key may be left out: the defaults are the shipped values."""

    slack: SlackSettings = Field(default_factory=SlackSettings)
    rules: Rules = Field(default_factory=Rules)
    task_failed: EventAlert = Field(
        default_factory=EventAlert, description="A task that failed after its retries."
    )
    deadline_missed: EventAlert = Field(
        default_factory=EventAlert, description="A DAG run not done by its deadline."
    )

    def rule(self, kind: str) -> _Rule:
        """Return the threshold rule of ``kind``."""
        if kind not in THRESHOLD_KINDS:
            raise KeyError(f"no threshold rule {kind!r}; one of {', '.join(THRESHOLD_KINDS)}")
        found: _Rule = getattr(self.rules, kind)
        return found

    def runbook_of(self, kind: str) -> str:
        """Return the runbook file of any kind of alert."""
        if kind in EVENT_KINDS:
            event: EventAlert = getattr(self, kind)
            return event.runbook
        return self.rule(kind).runbook


def load_alert_rules(path: Path | None = None) -> AlertRules:
    """Load the alert rules (default: ``include/mappings/alerts.yaml``, or defaults without it).

    :raises donor_sync.errors.ConfigError: naming the file, the line and the field of a problem.
    """
    if path is None:
        path = default_alerts_path()
        if not path.exists():
            return AlertRules()
    return load_yaml_model(path, AlertRules)
