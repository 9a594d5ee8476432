"""What each threshold rule sees: one observation per thing it can judge, breached or clear.

Figures come from ``sync.run_metrics`` of the run being checked (the issue 9 metric contract) and,
for circuit breakers and privacy requests, from the live tables. A thing a rule cannot judge this
time (a destination the run pushed too little to, a run without a quality score) gets no
observation, so its incident, if any, neither opens nor closes. Summaries carry names, ids,
counts and percentages only: nothing here reads a donor's data.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.observability.alerting import rules as r
from donor_sync.observability.alerting.store import Severity


@dataclass(frozen=True)
class Observation:
    """One rule's verdict on one thing (a destination, a vendor, a request...).

    :param summary: what was measured, for the message (names, ids, counts, percentages).
    :param runbook: a runbook other than the rule's own (the scorecard's component runbooks).
    """

    kind: str
    scope: str
    breached: bool
    summary: str
    value: float | None = None
    threshold: float | None = None
    severity: Severity = "warning"
    runbook: str | None = None

    @property
    def key(self) -> str:
        """Return the incident key, ``kind:scope``."""
        return f"{self.kind}:{self.scope}"


@dataclass(frozen=True)
class RunInfo:
    """The run being checked, from sync.runs."""

    run_id: UUID
    dag_id: str
    airflow_run_id: str | None
    started_at: datetime


@dataclass(frozen=True)
class Context:
    """What every rule may read: the run (None: live tables only), the time, the open incidents."""

    run: RunInfo | None
    now: datetime
    open_scopes: Mapping[str, Collection[str]] = field(default_factory=dict)
    quota_reserve_share: float = 0.10


def load_run(conn: psycopg.Connection, run_id: UUID) -> RunInfo:
    """Return the run ``run_id`` of sync.runs.

    :raises LookupError: no such run.
    """
    row = conn.execute(
        "SELECT run_id, dag_id, airflow_run_id, started_at FROM sync.runs WHERE run_id = %s", (run_id,)
    ).fetchone()
    if row is None:
        raise LookupError(f"no run {run_id} in sync.runs")
    return RunInfo(UUID(str(row[0])), row[1], row[2], row[3])


def _metrics(
    conn: psycopg.Connection, run_id: UUID, stage: str, metrics: Collection[str]
) -> dict[tuple[str, str], float]:
    """Return ``{(scope, metric): value}`` of one stage of a run, summed over parts."""
    rows = conn.execute(
        "SELECT scope, metric, sum(value) FROM sync.run_metrics WHERE run_id = %s AND stage = %s"
        " AND metric = ANY(%s) GROUP BY scope, metric",
        (run_id, stage, list(metrics)),
    ).fetchall()
    return {(row[0], row[1]): float(row[2]) for row in rows}


def _n(value: float) -> str:
    return f"{round(value):,}"


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- failed share ---------------------------------------------------------------------------------


def failed_share(conn: psycopg.Connection, rule: r.FailedShareRule, ctx: Context) -> list[Observation]:
    """Records that failed over records pushed, per destination the run pushed enough to."""
    if ctx.run is None:
        return []
    figures = _metrics(conn, ctx.run.run_id, "push", ("pushed", "failed", "dead_lettered"))
    found: list[Observation] = []
    for destination in sorted({scope for scope, _ in figures}):
        enabled, max_share, min_pushed = rule.limits_for(destination)
        pushed = figures.get((destination, "pushed"), 0.0)
        if not enabled or pushed < min_pushed:
            continue
        failed = figures.get((destination, "failed"), 0.0)
        dead = figures.get((destination, "dead_lettered"), 0.0)
        share = failed / pushed
        breached = share > max_share
        critical = rule.critical_share is not None and share >= rule.critical_share
        summary = (
            f"{destination}: {_n(failed)} of {_n(pushed)} records pushed failed ({share:.1%}, "
            f"{_n(dead)} dead-lettered); threshold {max_share:.1%}"
        )
        found.append(
            Observation(
                r.FAILED_SHARE,
                destination,
                breached,
                summary,
                value=round(share, 4),
                threshold=max_share,
                severity="critical" if breached and critical else "warning",
            )
        )
    return found


# -- dead-letter growth ---------------------------------------------------------------------------


def _depth_at_window_start(conn: psycopg.Connection, run: RunInfo, hours: int) -> dict[str, float]:
    """Return the earliest open dead-letter depth per destination recorded within the window."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (scope) scope, value FROM (
            SELECT m.scope, r.started_at, sum(m.value) AS value
            FROM sync.run_metrics m JOIN sync.runs r USING (run_id)
            WHERE m.stage = 'dead_letters' AND m.metric = 'open' AND m.run_id <> %(run)s
              AND r.started_at >= %(since)s AND r.started_at < %(until)s
            GROUP BY m.scope, m.run_id, r.started_at
        ) per_run
        ORDER BY scope, started_at
        """,
        {"run": run.run_id, "since": run.started_at - timedelta(hours=hours), "until": run.started_at},
    ).fetchall()
    return {row[0]: float(row[1]) for row in rows}


def dead_letter_growth(
    conn: psycopg.Connection, rule: r.DeadLetterGrowthRule, ctx: Context
) -> list[Observation]:
    """New dead letters in the run, and the growth of the open depth over the window."""
    if ctx.run is None:
        return []
    letters = _metrics(conn, ctx.run.run_id, "dead_letters", ("new", "open"))
    pushed = _metrics(conn, ctx.run.run_id, "push", ("dead_lettered",))
    before = _depth_at_window_start(conn, ctx.run, rule.window_hours) if rule.max_growth is not None else {}
    found: list[Observation] = []
    for destination in sorted({scope for scope, _ in letters} | {scope for scope, _ in pushed}):
        new = letters.get((destination, "new"), pushed.get((destination, "dead_lettered"), 0.0))
        depth = letters.get((destination, "open"))
        growth = depth - before[destination] if depth is not None and destination in before else None
        too_many = rule.max_new_per_run is not None and new > rule.max_new_per_run
        growing = rule.max_growth is not None and growth is not None and growth > rule.max_growth
        parts = [f"{destination}: {_n(new)} new dead letter(s) in this run"]
        if rule.max_new_per_run is not None:
            parts[0] += f" (limit {_n(rule.max_new_per_run)})"
        if depth is not None:
            parts.append(f"{_n(depth)} open")
        if growth is not None:
            parts.append(
                f"{growth:+,.0f} over {rule.window_hours}h"
                + (f" (limit {_n(rule.max_growth)})" if rule.max_growth is not None else "")
            )
        found.append(
            Observation(
                r.DEAD_LETTER_GROWTH,
                destination,
                too_many or growing,
                "; ".join(parts),
                value=growth if growing else new,
                threshold=rule.max_growth if growing else rule.max_new_per_run,
            )
        )
    return found


# -- quota below the reserve ----------------------------------------------------------------------


def quota_reserve(conn: psycopg.Connection, rule: r.QuotaReserveRule, ctx: Context) -> list[Observation]:
    """Each vendor's share of its API quota left, against the push engine's reserve."""
    if ctx.run is None:
        return []
    reserve = rule.reserve_share if rule.reserve_share is not None else ctx.quota_reserve_share
    figures = _metrics(
        conn, ctx.run.run_id, "api", ("quota_remaining_ratio", "quota_remaining", "quota_limit")
    )
    found: list[Observation] = []
    for vendor in sorted({scope for scope, metric in figures if metric == "quota_remaining_ratio"}):
        ratio = figures[(vendor, "quota_remaining_ratio")]
        left = figures.get((vendor, "quota_remaining"))
        limit = figures.get((vendor, "quota_limit"))
        if limit is not None and limit <= 0:  # no quota reported: nothing to judge
            continue
        counts = f" ({_n(left)} of {_n(limit)} calls)" if left is not None and limit is not None else ""
        breached = ratio < reserve
        summary = f"{vendor}: {ratio:.1%} of the API quota left{counts}; reserve {reserve:.0%}" + (
            ": only high-priority records are pushed until it resets" if breached else ""
        )
        found.append(
            Observation(r.QUOTA_RESERVE, vendor, breached, summary, value=round(ratio, 4), threshold=reserve)
        )
    return found


# -- circuit open ---------------------------------------------------------------------------------


def circuit_open(conn: psycopg.Connection, rule: r.CircuitOpenRule, ctx: Context) -> list[Observation]:
    """Every destination's circuit breaker as it is now."""
    rows = conn.execute(
        "SELECT destination, state, opened_at, next_probe_at, last_error_class::text"
        " FROM sync.circuit_breakers ORDER BY destination"
    ).fetchall()
    found: list[Observation] = []
    for destination, state, opened_at, next_probe_at, error_class in rows:
        if state == "closed":
            found.append(
                Observation(
                    r.CIRCUIT_OPEN,
                    destination,
                    False,
                    f"{destination}: circuit breaker closed; pushes resumed",
                )
            )
            continue
        text = f"{destination}: circuit breaker {state.replace('_', '-')}"
        if opened_at is not None:
            text += f" since {_utc(opened_at)}"
        if error_class:
            text += f", last error class {error_class}"
        text += "; pushes to it are held"
        if state == "open" and next_probe_at is not None:
            text += f" until a probe at {_utc(next_probe_at)} succeeds"
        found.append(Observation(r.CIRCUIT_OPEN, destination, True, text, severity="critical"))
    seen = {o.scope for o in found}
    for scope in sorted(set(ctx.open_scopes.get(r.CIRCUIT_OPEN, ())) - seen):
        found.append(Observation(r.CIRCUIT_OPEN, scope, False, f"{scope}: no circuit breaker state recorded"))
    return found


