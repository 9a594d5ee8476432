"""``donor-sync alerts``: the incidents, a check now (or a dry run), the rules and their docs page.

* ``alerts list [--all] [--json] [--limit N]``: open incidents (``--all``: resolved ones too).
* ``alerts check [--run-id ID] [--kind KIND] [--dry-run] [--airflow-url URL]``: evaluate the
  threshold rules for a run (default: the latest) and post what changed to the ``slack_alerts``
  connection; ``--dry-run`` shows what would open, continue or resolve, and writes and posts
  nothing.
* ``alerts validate [--rules PATH]``, ``alerts docs [--write | --check]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click

from donor_sync.cli_support import connect_staging, emit_generated_doc
from donor_sync.cli_support import friendly_errors as _friendly_errors

if TYPE_CHECKING:
    from donor_sync.observability.alerting import Incident


#: The threshold rules (donor_sync.observability.alerting.rules.THRESHOLD_KINDS; kept here so the
#: command line starts without loading the models).
RULE_KINDS = (
    "failed_share",
    "dead_letter_growth",
    "quota_reserve",
    "circuit_open",
    "scorecard_drop",
    "erasure_deadline",
)


@click.group("alerts")
def alerts_group() -> None:
    """Slack alerts: open incidents, a check now, the rules and their docs page."""


def _incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "incident_id": incident.incident_id,
        "key": incident.incident_key,
        "kind": incident.kind,
        "scope": incident.scope,
        "severity": incident.severity,
        "summary": incident.summary,
        "resolution_summary": incident.resolution_summary,
        "runbook": incident.runbook,
        "times_seen": incident.times_seen,
        "dag_id": incident.dag_id,
        "airflow_run_id": incident.airflow_run_id,
        "opened_at": incident.opened_at.isoformat(),
        "last_seen_at": incident.last_seen_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "notified_at": incident.notified_at.isoformat() if incident.notified_at else None,
        "resolution_notified_at": (
            incident.resolution_notified_at.isoformat() if incident.resolution_notified_at else None
        ),
        "notify_failures": incident.notify_failures,
    }


def _state(incident: Incident) -> str:
    if incident.resolved_at is None:
        return "open" if incident.notified_at else "open, unsent"
    return "resolved" if incident.resolution_notified_at or not incident.notified_at else "resolved, unsent"


@alerts_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Resolved incidents too (newest first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", default=50, show_default=True, help="Incidents listed with --all.")
@_friendly_errors
def list_command(show_all: bool, as_json: bool, limit: int) -> None:
    """List open incidents: key, severity, since when, how often seen, whether Slack has it."""
    from donor_sync.observability.alerting import open_incidents, recent_incidents

    with connect_staging() as conn:
        incidents = recent_incidents(conn, limit=limit) if show_all else open_incidents(conn)
    if as_json:
        click.echo(json.dumps([_incident_json(i) for i in incidents], indent=2))
        return
    if not incidents:
        click.echo("no open incidents" if not show_all else "no incidents")
        return
    click.echo(f"  {'incident':<58}{'severity':<10}{'state':<18}{'opened (UTC)':<18}{'seen':>5}")
    for i in incidents:
        click.echo(
            f"  {i.incident_key:<58}{i.severity:<10}{_state(i):<18}"
            f"{i.opened_at.astimezone().strftime('%Y-%m-%d %H:%M'):<18}{i.times_seen:>5}"
        )
        click.echo(f"      {i.resolution_summary if i.resolved_at else i.summary}")


def _latest_run(conn: Any) -> UUID | None:
    row = conn.execute("SELECT run_id FROM sync.runs ORDER BY started_at DESC LIMIT 1").fetchone()
    return UUID(str(row[0])) if row else None


@alerts_group.command("check")
@click.option("--run-id", type=click.UUID, help="The sync.runs run to judge (default: the latest).")
@click.option(
    "--kind",
    "kinds",
    type=click.Choice(RULE_KINDS),
    multiple=True,
    help="Evaluate only this rule (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Show what would open, continue or resolve; post nothing.")
@click.option(
    "--airflow-url", default="http://localhost:8080", show_default=True, help="Airflow UI, for run links."
)
@_friendly_errors
def check_command(run_id: UUID | None, kinds: tuple[str, ...], dry_run: bool, airflow_url: str) -> None:
    """Evaluate the alert rules now and post what changed to the slack_alerts connection."""
    from donor_sync.observability.alerting import Links, evaluate_and_notify, load_alert_rules, plan_alerts

    rules = load_alert_rules()
    with connect_staging() as conn:
        run = run_id or _latest_run(conn)
        if run_id and conn.execute("SELECT 1 FROM sync.runs WHERE run_id = %s", (run_id,)).fetchone() is None:
            raise click.BadParameter(f"no run {run_id} in sync.runs", param_hint="--run-id")
        click.echo(f"run {run}" if run else "no runs yet: live tables only")
        if dry_run:
            changes, owed = plan_alerts(conn, run_id=run, rules=rules, kinds=kinds or None)
            for change in changes:
                o = change.observation
                click.echo(
                    f"  {change.action:<16}{o.key:<58}{o.severity if o.breached else '':<9}{o.summary}"
                )
            if not changes:
                click.echo("  nothing to judge")
            click.echo(f"dry run: nothing written or posted; {owed} message(s) owed from earlier checks")
            return
        from donor_sync.observability.alerts import slack_sender

        links = Links(airflow_base_url=airflow_url, docs_base_url=rules.slack.docs_base_url)
        report = evaluate_and_notify(
            conn, run_id=run, send=slack_sender(), links=links, rules=rules, kinds=kinds or None
        )
    click.echo(report.summary())


@alerts_group.command("validate")
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path, dir_okay=False), help="Another rules file."
)
@_friendly_errors
def validate_command(rules_path: Path | None) -> None:
    """Validate the alert rules (errors name the file, the line and the field)."""
    from donor_sync.observability.alerting import load_alert_rules
    from donor_sync.observability.alerting.rules import THRESHOLD_KINDS

    rules = load_alert_rules(rules_path)
    enabled = [k for k in THRESHOLD_KINDS if rules.rule(k).enabled]
    click.echo(f"alert rules valid: {len(enabled)} of {len(THRESHOLD_KINDS)} enabled ({', '.join(enabled)})")


@alerts_group.command("docs")
@click.option("--write", is_flag=True, help="Write docs/alerts.md.")
@click.option("--check", is_flag=True, help="Fail when docs/alerts.md is stale.")
@_friendly_errors
def docs_command(write: bool, check: bool) -> None:
    """Print (or write, or check) docs/alerts.md, generated from the rule models and the file."""
    from donor_sync.observability.alerting.docs import doc_path, render

    emit_generated_doc(
        render(), doc_path(), regenerate="donor-sync alerts docs --write", write=write, check=check
    )
