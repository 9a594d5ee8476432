"""``sync.alert_incidents``: open an incident, see it again, resolve it, and hand out the messages owed.

A key (``kind:scope``) has at most one open incident (a partial unique index). Opening is
``INSERT ... ON CONFLICT DO UPDATE``, so two evaluations that see the same breach at once meet on
one row: one inserts it, the other counts it seen. A message is owed while its timestamp is NULL
(``notified_at`` for the opening, ``resolution_notified_at`` for the resolution, and
``notified_severity`` below ``severity`` for an escalation). :func:`claim_pending` locks owed rows
``FOR UPDATE SKIP LOCKED``: the caller sends, then marks them delivered and commits, so a second
evaluation never sends the same message, and one whose send failed leaves it owed for the next.

Functions here do not commit; :mod:`donor_sync.observability.alerting.engine` does.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import psycopg

Severity = Literal["warning", "critical"]
NoticeType = Literal["opened", "escalated", "resolved"]
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}


@dataclass(frozen=True)
class RunRef:
    """The run an observation belongs to: sync.runs' id and Airflow's ids, each possibly unknown."""

    run_id: UUID | None = None
    dag_id: str | None = None
    airflow_run_id: str | None = None


@dataclass(frozen=True)
class Incident:
    """One row of sync.alert_incidents."""

    incident_id: int
    incident_key: str
    kind: str
    scope: str
    severity: str
    summary: str
    resolution_summary: str | None
    runbook: str
    value: Decimal | None
    threshold: Decimal | None
    dag_id: str | None
    airflow_run_id: str | None
    first_run_id: UUID | None
    last_run_id: UUID | None
    times_seen: int
    clear_streak: int
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    notified_at: datetime | None
    notified_severity: str | None
    resolution_notified_at: datetime | None
    notify_failures: int
    last_notify_error: str | None

    @property
    def is_open(self) -> bool:
        """Return whether the incident is still open."""
        return self.resolved_at is None


@dataclass(frozen=True)
class Notice:
    """A message owed for an incident: its opening, its escalation to critical, or its resolution."""

    type: NoticeType
    incident: Incident


_COLUMNS = (
    "incident_id, incident_key, kind, scope, severity, summary, resolution_summary, runbook, value, "
    "threshold, dag_id, airflow_run_id, first_run_id, last_run_id, times_seen, clear_streak, opened_at, "
    "last_seen_at, resolved_at, notified_at, notified_severity, resolution_notified_at, notify_failures, "
    "last_notify_error"
)
#: Rows that owe a message (the predicate of alert_incidents_pending_idx, narrowed).
_PENDING = (
    "((resolved_at IS NULL"
    " AND (notified_at IS NULL OR (severity = 'critical' AND notified_severity = 'warning')))"
    " OR (resolved_at IS NOT NULL AND notified_at IS NOT NULL AND resolution_notified_at IS NULL))"
)
_NOTICE_TYPE = (
    "CASE WHEN resolved_at IS NOT NULL THEN 'resolved' WHEN notified_at IS NULL THEN 'opened' "
    "ELSE 'escalated' END"
)


def _incident(row: Sequence[Any]) -> Incident:
    return Incident(*row)


def upsert_open(
    conn: psycopg.Connection,
    *,
    kind: str,
    scope: str,
    severity: Severity,
    summary: str,
    runbook: str,
    run: RunRef,
    value: float | None = None,
    threshold: float | None = None,
) -> tuple[int, bool]:
    """Open the incident of ``kind:scope``, or count the open one seen again; return (id, opened).

    Seeing it again updates its summary, value, severity and latest run and resets its clear
    streak; ``times_seen`` grows once per run (an evaluation repeated for the same run does not
    count twice).
    """
    row = conn.execute(
        """
        INSERT INTO sync.alert_incidents AS i (
            incident_key, kind, scope, severity, summary, runbook, value, threshold,
            dag_id, airflow_run_id, first_run_id, last_run_id)
        VALUES (%(key)s, %(kind)s, %(scope)s, %(severity)s, %(summary)s, %(runbook)s, %(value)s,
                %(threshold)s, %(dag_id)s, %(airflow_run_id)s, %(run_id)s, %(run_id)s)
        ON CONFLICT (incident_key) WHERE resolved_at IS NULL DO UPDATE SET
            times_seen = i.times_seen + CASE
                WHEN EXCLUDED.last_run_id IS NULL OR i.last_run_id IS DISTINCT FROM EXCLUDED.last_run_id
                THEN 1 ELSE 0 END,
            last_seen_at = now(),
            severity = EXCLUDED.severity,
            summary = EXCLUDED.summary,
            runbook = EXCLUDED.runbook,
            value = EXCLUDED.value,
            threshold = EXCLUDED.threshold,
            dag_id = COALESCE(EXCLUDED.dag_id, i.dag_id),
            airflow_run_id = CASE WHEN EXCLUDED.dag_id IS NULL THEN i.airflow_run_id
                                  ELSE EXCLUDED.airflow_run_id END,
            last_run_id = COALESCE(EXCLUDED.last_run_id, i.last_run_id),
            clear_streak = 0,
            last_clear_run_id = NULL
        RETURNING incident_id, (xmax = 0) AS inserted
        """,
        {
            "key": f"{kind}:{scope}",
            "kind": kind,
            "scope": scope,
            "severity": severity,
            "summary": summary,
            "runbook": runbook,
            "value": value,
            "threshold": threshold,
            "dag_id": run.dag_id,
            "airflow_run_id": run.airflow_run_id,
            "run_id": run.run_id,
        },
    ).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def see_clear(
    conn: psycopg.Connection,
    key: str,
    *,
    summary: str,
    run: RunRef,
    clear_after: int = 1,
    value: float | None = None,
) -> tuple[int, bool] | None:
    """Count the open incident of ``key`` seen clear; resolve it after ``clear_after`` in a row.

    :return: (incident id, resolved now), or None when no incident of ``key`` is open.
    """
    row = conn.execute(
        """
        WITH current AS (
            SELECT incident_id,
                   CASE WHEN %(run_id)s::uuid IS NULL OR last_clear_run_id IS DISTINCT FROM %(run_id)s::uuid
                        THEN clear_streak + 1 ELSE clear_streak END AS streak
            FROM sync.alert_incidents
            WHERE incident_key = %(key)s AND resolved_at IS NULL
            FOR UPDATE
        )
        UPDATE sync.alert_incidents AS i SET
            clear_streak = current.streak,
            last_clear_run_id = %(run_id)s,
            resolution_summary = %(summary)s,
            value = COALESCE(%(value)s, i.value),
            resolved_at = CASE WHEN current.streak >= %(need)s THEN greatest(now(), i.opened_at) END,
            dag_id = CASE WHEN current.streak >= %(need)s AND %(dag_id)s::text IS NOT NULL
                          THEN %(dag_id)s ELSE i.dag_id END,
            airflow_run_id = CASE WHEN current.streak >= %(need)s AND %(dag_id)s::text IS NOT NULL
                                  THEN %(airflow_run_id)s ELSE i.airflow_run_id END
        FROM current
        WHERE i.incident_id = current.incident_id
        RETURNING i.incident_id, i.resolved_at IS NOT NULL
        """,
        {
            "key": key,
            "run_id": run.run_id,
            "summary": summary,
            "value": value,
            "need": clear_after,
            "dag_id": run.dag_id,
            "airflow_run_id": run.airflow_run_id,
        },
    ).fetchone()
    return (int(row[0]), bool(row[1])) if row else None


def resolve(conn: psycopg.Connection, key: str, *, summary: str, run: RunRef) -> tuple[int, bool] | None:
    """Resolve the open incident of ``key`` now (one indexed statement).

    :return: (incident id, whether its opening had been notified), or None when none is open.
    """
    row = conn.execute(
        """
        UPDATE sync.alert_incidents SET
            resolved_at = greatest(now(), opened_at),
            resolution_summary = %(summary)s,
            dag_id = COALESCE(%(dag_id)s, dag_id),
            airflow_run_id = CASE WHEN %(dag_id)s::text IS NULL THEN airflow_run_id
                                  ELSE %(airflow_run_id)s END
        WHERE incident_key = %(key)s AND resolved_at IS NULL
        RETURNING incident_id, notified_at IS NOT NULL
        """,
        {"key": key, "summary": summary, "dag_id": run.dag_id, "airflow_run_id": run.airflow_run_id},
    ).fetchone()
    return (int(row[0]), bool(row[1])) if row else None


def open_incidents(conn: psycopg.Connection, kinds: Collection[str] | None = None) -> list[Incident]:
    """Return the open incidents (of ``kinds``, or all), oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM sync.alert_incidents WHERE resolved_at IS NULL"
        " AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[])) ORDER BY opened_at, incident_id",
        {"kinds": list(kinds) if kinds is not None else None},
    ).fetchall()
    return [_incident(r) for r in rows]


