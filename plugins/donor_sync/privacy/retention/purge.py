"""Run the retention policies: purge, blank or pseudonymize what has expired, in batches, audited.

Each policy (retention.yaml) selects the rows that are due -- older than its age, in the state
that makes them safe to purge (a raw record standardized and not in open quarantine, a dead
letter or an alert incident resolved, a donor with no gift in the period) and not purged
already -- and applies its action in batches of ``batch_size`` rows, each batch locking its rows
``FOR UPDATE SKIP LOCKED`` and committed on its own, so the nightly purge never holds long locks.
A row is never due twice: a second run purges nothing.

Every policy that changed rows writes one ``retention.purged`` audit row with
``{policy, table, action, count}`` (ids and counts, never values). A dry run counts what is due and
changes nothing. Tables with an append-only trigger are refused at run time too, whatever the
configuration says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from donor_sync.errors import ConfigError
from donor_sync.observability import audit
from donor_sync.privacy.retention.settings import Policy, RetentionSettings

log = logging.getLogger(__name__)

__all__ = ["PolicyResult", "RetentionReport", "run_retention"]

_CUTOFF = "(%(now)s::timestamptz - make_interval(years => %(years)s, days => %(days)s))"
_PURGED = '\'{"$purged": "retention"}\'::jsonb'


@dataclass
class PolicyResult:
    """What one policy purged (or, in a dry run, would purge)."""

    policy: str
    table: str
    action: str
    count: int = 0
    #: further counts (staging rows and source attributes of lapsed donors, CSV files dropped)
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class RetentionReport:
    """Every policy's result."""

    dry_run: bool
    results: list[PolicyResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Rows purged (or due) over every policy."""
        return sum(r.count for r in self.results)

    def summary(self) -> str:
        """Return one line per policy (counts only)."""
        verb = "due" if self.dry_run else "purged"
        return "\n".join(
            f"{r.policy}: {r.count} {r.table} row(s) {verb} ({r.action})"
            + "".join(f", {k} {v}" for k, v in sorted(r.extra.items()))
            for r in self.results
        )


# -- what is due, and what each action does -------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """A row-wise policy: the key, the due predicate (alias ``t``) and the SET list per action."""

    key: str
    due: str
    sets: dict[str, str]
    #: extra predicate for actions that leave the row (so a blanked row is not due again)
    not_done: dict[str, str] = field(default_factory=dict)


_ROWS: dict[str, _Rows] = {
    "raw.records": _Rows(
        key="raw_record_id",
        due=f"t.received_at < {_CUTOFF}"
        " AND EXISTS (SELECT 1 FROM staging.dispositions d WHERE d.raw_record_id = t.raw_record_id)"
        " AND NOT EXISTS (SELECT 1 FROM staging.quarantine q WHERE q.raw_record_id = t.raw_record_id"
        "                 AND q.released_at IS NULL)",
        sets={
            "blank": "payload = jsonb_build_object('$purged', 'retention', 'raw_record_id', t.raw_record_id,"
            " 'source_id', t.source_id)"
        },
        not_done={"blank": f"NOT t.payload @> {_PURGED}"},
    ),
    "raw.webhook_inbox": _Rows(
        key="webhook_event_id",
        due=f"t.processed_at IS NOT NULL AND t.processed_at < {_CUTOFF}",
        sets={
            "blank": "body = jsonb_build_object('$purged', 'retention', 'event_id', t.event_id),"
            " headers = '{}'::jsonb, remote_addr = NULL"
        },
        not_done={"blank": f"NOT t.body @> {_PURGED}"},
    ),
    "staging.quarantine": _Rows(
        key="quarantine_id",
        due=f"t.released_at IS NOT NULL AND t.released_at < {_CUTOFF}",
        sets={},
    ),
    "sync.dead_letters": _Rows(
        key="dead_letter_id",
        due=f"t.status <> 'open' AND t.resolved_at < {_CUTOFF}",
        sets={
            "blank": "payload = jsonb_build_object('$purged', 'retention',"
            " 'dead_letter_id', t.dead_letter_id),"
            " edited_payload = CASE WHEN t.edited_payload IS NOT NULL"
            " THEN jsonb_build_object('$purged', 'retention', 'dead_letter_id', t.dead_letter_id) END"
        },
        not_done={"blank": f"NOT t.payload @> {_PURGED}"},
    ),
    "sync.push_log": _Rows(key="push_log_id", due=f"t.pushed_at < {_CUTOFF}", sets={}),
    # Resolved incidents only (an open one is never due, however old), and only once no Slack
    # message is owed for them (the resolution of one that was announced).
    "sync.alert_incidents": _Rows(
        key="incident_id",
        due=f"t.resolved_at IS NOT NULL AND t.resolved_at < {_CUTOFF}"
        " AND (t.notified_at IS NULL OR t.resolution_notified_at IS NOT NULL)",
        sets={},
    ),
}


def _params(policy: Policy, now: datetime, batch: int) -> dict[str, Any]:
    return {"now": now, "days": policy.after_days or 0, "years": policy.after_years or 0, "batch": batch}


def _due_rows(policy: Policy) -> tuple[_Rows, str]:
    rows = _ROWS[policy.table]
    due = rows.due
    if policy.action in rows.not_done:
        due = f"{due} AND {rows.not_done[policy.action]}"
    return rows, due


def _run_rows(
    conn: psycopg.Connection, policy: Policy, result: PolicyResult, params: dict[str, Any], dry_run: bool
) -> None:
    rows, due = _due_rows(policy)
    # Table and key come from the fixed registry above, never from the configuration file.
    table, key = policy.table, rows.key
    if dry_run:
        found = conn.execute(f"SELECT count(*) FROM {table} t WHERE {due}", params).fetchone()
        result.count = int(found[0]) if found else 0
        return
    pick = (
        f"WITH due AS (SELECT t.{key} FROM {table} t WHERE {due} ORDER BY t.{key}"
        " LIMIT %(batch)s FOR UPDATE OF t SKIP LOCKED) "
    )
    if policy.action == "delete":
        apply = f"DELETE FROM {table} t USING due WHERE t.{key} = due.{key} RETURNING t.{key}"
    else:
        apply = (
            f"UPDATE {table} t SET {rows.sets[policy.action]} FROM due"
            f" WHERE t.{key} = due.{key} RETURNING t.{key}"
        )
    statement = pick + apply
    while True:
        changed = len(conn.execute(statement, params).fetchall())
        conn.commit()
        result.count += changed
        if changed == 0:
            break


# -- lapsed donors ----------------------------------------------------------------------------------

#: generalized values kept by pseudonymization (everything else in ``fields`` becomes NULL)
_GENERALIZED = {
    "postal_code": "left({c}, 3)",
    "birth_date": "date_trunc('year', {c})::date",
}


def _donor_value(policy: Policy, column: str, alias: str) -> str:
    if policy.action == "pseudonymize" and column in _GENERALIZED:
        return _GENERALIZED[column].format(c=f"{alias}.{column}")
    return "NULL"


def _run_donors(
    conn: psycopg.Connection, policy: Policy, result: PolicyResult, params: dict[str, Any], dry_run: bool
) -> None:
    fields = policy.fields
    names = {"first_name", "last_name"} & set(fields)
    # A donor is due while any cleared field still differs from what the action leaves.
    pending = " OR ".join(f"t.{f} IS DISTINCT FROM {_donor_value(policy, f, 't')}" for f in fields)
    due = (
        f"t.merged_into IS NULL AND t.erased_at IS NULL AND t.created_at < {_CUTOFF}"
        " AND NOT EXISTS (SELECT 1 FROM core.gifts g WHERE g.donor_id = t.donor_id"
        f" AND g.gift_at >= {_CUTOFF})"
        f" AND ({pending})"
    )
    if dry_run:
        found = conn.execute(f"SELECT count(*) FROM core.donors t WHERE {due}", params).fetchone()
        result.count = int(found[0]) if found else 0
        return
    core_sets = [f"{f} = {_donor_value(policy, f, 't')}" for f in fields]
    staging_sets = [f"{f} = {_donor_value(policy, f, 's')}" for f in fields]
    if names:
        core_sets += ["last_name_key = NULL", "aliases = '{}'"]
        staging_sets += ["last_name_key = NULL", "nickname = NULL"]
    if "email" in fields:
        core_sets.append("email_verified = false")
    statement = (
        f"WITH due AS (SELECT t.donor_id FROM core.donors t WHERE {due} ORDER BY t.donor_id"
        "  LIMIT %(batch)s FOR UPDATE OF t SKIP LOCKED),"
        # the donor and the donors merged into it (their PII is the same person's)
        f" d AS (UPDATE core.donors t SET {', '.join(core_sets)} FROM due"
        "  WHERE t.donor_id = due.donor_id OR t.merged_into = due.donor_id RETURNING t.donor_id),"
        f" s AS (UPDATE staging.donors s SET {', '.join(staging_sets)} FROM d"
        "  WHERE s.donor_id = d.donor_id RETURNING 1),"
        " a AS (UPDATE core.donor_sources x SET attributes = NULL FROM d"
        "  WHERE x.donor_id = d.donor_id AND x.attributes IS NOT NULL RETURNING 1),"
        " k AS (DELETE FROM core.donor_match_keys m USING d WHERE m.donor_id = d.donor_id RETURNING 1)"
        " SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM d), (SELECT count(*) FROM s),"
        " (SELECT count(*) FROM a)"
    )
    for name in ("donors_including_merged", "staging_rows", "source_attributes"):
        result.extra.setdefault(name, 0)
    while True:
        row = conn.execute(statement, params).fetchone()
        conn.commit()
        assert row is not None
        lapsed, donors, staging_rows, attributes = (int(v) for v in row)
        result.count += lapsed
        result.extra["donors_including_merged"] += donors
        result.extra["staging_rows"] += staging_rows
        result.extra["source_attributes"] += attributes
        if lapsed == 0:
            break


# -- CSV row tables ---------------------------------------------------------------------------------


def _run_csv(
    conn: psycopg.Connection, policy: Policy, result: PolicyResult, params: dict[str, Any], dry_run: bool
) -> None:
    files = conn.execute(
        "SELECT f.csv_file_id FROM raw.csv_files f JOIN raw.batches b USING (batch_id)"
        f" WHERE f.loaded_at < {_CUTOFF} AND b.status = 'standardized'"
        "   AND to_regclass(format('raw.%%I', 'csv_file_' || f.csv_file_id)) IS NOT NULL"
        "   AND NOT EXISTS (SELECT 1 FROM staging.quarantine q WHERE q.batch_id = f.batch_id"
        "                   AND q.released_at IS NULL)"
        " ORDER BY f.csv_file_id",
        params,
    ).fetchall()
    conn.commit()
    result.extra["files"] = 0
    for (csv_file_id,) in files:
        table = sql.Identifier("raw", f"csv_file_{int(csv_file_id)}")
        counted = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        rows = int(counted[0]) if counted else 0
        if not dry_run:
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
        conn.commit()
        result.count += rows
        result.extra["files"] += 1


# -- running -----------------------------------------------------------------------------------------


def _append_only(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid"
        " WHERE g.tgrelid = to_regclass(%s) AND p.proname = 'forbid_update_delete')",
        (table,),
    ).fetchone()
    conn.commit()
    return bool(row and row[0])


def run_retention(
    conn: psycopg.Connection,
    settings: RetentionSettings,
    *,
    now: datetime,
    actor: str,
    dry_run: bool = False,
    run_id: UUID | None = None,
    progress: Callable[[PolicyResult], None] | None = None,
) -> RetentionReport:
    """Run every policy in order; commit per batch; audit each policy that changed rows.

    :param conn: a connection of its own (each batch is committed on it).
    :param now: the time ages are measured from.
    :param dry_run: count what is due, change nothing, write no audit row.
    :raises ConfigError: a policy on a table that turned out append-only in the database.
    """
    report = RetentionReport(dry_run)
    conn.commit()
    for policy in settings.policies:
        if policy.table != "raw.csv_rows" and _append_only(conn, policy.table):
            raise ConfigError(f"retention policy {policy.name}: {policy.table} is append-only; never purged")
        result = PolicyResult(policy.name, policy.table, policy.action)
        params = _params(policy, now, settings.batch_size)
        if policy.table == "core.donors":
            _run_donors(conn, policy, result, params, dry_run)
        elif policy.table == "raw.csv_rows":
            _run_csv(conn, policy, result, params, dry_run)
        else:
            _run_rows(conn, policy, result, params, dry_run)
        report.results.append(result)
        if result.count and not dry_run:
            audit.record(
                conn,
                actor=actor,
                action="retention.purged",
                object_type="table",
                object_id=policy.table,
                details={
                    "policy": policy.name,
                    "table": policy.table,
                    "action": policy.action,
                    "count": result.count,
                    "older_than": policy.age,
                    **result.extra,
                },
                run_id=run_id,
            )
            conn.commit()
        log.info(
            "retention %s: %s %s row(s) %s (%s)",
            policy.name,
            result.count,
            policy.table,
            "due" if dry_run else "purged",
            policy.action,
        )
        if progress is not None:
            progress(result)
    return report
