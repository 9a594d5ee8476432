"""A run's health as recorded in ``sync.run_metrics``: the snapshot alerts, logs and the CLI read.

:func:`load_health` reads a run's figures back (those the health collection recorded and the
counts the stages recorded themselves); :func:`format_health` renders them for a terminal or a
log. Ids, names, counts and ratios only: nothing here can carry a donor's PII.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.observability.quality.scorecard import Scorecard
from donor_sync.observability.runs import RunSummary, load_summary

#: ``breaker/<destination>`` state codes.
BREAKER_CODES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
BREAKER_STATES: dict[int, str] = {code: state for state, code in BREAKER_CODES.items()}

#: The record counts the stages record themselves: (label, stage, metric), summed over parts.
COUNT_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("read", "extract", "read"),
    ("staged", "standardize", "staged"),
    ("quarantined", "standardize", "quarantined"),
    ("skipped", "standardize", "skipped"),
    ("merged", "resolve", "merged"),
    ("queued", "queue", "records_queued"),
    ("pushed", "push", "pushed"),
    ("failed", "push", "failed"),
    ("dead_lettered", "push", "dead_lettered"),
)


@dataclass(frozen=True)
class Latency:
    """Gifts that first landed at one destination in the run, and seconds from gift to landing."""

    gifts_landed: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class ApiUse:
    """One vendor's API calls in the run and the tightest quota it reported."""

    calls: int
    quota_limit: int | None = None
    quota_remaining: int | None = None
    quota_remaining_ratio: float | None = None


@dataclass(frozen=True)
class ConsentCounts:
    """Live donors by consent state for one purpose on the email channel (gauge)."""

    opted_in: int
    opted_out: int
    no_consent: int


@dataclass(frozen=True)
class JourneyCounts:
    """Enrollments of one journey decided in the run."""

    entered: int
    suppressed: int


@dataclass(frozen=True)
class WebhookDeliveries:
    """Inbound webhook events of one source stored in the run's window, and what became of them."""

    received: int
    accepted: int
    rejected: int
    pending: int
    success_rate: float | None


@dataclass(frozen=True)
class EventDeliveries:
    """Outbound event delivery attempts to one subscriber in the run."""

    delivered: int
    failed: int
    success_rate: float | None


@dataclass(frozen=True)
class DeadLetters:
    """One destination's dead letters: open now (and the oldest's age), created in the run."""

    open: int
    oldest_open_age_s: float | None
    new: int


@dataclass(frozen=True)
class HealthSnapshot:
    """A run's health figures, as recorded.

    Maps are keyed by scope (destination, vendor, purpose, reason, journey, source); a scope with
    no figure is absent. ``counts`` holds the stages' own record counts, ``{label: {scope: n}}``
    (labels of :data:`COUNT_LAYOUT`).
    """

    run_id: UUID
    dag_id: str
    airflow_run_id: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)
    api: dict[str, ApiUse] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)
    consent: dict[str, ConsentCounts] = field(default_factory=dict)
    consent_events_recorded: int | None = None
    suppressions: dict[str, int] = field(default_factory=dict)
    journeys: dict[str, JourneyCounts] = field(default_factory=dict)
    webhooks: dict[str, WebhookDeliveries] = field(default_factory=dict)
    events: dict[str, EventDeliveries] = field(default_factory=dict)
    dead_letters: dict[str, DeadLetters] = field(default_factory=dict)
    outcome: dict[str, float] = field(default_factory=dict)
    quality: Scorecard | None = None

    @property
    def collected(self) -> bool:
        """Whether the health collection has recorded this run (it always records consent events)."""
        return self.consent_events_recorded is not None

    def open_breakers(self) -> list[str]:
        """Return the destinations whose breaker is open or half-open."""
        return sorted(d for d, state in self.breakers.items() if state != "closed")

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready data (ids, counts, ratios, ISO times)."""
        data = asdict(self)
        data["run_id"] = str(self.run_id)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        if self.quality is not None:
            data["quality"]["run_id"] = str(self.quality.run_id)
        return data


class _Figures:
    """A run's recorded figures by (stage, scope, metric), summed over parts."""

    def __init__(self, summary: RunSummary) -> None:
        self.values: dict[tuple[str, str, str], Decimal] = {}
        for m in summary.metrics:
            key = (m.stage, m.scope, m.metric)
            self.values[key] = self.values.get(key, Decimal(0)) + m.value

    def scopes(self, stage: str) -> list[str]:
        return sorted({scope for s, scope, _ in self.values if s == stage})

    def get(self, stage: str, scope: str, metric: str) -> Decimal | None:
        return self.values.get((stage, scope, metric))

    def num(self, stage: str, scope: str, metric: str) -> int:
        value = self.get(stage, scope, metric)
        return int(value) if value is not None else 0

    def opt_int(self, stage: str, scope: str, metric: str) -> int | None:
        value = self.get(stage, scope, metric)
        return int(value) if value is not None else None

    def opt_float(self, stage: str, scope: str, metric: str) -> float | None:
        value = self.get(stage, scope, metric)
        return float(value) if value is not None else None