# -- scorecard drop -------------------------------------------------------------------------------

_COMPONENTS: tuple[str, ...] = ("completeness", "validity", "duplicate_rate", "consent_coverage")
#: Components where a rise is the bad direction.
_LOWER_IS_BETTER = frozenset({"duplicate_rate"})


def _trailing_medians(conn: psycopg.Connection, run: RunInfo, trailing: int) -> tuple[dict[str, float], int]:
    """Return the median of each quality figure over the DAG's previous scored runs, and their number."""
    rows = conn.execute(
        """
        WITH previous AS (
            SELECT r.run_id FROM sync.runs r
            WHERE r.dag_id = %(dag)s AND r.started_at < %(started)s AND r.run_id <> %(run)s
              AND EXISTS (SELECT 1 FROM sync.run_metrics m WHERE m.run_id = r.run_id
                          AND m.stage = 'quality' AND m.scope = '' AND m.metric = 'score')
            ORDER BY r.started_at DESC LIMIT %(n)s
        )
        SELECT metric, percentile_cont(0.5) WITHIN GROUP (ORDER BY value), count(*)
        FROM (SELECT m.run_id, m.metric, sum(m.value) AS value
              FROM sync.run_metrics m JOIN previous p USING (run_id)
              WHERE m.stage = 'quality' AND m.scope = '' AND m.metric = ANY(%(metrics)s)
              GROUP BY m.run_id, m.metric) per_run
        GROUP BY metric
        """,
        {
            "dag": run.dag_id,
            "started": run.started_at,
            "run": run.run_id,
            "n": trailing,
            "metrics": ["score", *_COMPONENTS],
        },
    ).fetchall()
    medians = {row[0]: float(row[1]) for row in rows}
    runs = next((int(row[2]) for row in rows if row[0] == "score"), 0)
    return medians, runs


