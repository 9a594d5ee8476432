"""The compliance report: evidence, for a period, that consent and donors' rights were honoured.

Built from the tables alone (``donor-sync compliance report``), with ids and counts only:

- consent events recorded (``core.consent_events.recorded_at`` in the period), by source, purpose,
  channel and status;
- suppressions added and lifted in the period, by reason code, and those active at its end;
- consent-gate enforcement: ``sync.run_metrics`` rows named ``gate_*`` (donors blocked without
  consent, blocked as sharing, blocked by residency, fields withheld...), summed per metric and
  destination;
- privacy requests received in the period by kind and status; requests overdue at the period's end
  (due date passed, neither completed nor rejected); days to complete those completed in the
  period (median, max) and how many finished after their due date;
- erasure receipts written in the period per system: done/failed, read-back verified or not;
- retention purges (``sync.audit_log`` action ``retention.purged``, ``details.count``) per table;
- the audit chain's verification.

The period is whole UTC days: ``since`` 00:00 up to the end of ``until``.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from donor_sync.errors import DonorSyncError
from donor_sync.privacy.audit_chain import ChainReport, verify_chain


@dataclass(frozen=True)
class ConsentCount:
    source: str
    purpose: str
    channel: str
    status: str
    events: int


@dataclass(frozen=True)
class SuppressionCount:
    reason_code: str
    added: int
    lifted: int
    active_at_end: int


@dataclass(frozen=True)
class GateCount:
    metric: str  # gate_blocked_no_consent, gate_blocked_sharing, gate_fields_withheld...
    scope: str  # destination ('' = the whole stage)
    total: float
    runs: int


@dataclass(frozen=True)
class RequestCount:
    kind: str
    status: str
    requests: int


@dataclass(frozen=True)
class OverdueRequest:
    request_id: str
    kind: str
    status: str
    due_at: str
    days_overdue: float


@dataclass(frozen=True)
class ReceiptCount:
    system: str
    done: int
    failed: int
    verified: int
    unverified: int


@dataclass(frozen=True)
class PurgeCount:
    table: str  # the audit row's object_type
    purges: int
    rows: int


@dataclass
class ComplianceReport:
    """Everything the report says; :meth:`as_json` and :meth:`as_text` render it."""

    since: date
    until: date
    generated_at: datetime
    consent_events: list[ConsentCount] = field(default_factory=list)
    suppressions: list[SuppressionCount] = field(default_factory=list)
    gate: list[GateCount] = field(default_factory=list)
    requests: list[RequestCount] = field(default_factory=list)
    overdue: list[OverdueRequest] = field(default_factory=list)
    completed: int = 0
    completed_late: int = 0
    median_days_to_complete: float | None = None
    max_days_to_complete: float | None = None
    erasure_receipts: list[ReceiptCount] = field(default_factory=list)
    retention_purges: list[PurgeCount] = field(default_factory=list)
    audit_chain: ChainReport | None = None

    def as_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        data = asdict(self)
        data["since"] = self.since.isoformat()
        data["until"] = self.until.isoformat()
        data["generated_at"] = self.generated_at.isoformat()
        data["audit_chain"] = None if self.audit_chain is None else self.audit_chain.as_json()
        return data

    def as_text(self) -> str:
        """Return the report for people: one section per topic, ids and counts only."""
        out: list[str] = [
            f"Compliance report {self.since.isoformat()} .. {self.until.isoformat()} (UTC days)",
            f"generated {self.generated_at.strftime('%Y-%m-%d %H:%M:%S')} UTC",
            "",
            f"Consent events recorded: {sum(c.events for c in self.consent_events)}",
        ]
        out += [
            f"  {c.source:<20} {c.purpose:<12} {c.channel:<6} {c.status:<12} {c.events:>8}"
            for c in self.consent_events
        ]
        out += ["", "Suppressions (added / lifted in period / active at end), by reason:"]
        out += [
            f"  {s.reason_code:<20} {s.added:>8} {s.lifted:>8} {s.active_at_end:>8}"
            for s in self.suppressions
        ] or ["  none"]
        out += ["", "Consent gate enforcement (sum over runs), by metric and destination:"]
        out += [
            f"  {g.metric:<32} {g.scope or '(all)':<20} {_number(g.total):>10}  ({g.runs} run(s))"
            for g in self.gate
        ] or ["  no gate metrics recorded"]
        out += ["", f"Privacy requests received: {sum(r.requests for r in self.requests)}"]
        out += [f"  {r.kind:<16} {r.status:<12} {r.requests:>8}" for r in self.requests]
        days = (
            f"median {self.median_days_to_complete:.1f} d, max {self.max_days_to_complete:.1f} d"
            if self.median_days_to_complete is not None and self.max_days_to_complete is not None
            else "none completed"
        )
        out.append(
            f"  completed in period: {self.completed} ({days}); after their due date: {self.completed_late}"
        )
        out.append(f"  overdue at period end: {len(self.overdue)}")
        out += [
            f"    {o.request_id} {o.kind} {o.status} due {o.due_at} ({o.days_overdue:.1f} d overdue)"
            for o in self.overdue
        ]
        out += ["", "Erasure receipts (done / failed / verified / unverified), by system:"]
        out += [
            f"  {r.system:<20} {r.done:>6} {r.failed:>6} {r.verified:>6} {r.unverified:>6}"
            for r in self.erasure_receipts
        ] or ["  none"]
        out += ["", "Retention purges (runs / rows), by table:"]
        out += [f"  {p.table:<32} {p.purges:>6} {p.rows:>10}" for p in self.retention_purges] or ["  none"]
        out += ["", "Audit log: " + (self.audit_chain.summary() if self.audit_chain else "not verified")]
        return "\n".join(out) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def period_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """Return ``[since 00:00 UTC, the day after until 00:00 UTC)``.

    :raises DonorSyncError: ``until`` is before ``since``.
    """
    if until < since:
        raise DonorSyncError(f"--until {until.isoformat()} is before --since {since.isoformat()}")
    start = datetime.combine(since, time.min, tzinfo=UTC)
    return start, datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)


def build_report(
    conn: psycopg.Connection, *, since: date, until: date, verify_audit: bool = True
) -> ComplianceReport:
    """Build the report for the UTC days ``since`` .. ``until`` (both included). Reads only.

    :param verify_audit: recompute the audit chain (a full pass over sync.audit_log).
    """
    start, end = period_bounds(since, until)
    now = datetime.now(UTC)
    as_of = min(now, end)
    report = ComplianceReport(since=since, until=until, generated_at=now)
    window = {"start": start, "end": end, "as_of": as_of}

    report.consent_events = [
        ConsentCount(*row)
        for row in conn.execute(
            "SELECT source, purpose, channel, status, count(*)::int FROM core.consent_events"
            " WHERE recorded_at >= %(start)s AND recorded_at < %(end)s"
            " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            window,
        )
    ]
    report.suppressions = [
        SuppressionCount(*row)
        for row in conn.execute(
            """
            SELECT reason_code,
                   count(*) FILTER (WHERE created_at >= %(start)s AND created_at < %(end)s)::int,
                   count(*) FILTER (WHERE lifted_at >= %(start)s AND lifted_at < %(end)s)::int,
                   count(*) FILTER (WHERE created_at < %(end)s
                                      AND (lifted_at IS NULL OR lifted_at >= %(end)s))::int
              FROM core.suppressions
             WHERE created_at < %(end)s
             GROUP BY reason_code
            HAVING count(*) FILTER (WHERE created_at >= %(start)s AND created_at < %(end)s) > 0
                OR count(*) FILTER (WHERE lifted_at >= %(start)s AND lifted_at < %(end)s) > 0
                OR count(*) FILTER (WHERE lifted_at IS NULL OR lifted_at >= %(end)s) > 0
             ORDER BY reason_code
            """,
            window,
        )
    ]
    report.gate = [
        GateCount(row[0], row[1], float(row[2]), row[3])
        for row in conn.execute(
            r"SELECT metric, scope, sum(value), count(DISTINCT run_id)::int FROM sync.run_metrics"
            r" WHERE metric LIKE 'gate\_%%' AND recorded_at >= %(start)s AND recorded_at < %(end)s"
            r" GROUP BY metric, scope ORDER BY metric, scope",
            window,
        )
    ]
    report.requests = [
        RequestCount(*row)
        for row in conn.execute(
            "SELECT kind, status, count(*)::int FROM sync.privacy_requests"
            " WHERE received_at >= %(start)s AND received_at < %(end)s GROUP BY 1, 2 ORDER BY 1, 2",
            window,
        )
    ]
    report.overdue = [
        OverdueRequest(str(row[0]), row[1], row[2], row[3].astimezone(UTC).isoformat(), float(row[4]))
        for row in conn.execute(
            """
            SELECT request_id, kind, status, due_at,
                   round((extract(epoch FROM %(as_of)s::timestamptz - due_at) / 86400)::numeric, 2)
              FROM sync.privacy_requests
             WHERE due_at < %(as_of)s AND received_at < %(end)s
               AND (completed_at IS NULL OR completed_at > %(as_of)s) AND status <> 'rejected'
             ORDER BY due_at, request_id
            """,
            window,
        )
    ]
    durations: list[float] = []
    for days, late in conn.execute(
        "SELECT extract(epoch FROM completed_at - received_at) / 86400, completed_at > due_at"
        " FROM sync.privacy_requests WHERE completed_at >= %(start)s AND completed_at < %(end)s",
        window,
    ):
        durations.append(float(days))
        report.completed_late += int(bool(late))
    report.completed = len(durations)
    if durations:
        report.median_days_to_complete = round(statistics.median(durations), 2)
        report.max_days_to_complete = round(max(durations), 2)
    report.erasure_receipts = [
        ReceiptCount(*row)
        for row in conn.execute(
            """
            SELECT r.system,
                   count(*) FILTER (WHERE r.status = 'done')::int,
                   count(*) FILTER (WHERE r.status = 'failed')::int,
                   count(*) FILTER (WHERE r.verified)::int,
                   count(*) FILTER (WHERE NOT r.verified)::int
              FROM sync.privacy_receipts r
              JOIN sync.privacy_requests q USING (request_id)
             WHERE q.kind = 'erasure' AND r.done_at >= %(start)s AND r.done_at < %(end)s
             GROUP BY r.system ORDER BY r.system
            """,
            window,
        )
    ]
    report.retention_purges = [
        PurgeCount(row[0], row[1], int(row[2]))
        for row in conn.execute(
            """
            SELECT coalesce(object_type, ''), count(*)::int,
                   coalesce(sum(CASE WHEN jsonb_typeof(details -> 'count') = 'number'
                                     THEN (details ->> 'count')::numeric END), 0)
              FROM sync.audit_log
             WHERE action = 'retention.purged' AND at >= %(start)s AND at < %(end)s
             GROUP BY 1 ORDER BY 1
            """,
            window,
        )
    ]
    if verify_audit:
        report.audit_chain = verify_chain(conn)
    return report