def _scorecard(summary: RunSummary, f: _Figures) -> Scorecard | None:
    if f.get("quality", "", "score") is None:
        return None
    by_entity = {
        scope: float(v)
        for scope in ("donors", "gifts")
        if (v := f.get("quality", scope, "completeness")) is not None
    }
    return Scorecard(
        run_id=summary.run_id,
        completeness=f.opt_float("quality", "", "completeness"),
        validity=f.opt_float("quality", "", "validity"),
        duplicate_rate=f.opt_float("quality", "", "duplicate_rate"),
        consent_coverage=f.opt_float("quality", "", "consent_coverage"),
        score=f.opt_float("quality", "", "score"),
        donors=f.num("quality", "", "donors_scored"),
        gifts=f.num("quality", "", "gifts_scored"),
        completeness_by_entity=by_entity,
    )


def snapshot_from_summary(summary: RunSummary) -> HealthSnapshot:
    """Build a run's snapshot from its recorded figures."""
    f = _Figures(summary)
    counts = {
        label: {k: int(v) for k, v in summary.values(stage, metric).items()}
        for label, stage, metric in COUNT_LAYOUT
    }
    return HealthSnapshot(
        run_id=summary.run_id,
        dag_id=summary.dag_id,
        airflow_run_id=summary.airflow_run_id,
        status=summary.status,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
        counts={label: values for label, values in counts.items() if values},
        latency={
            d: Latency(
                f.num("latency", d, "gifts_landed"),
                f.opt_float("latency", d, "gift_to_destination_p50"),
                f.opt_float("latency", d, "gift_to_destination_p95"),
                f.opt_float("latency", d, "gift_to_destination_max"),
            )
            for d in f.scopes("latency")
        },
        api={
            v: ApiUse(
                f.num("api", v, "calls"),
                f.opt_int("api", v, "quota_limit"),
                f.opt_int("api", v, "quota_remaining"),
                f.opt_float("api", v, "quota_remaining_ratio"),
            )
            for v in f.scopes("api")
        },
        breakers={
            d: BREAKER_STATES.get(f.num("breaker", d, "state"), "unknown")
            for d in f.scopes("breaker")
            if f.get("breaker", d, "state") is not None
        },
        consent={
            p: ConsentCounts(
                f.num("consent", p, "donors_opted_in"),
                f.num("consent", p, "donors_opted_out"),
                f.num("consent", p, "donors_no_consent"),
            )
            for p in f.scopes("consent")
            if f.get("consent", p, "donors_opted_in") is not None
        },
        consent_events_recorded=f.opt_int("consent", "", "events_recorded"),
        suppressions={r: f.num("suppressions", r, "active") for r in f.scopes("suppressions")},
        journeys={
            j: JourneyCounts(f.num("journeys", j, "entered"), f.num("journeys", j, "suppressed"))
            for j in f.scopes("journeys")
            if f.get("journeys", j, "entered") is not None
        },
        webhooks={
            s: WebhookDeliveries(
                f.num("webhooks", s, "received"),
                f.num("webhooks", s, "accepted"),
                f.num("webhooks", s, "rejected"),
                f.num("webhooks", s, "pending"),
                f.opt_float("webhooks", s, "success_rate"),
            )
            for s in f.scopes("webhooks")
        },
        events={
            d: EventDeliveries(
                f.num("events", d, "delivered"),
                f.num("events", d, "failed"),
                f.opt_float("events", d, "success_rate"),
            )
            for d in f.scopes("events")
        },
        dead_letters={
            d: DeadLetters(
                f.num("dead_letters", d, "open"),
                f.opt_float("dead_letters", d, "oldest_open_age"),
                f.num("dead_letters", d, "new"),
            )
            for d in f.scopes("dead_letters")
        },
        outcome={
            d: float(v) for d in f.scopes("outcome") if (v := f.get("outcome", d, "success_rate")) is not None
        },
        quality=_scorecard(summary, f),
    )