def scorecard_drop(conn: psycopg.Connection, rule: r.ScorecardDropRule, ctx: Context) -> list[Observation]:
    """The run's quality score against the median of the same DAG's previous runs."""
    if ctx.run is None:
        return []
    latest = {
        m: v
        for (scope, m), v in _metrics(conn, ctx.run.run_id, "quality", ("score", *_COMPONENTS)).items()
        if scope == ""
    }
    if "score" not in latest:
        return []
    medians, runs = _trailing_medians(conn, ctx.run, rule.trailing_runs)
    if runs < rule.min_runs:
        return []
    score, median = latest["score"], medians["score"]
    drop = (median - score) * 100
    breached = drop > rule.max_drop_points
    summary = (
        f"quality score {score:.1%}, {drop:.1f} points below the median of the previous {runs} run(s) "
        f"({median:.1%}); threshold {rule.max_drop_points:g} points"
        if drop > 0
        else f"quality score {score:.1%}, at or above the median of the previous {runs} run(s) ({median:.1%})"
    )
    moves = {
        c: (latest[c] - medians[c]) * (1 if c in _LOWER_IS_BETTER else -1)
        for c in _COMPONENTS
        if c in latest and c in medians
    }
    worst = max(moves, key=lambda c: moves[c], default=None)
    runbook = None
    if worst is not None and moves[worst] > 0:
        summary += f"; {worst} moved most: {medians[worst]:.1%} to {latest[worst]:.1%}"
        runbook = rule.component_runbooks.get(worst)  # type: ignore[call-overload]
    return [
        Observation(
            r.SCORECARD_DROP,
            "score",
            breached,
            summary,
            value=round(drop, 2),
            threshold=rule.max_drop_points,
            runbook=runbook,
        )
    ]