def recent_incidents(conn: psycopg.Connection, *, limit: int = 50) -> list[Incident]:
    """Return the latest incidents, open or resolved, newest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM sync.alert_incidents ORDER BY opened_at DESC, incident_id DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [_incident(r) for r in rows]


def get_incident(conn: psycopg.Connection, incident_id: int) -> Incident | None:
    """Return one incident by id."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM sync.alert_incidents WHERE incident_id = %s", (incident_id,)
    ).fetchone()
    return _incident(row) if row else None


def count_pending(
    conn: psycopg.Connection, *, incident_ids: Collection[int] | None = None, exclude: Collection[int] = ()
) -> int:
    """Return how many incidents owe a message (among ``incident_ids`` when given)."""
    row = conn.execute(
        f"SELECT count(*) FROM sync.alert_incidents WHERE {_PENDING}"
        " AND (%(ids)s::bigint[] IS NULL OR incident_id = ANY(%(ids)s::bigint[]))"
        " AND NOT (incident_id = ANY(%(exclude)s::bigint[]))",
        {"ids": list(incident_ids) if incident_ids is not None else None, "exclude": list(exclude)},
    ).fetchone()
    return int(row[0]) if row else 0


def claim_pending(
    conn: psycopg.Connection,
    *,
    incident_ids: Collection[int] | None = None,
    exclude: Collection[int] = (),
    limit: int | None = None,
) -> list[Notice]:
    """Lock incidents that owe a message and return the messages, oldest incident first.

    Rows another transaction holds are skipped (it is sending them). The locks last until the
    caller commits (after :func:`mark_delivered`) or rolls back (the send failed).
    """
    rows = conn.execute(
        f"SELECT {_NOTICE_TYPE}, {_COLUMNS} FROM sync.alert_incidents WHERE {_PENDING}"
        " AND (%(ids)s::bigint[] IS NULL OR incident_id = ANY(%(ids)s::bigint[]))"
        " AND NOT (incident_id = ANY(%(exclude)s::bigint[]))"
        " ORDER BY opened_at, incident_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
        {
            "ids": list(incident_ids) if incident_ids is not None else None,
            "exclude": list(exclude),
            "limit": limit,
        },
    ).fetchall()
    return [Notice(r[0], _incident(r[1:])) for r in rows]


def mark_delivered(conn: psycopg.Connection, notices: Sequence[Notice]) -> None:
    """Record that these messages were delivered (the rows are locked by :func:`claim_pending`)."""
    for notice in notices:
        incident = notice.incident
        if notice.type == "resolved":
            conn.execute(
                "UPDATE sync.alert_incidents SET resolution_notified_at = now() WHERE incident_id = %s",
                (incident.incident_id,),
            )
        else:
            conn.execute(
                "UPDATE sync.alert_incidents SET notified_at = COALESCE(notified_at, now()),"
                " notified_severity = %s WHERE incident_id = %s",
                (incident.severity, incident.incident_id),
            )


def record_failure(conn: psycopg.Connection, incident_ids: Collection[int], error: str) -> None:
    """Count a failed delivery on these incidents (their messages stay owed)."""
    conn.execute(
        "UPDATE sync.alert_incidents SET notify_failures = notify_failures + 1, last_notify_error = %s"
        " WHERE incident_id = ANY(%s::bigint[])",
        (error[:200], list(incident_ids)),
    )