def load_health(conn: psycopg.Connection, run_id: UUID) -> HealthSnapshot:
    """Read a run's health snapshot from ``sync.run_metrics``.

    :raises LookupError: when the run does not exist.
    """
    summary = load_summary(conn, run_id)
    conn.commit()
    return snapshot_from_summary(summary)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _section(title: str, rows: list[str]) -> list[str]:
    return [f"  {title}", *(f"    {row}" for row in rows)] if rows else []


def format_health(s: HealthSnapshot) -> str:
    """Render a snapshot for a terminal or a log (ids, names, counts, ratios; never PII)."""
    took = f" in {(s.finished_at - s.started_at).total_seconds():.1f}s" if s.finished_at else ""
    lines = [f"run {s.run_id} ({s.airflow_run_id or '-'}) of {s.dag_id}: {s.status}{took}"]
    if not s.collected:
        lines.append("  health figures not collected yet (`donor-sync health show --collect`)")
    lines += _section(
        "records",
        [
            f"{label:<14} {sum(v.values()):>9,}"
            + (
                "  (" + ", ".join(f"{k} {n:,}" for k, n in sorted(v.items()) if k) + ")"
                if set(v) - {""}
                else ""
            )
            for label, v in s.counts.items()
        ],
    )
    lines += _section("push success rate", [f"{d:<24} {_pct(r)}" for d, r in sorted(s.outcome.items())])
    lines += _section(
        "latency, gift to destination (gifts first landed in this run)",
        [
            f"{d:<24} {x.gifts_landed:>7,} gifts  p50 {_secs(x.p50_s)}  p95 {_secs(x.p95_s)}"
            f"  max {_secs(x.max_s)}"
            for d, x in sorted(s.latency.items())
        ],
    )
    lines += _section(
        "API calls and quota",
        [
            f"{v:<24} {a.calls:>7,} calls"
            + (
                f"  quota {a.quota_remaining:,} of {a.quota_limit:,} left ({_pct(a.quota_remaining_ratio)})"
                if a.quota_limit is not None and a.quota_remaining is not None
                else ""
            )
            for v, a in sorted(s.api.items())
        ],
    )
    lines += _section("circuit breakers", [f"{d:<24} {state}" for d, state in sorted(s.breakers.items())])
    lines += _section(
        "dead letters",
        [
            f"{d:<24} open {x.open:>6,}  oldest {_secs(x.oldest_open_age_s)}  new in run {x.new:,}"
            for d, x in sorted(s.dead_letters.items())
        ],
    )
    lines += _section(
        "inbound webhooks",
        [
            f"{src:<24} received {x.received:,}  accepted {x.accepted:,}  rejected {x.rejected:,}"
            f"  pending {x.pending:,}  success {_pct(x.success_rate)}"
            for src, x in sorted(s.webhooks.items())
        ],
    )
    lines += _section(
        "outbound events",
        [
            f"{d:<24} delivered {x.delivered:,}  failed {x.failed:,}  success {_pct(x.success_rate)}"
            for d, x in sorted(s.events.items())
        ],
    )
    lines += _section(
        "journeys",
        [
            f"{j:<30} entered {x.entered:,}  suppressed {x.suppressed:,}"
            for j, x in sorted(s.journeys.items())
        ],
    )
    consent_rows = [
        f"{p:<14} opted in {c.opted_in:,}  opted out {c.opted_out:,}  no consent {c.no_consent:,}"
        for p, c in sorted(s.consent.items())
    ]
    if s.consent_events_recorded is not None:
        consent_rows.append(f"consent events recorded in run: {s.consent_events_recorded:,}")
    lines += _section("consent (email)", consent_rows)
    lines += _section("active suppressions", [f"{r:<24} {n:,}" for r, n in sorted(s.suppressions.items())])
    q = s.quality
    if q is not None:
        lines += _section(
            "data quality scorecard",
            [
                f"score {_pct(q.score)}  completeness {_pct(q.completeness)}  validity {_pct(q.validity)}"
                f"  duplicate rate {_pct(q.duplicate_rate)}  consent coverage {_pct(q.consent_coverage)}",
                f"over {q.donors:,} donor(s) and {q.gifts:,} gift(s)",
            ],
        )
    return "\n".join(lines)