# -- erasure deadline near ------------------------------------------------------------------------


def erasure_deadline(
    conn: psycopg.Connection, rule: r.ErasureDeadlineRule, ctx: Context
) -> list[Observation]:
    """Open rights requests due within ``days_before`` days or overdue, one observation each."""
    from donor_sync.privacy.requests.deadlines import due_soon

    found: list[Observation] = []
    for request in due_soon(conn, rule.days_before, now=ctx.now):
        days = (request.due_at - ctx.now).total_seconds() / 86_400
        what = f"{request.kind} request {request.request_id} ({request.status})"
        if request.overdue(ctx.now):
            summary = (
                f"{what} is OVERDUE: its 30-day deadline was {_utc(request.due_at)}, {-days:.1f} day(s) ago"
            )
        else:
            summary = f"{what} is due {_utc(request.due_at)}, in {days:.1f} day(s)"
        found.append(
            Observation(
                r.ERASURE_DEADLINE,
                str(request.request_id),
                True,
                summary,
                value=round(days, 2),
                threshold=rule.days_before,
                severity="critical" if request.overdue(ctx.now) else "warning",
            )
        )
    gone = sorted(set(ctx.open_scopes.get(r.ERASURE_DEADLINE, ())) - {o.scope for o in found})
    if gone:
        states = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT request_id::text, kind, status FROM sync.privacy_requests"
                " WHERE request_id = ANY(%s::uuid[])",
                (gone,),
            ).fetchall()
        }
        for scope in gone:
            if scope not in states:
                summary = f"request {scope} no longer exists"
            elif states[scope][1] in ("completed", "rejected"):
                summary = f"{states[scope][0]} request {scope} is {states[scope][1]}"
            else:
                summary = (
                    f"{states[scope][0]} request {scope} ({states[scope][1]}) is no longer due within "
                    f"{rule.days_before} day(s)"
                )
            found.append(Observation(r.ERASURE_DEADLINE, scope, False, summary))
    return found


#: The evaluator of each threshold kind.
EVALUATORS: dict[str, Callable[[psycopg.Connection, Any, Context], list[Observation]]] = {
    r.FAILED_SHARE: failed_share,
    r.DEAD_LETTER_GROWTH: dead_letter_growth,
    r.QUOTA_RESERVE: quota_reserve,
    r.CIRCUIT_OPEN: circuit_open,
    r.SCORECARD_DROP: scorecard_drop,
    r.ERASURE_DEADLINE: erasure_deadline,
}


def observe(
    conn: psycopg.Connection,
    rules: r.AlertRules,
    ctx: Context,
    kinds: Collection[str] | None = None,
) -> list[Observation]:
    """Return every enabled rule's observations (only ``kinds`` when given), rule by rule."""
    found: list[Observation] = []
    for kind in r.THRESHOLD_KINDS:
        rule = rules.rule(kind)
        if (kinds is not None and kind not in kinds) or not rule.enabled:
            continue
        found.extend(EVALUATORS[kind](conn, rule, ctx))
    return found
