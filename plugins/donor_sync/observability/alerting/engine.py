"""Evaluate the alert rules, keep the incidents, and post one message per change.

:func:`evaluate_and_notify` runs every threshold rule over a run's metrics and the live tables,
opens an incident for each new breach, counts the continuing ones seen (silently), resolves the
ones found clear (after ``clear_after_runs`` evaluations in a row), and then delivers every
message owed: one when an incident opens, one when it turns critical, one when it is resolved.
Airflow's notifiers record task failures and missed deadlines through :func:`record_task_failure`,
:func:`record_task_success`, :func:`open_event_incident` and :func:`resolve_deadline_incident`.

Sending is passed in (``send(text) -> bool``; the operators give the Slack webhook sender), so
nothing here imports Airflow. A send that fails (False or an exception) leaves its message owed,
and the next evaluation, whichever task runs it, sends it: no alert is lost, none goes twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import psycopg

from donor_sync.observability.alerting import rules as r
from donor_sync.observability.alerting import store
from donor_sync.observability.alerting.conditions import Context, Observation, load_run, observe
from donor_sync.observability.alerting.links import Links
from donor_sync.observability.alerting.messages import render, render_digest
from donor_sync.observability.alerting.store import Notice, RunRef

log = logging.getLogger(__name__)

#: Posts one Slack message; returns whether it was delivered (an exception counts as not).
Sender = Callable[[str], bool]


@dataclass
class DeliveryReport:
    """What one delivery pass sent.

    :param sent: (message type, incident key) of every message delivered, digests included.
    :param error: why the pass stopped early (the exception class, or ``send_failed``).
    :param pending: messages still owed after the pass.
    """

    sent: list[tuple[str, str]] = field(default_factory=list)
    messages: int = 0
    digests: int = 0
    error: str | None = None
    pending: int = 0


@dataclass
class AlertReport:
    """What :func:`evaluate_and_notify` saw and did (incident keys)."""

    run_id: UUID | None
    observations: list[Observation] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    continuing: list[str] = field(default_factory=list)
    clearing: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    delivery: DeliveryReport = field(default_factory=DeliveryReport)

    def summary(self) -> str:
        """Return a one-line account for the task log (keys and counts only)."""
        breached = sum(1 for o in self.observations if o.breached)
        opened = f" ({', '.join(self.opened)})" if self.opened else ""
        resolved = f" ({', '.join(self.resolved)})" if self.resolved else ""
        text = (
            f"{len(self.observations)} observation(s), {breached} breached; "
            f"opened {len(self.opened)}{opened}, continuing {len(self.continuing)}, "
            f"resolved {len(self.resolved)}{resolved}; "
            f"{self.delivery.messages} message(s) sent, {self.delivery.pending} still owed"
        )
        return text + (f" (delivery stopped: {self.delivery.error})" if self.delivery.error else "")


# -- delivery -------------------------------------------------------------------------------------


def _try_send(send: Sender, text: str) -> str | None:
    """Send ``text``; return None when delivered, else why not (never the exception's message)."""
    try:
        delivered = send(text)
    except Exception as exc:
        log.warning("alert not delivered (%s)", type(exc).__name__)
        return type(exc).__name__
    return None if delivered else "send_failed"


def finish_delivery(conn: psycopg.Connection, notices: Sequence[Notice], error: str | None) -> None:
    """Close a claim: mark the messages delivered, or leave them owed and count the failure; commit."""
    if error is None:
        store.mark_delivered(conn, notices)
        conn.commit()
        return
    conn.rollback()
    store.record_failure(conn, [n.incident.incident_id for n in notices], error)
    conn.commit()


def deliver_pending(
    conn: psycopg.Connection,
    send: Sender,
    links: Links,
    *,
    max_messages: int = 6,
    incident_ids: Collection[int] | None = None,
) -> DeliveryReport:
    """Send every message owed (of ``incident_ids`` when given), one incident at a time.

    Each message is claimed with a row lock, sent, and marked delivered in one transaction, so an
    evaluation running at the same time skips it. At most ``max_messages`` go out: when more are
    owed, the last one is a digest of all the rest. The pass stops at the first failed send (Slack
    is down or refusing): what is left stays owed for the next evaluation.
    """
    report = DeliveryReport()
    while report.messages < max_messages:
        owed = store.count_pending(conn, incident_ids=incident_ids)
        if owed == 0:
            break
        digest = report.messages == max_messages - 1 and owed > 1
        notices = store.claim_pending(conn, incident_ids=incident_ids, limit=None if digest else 1)
        if not notices:  # another evaluation holds them: it sends them
            conn.rollback()
            break
        text = render_digest(notices, links, limit=max_messages) if digest else render(notices[0], links)
        error = _try_send(send, text)
        finish_delivery(conn, notices, error)
        if error is not None:
            report.error = error
            break
        report.messages += 1
        report.digests += int(digest)
        report.sent.extend((n.type, n.incident.incident_key) for n in notices)
    report.pending = store.count_pending(conn, incident_ids=incident_ids)
    conn.commit()
    return report


# -- threshold rules ------------------------------------------------------------------------------


def _evaluated_kinds(rules: r.AlertRules, kinds: Collection[str] | None) -> list[str]:
    unknown = set(kinds or ()) - set(r.THRESHOLD_KINDS)
    if unknown:
        raise ValueError(
            f"unknown alert kind(s) {', '.join(sorted(unknown))}; one of {', '.join(r.THRESHOLD_KINDS)}"
        )
    return [k for k in r.THRESHOLD_KINDS if (kinds is None or k in kinds) and rules.rule(k).enabled]


def _context(
    conn: psycopg.Connection, rules: r.AlertRules, run_id: UUID | None, kinds: list[str], now: datetime
) -> Context:
    run = load_run(conn, run_id) if run_id is not None else None
    reserve = 0.10
    if r.QUOTA_RESERVE in kinds and rules.rules.quota_reserve.reserve_share is None:
        from donor_sync.delivery.push.settings import load_push_settings

        reserve = load_push_settings().push.quota_reserve_share
    open_now = store.open_incidents(conn, kinds)
    scopes: dict[str, set[str]] = {}
    for incident in open_now:
        scopes.setdefault(incident.kind, set()).add(incident.scope)
    return Context(run, now, scopes, reserve)


def _run_ref(ctx: Context) -> RunRef:
    if ctx.run is None:
        return RunRef()
    return RunRef(ctx.run.run_id, ctx.run.dag_id, ctx.run.airflow_run_id)


def apply_observations(
    conn: psycopg.Connection, observations: Sequence[Observation], rules: r.AlertRules, run: RunRef
) -> AlertReport:
    """Open, see again or clear the incident of each observation (each in its own transaction)."""
    report = AlertReport(run.run_id, list(observations))
    for obs in observations:
        if obs.breached:
            _, opened = store.upsert_open(
                conn,
                kind=obs.kind,
                scope=obs.scope,
                severity=obs.severity,
                summary=obs.summary,
                runbook=obs.runbook or rules.runbook_of(obs.kind),
                run=run,
                value=obs.value,
                threshold=obs.threshold,
            )
            (report.opened if opened else report.continuing).append(obs.key)
        else:
            cleared = store.see_clear(
                conn,
                obs.key,
                summary=obs.summary,
                run=run,
                clear_after=rules.rule(obs.kind).clear_after_runs,
                value=obs.value,
            )
            if cleared is not None:
                (report.resolved if cleared[1] else report.clearing).append(obs.key)
        conn.commit()
    return report


def evaluate_and_notify(
    conn: psycopg.Connection,
    *,
    run_id: UUID | None,
    send: Sender,
    links: Links,
    rules: r.AlertRules | None = None,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
) -> AlertReport:
    """Evaluate the threshold rules for a run, keep the incidents, and deliver the messages owed.

    Commits as it goes (each incident change, each message). Messages owed from earlier
    evaluations or notifiers (a send that failed) are delivered too.

    :param run_id: the sync.runs run whose metrics are judged; None: the live tables only
        (circuit breakers, privacy requests).
    :param links: builds the run and runbook links of the messages.
    :param kinds: evaluate only these threshold kinds (default: every enabled rule).
    :param now: the time deadlines are measured from (default: now).
    :raises LookupError: ``run_id`` is not in sync.runs.
    """
    rules = rules or r.load_alert_rules()
    evaluated = _evaluated_kinds(rules, kinds)
    ctx = _context(conn, rules, run_id, evaluated, now or datetime.now(UTC))
    observations = observe(conn, rules, ctx, evaluated)
    conn.commit()
    report = apply_observations(conn, observations, rules, _run_ref(ctx))
    report.delivery = deliver_pending(conn, send, links, max_messages=rules.slack.max_messages_per_evaluation)
    return report


@dataclass(frozen=True)
class PlannedChange:
    """What an evaluation would do with one observation (``alerts check --dry-run``)."""

    observation: Observation
    action: str  # open, continue, escalate, resolve, clearing (n of m), ok


def plan_alerts(
    conn: psycopg.Connection,
    *,
    run_id: UUID | None,
    rules: r.AlertRules | None = None,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
) -> tuple[list[PlannedChange], int]:
    """Return what :func:`evaluate_and_notify` would do, and the messages already owed; writes nothing."""
    rules = rules or r.load_alert_rules()
    evaluated = _evaluated_kinds(rules, kinds)
    ctx = _context(conn, rules, run_id, evaluated, now or datetime.now(UTC))
    current = {i.incident_key: i for i in store.open_incidents(conn, evaluated)}
    changes: list[PlannedChange] = []
    for obs in observe(conn, rules, ctx, evaluated):
        incident = current.get(obs.key)
        if obs.breached:
            if incident is None:
                action = "open"
            elif store.SEVERITY_RANK[obs.severity] > store.SEVERITY_RANK.get(
                incident.notified_severity or "", 9
            ):
                action = "escalate"
            else:
                action = "continue"
        elif incident is None:
            action = "ok"
        else:
            need = rules.rule(obs.kind).clear_after_runs
            streak = incident.clear_streak + 1
            action = "resolve" if streak >= need else f"clearing ({streak} of {need})"
        changes.append(PlannedChange(obs, action))
    owed = store.count_pending(conn)
    conn.rollback()
    return changes, owed


# -- incidents Airflow's notifiers raise ----------------------------------------------------------


def sync_run_id(conn: psycopg.Connection, dag_id: str, airflow_run_id: str | None) -> UUID | None:
    """Return the sync.runs id of an Airflow run (one indexed lookup), None if it never opened."""
    if not airflow_run_id:
        return None
    row = conn.execute(
        "SELECT run_id FROM sync.runs WHERE dag_id = %s AND airflow_run_id = %s", (dag_id, airflow_run_id)
    ).fetchone()
    return UUID(str(row[0])) if row else None


def open_event_incident(
    conn: psycopg.Connection,
    *,
    kind: str,
    scope: str,
    summary: str,
    dag_id: str,
    airflow_run_id: str | None,
    rules: r.AlertRules | None = None,
) -> tuple[int, bool]:
    """Record a task failure or a missed deadline as an incident; commit; return (id, newly opened)."""
    if kind not in r.EVENT_KINDS:
        raise ValueError(f"not an event kind: {kind!r}")
    rules = rules or r.load_alert_rules()
    run = RunRef(sync_run_id(conn, dag_id, airflow_run_id), dag_id, airflow_run_id)
    incident_id, opened = store.upsert_open(
        conn,
        kind=kind,
        scope=scope,
        severity="warning",
        summary=summary,
        runbook=rules.runbook_of(kind),
        run=run,
    )
    conn.commit()
    return incident_id, opened


def task_scope(dag_id: str, task_id: str) -> str:
    """Return the incident scope of a task, ``<dag>.<task>``."""
    return f"{dag_id}.{task_id}"


def record_task_failure(
    conn: psycopg.Connection,
    *,
    dag_id: str,
    task_id: str,
    airflow_run_id: str | None,
    summary: str,
    send: Sender,
    links: Links,
    rules: r.AlertRules | None = None,
) -> tuple[bool, DeliveryReport]:
    """Open (or see again) ``task_failed:<dag>.<task>`` and post it only if its opening is owed.

    A task failing every hour posts once; the message goes again only if it was never delivered.

    :return: (newly opened, the delivery).
    """
    incident_id, opened = open_event_incident(
        conn,
        kind=r.TASK_FAILED,
        scope=task_scope(dag_id, task_id),
        summary=summary,
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
        rules=rules,
    )
    return opened, deliver_pending(conn, send, links, max_messages=1, incident_ids=[incident_id])


def record_task_success(
    conn: psycopg.Connection,
    *,
    dag_id: str,
    task_id: str,
    airflow_run_id: str | None,
    summary: str,
    send: Sender,
    links: Links | Callable[[], Links],
) -> bool:
    """Resolve the task's failure incident, if one is open, and post the resolution.

    One indexed UPDATE when nothing is open (every successful task runs this).

    :param links: the links, or a function returning them (called only when there is a message).

    :return: whether an incident was resolved.
    """
    resolved = store.resolve(
        conn,
        f"{r.TASK_FAILED}:{task_scope(dag_id, task_id)}",
        summary=summary,
        run=RunRef(None, dag_id, airflow_run_id),
    )
    conn.commit()
    if resolved is None:
        return False
    if resolved[1]:
        built = links if isinstance(links, Links) else links()
        deliver_pending(conn, send, built, max_messages=1, incident_ids=[resolved[0]])
    return True


def resolve_deadline_incident(
    conn: psycopg.Connection,
    dag_id: str,
    run_id: UUID | str | None = None,
    *,
    send: Sender | None = None,
    links: Links | None = None,
) -> bool:
    """Resolve ``deadline_missed:<dag_id>`` after a run of the DAG succeeded; call it from close_run.

    With ``send``, the resolution is posted now; without, it stays owed and the next
    :func:`evaluate_and_notify` (any check_alerts task) posts it.

    :param run_id: the sync.runs id of the run that succeeded (named in the message and linked).
    :return: whether an incident was resolved.
    """
    airflow_run_id = None
    if run_id is not None:
        row = conn.execute(
            "SELECT airflow_run_id FROM sync.runs WHERE run_id = %s", (UUID(str(run_id)),)
        ).fetchone()
        airflow_run_id = row[0] if row else None
    summary = f"{dag_id} run {airflow_run_id} succeeded" if airflow_run_id else f"a run of {dag_id} succeeded"
    resolved = store.resolve(
        conn,
        f"{r.DEADLINE_MISSED}:{dag_id}",
        summary=summary,
        run=RunRef(UUID(str(run_id)) if run_id else None, dag_id if airflow_run_id else None, airflow_run_id),
    )
    conn.commit()
    if resolved is None:
        return False
    if resolved[1] and send is not None:
        deliver_pending(conn, send, links or Links(), max_messages=1, incident_ids=[resolved[0]])
    return True
