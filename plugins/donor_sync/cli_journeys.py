"""``donor-sync journeys``: the dry run, a decision run, the report, validation and the docs page.

* ``journeys plan [--since ISO] [--json] [--limit N]``: who would enter which journey and who is
  suppressed and why (gift keys, donor ids, reason codes; counts per journey). Writes nothing.
* ``journeys run``: decide now and queue the triggers (what the ``journeys`` task does).
* ``journeys report [--days N] [--json]``: enrollments by journey, status, reason and variant;
  experiment results per arm.
* ``journeys validate [--rules PATH]``, ``journeys docs [--write | --check]``.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from donor_sync.cli_support import COUNT, connect_staging, emit_generated_doc
from donor_sync.cli_support import friendly_errors as _friendly_errors

if TYPE_CHECKING:
    from donor_sync.journeys import DecideReport


@click.group("journeys")
def journeys_group() -> None:
    """Stewardship journeys: who enters which journey, once, and who is kept out and why."""


def _rules(path: Path | None) -> Any:
    from donor_sync.journeys import load_rules

    return load_rules(path)


def _print_report(report: DecideReport, limit: int) -> None:
    window = report.since.isoformat() if report.since else "the gift-age bound only"
    click.echo(
        f"{'dry run' if report.dry_run else 'run'} at {report.now.isoformat()}; gifts changed since {window}"
    )
    click.echo(report.summary())
    for journey_id, counts in report.counts().items():
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        click.echo(f"  {journey_id}: {shown}")
    if report.entries:
        click.echo(f"  {'journey':<30}{'gift_key':<36}{'donor_id':<38}{'status':<11}{'reason / variant'}")
    for entry in report.entries[:limit]:
        extra = entry.reason_code or ""
        if entry.variant:
            extra = (extra + " " if extra else "") + f"{entry.experiment_id}:{entry.variant}"
        click.echo(
            f"  {entry.journey_id:<30}{entry.gift_key:<36}{entry.donor_id:<38}{entry.status:<11}{extra}"
        )
    if len(report.entries) > limit:
        click.echo(f"  ... {len(report.entries) - limit} more (--limit, or --json for all)")


def _as_json(report: DecideReport) -> str:
    return json.dumps(
        {
            "dry_run": report.dry_run,
            "now": report.now.isoformat(),
            "since": report.since.isoformat() if report.since else None,
            "totals": report.totals(),
            "counts": report.counts(),
            "triggers_queued": report.triggers_queued,
            "entries": [dataclasses.asdict(e) for e in report.entries],
        },
        indent=2,
    )


@journeys_group.command("plan")
@click.option(
    "--since", type=click.DateTime(), help="Gifts changed since (ISO, UTC); default: the watermark."
)
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path, dir_okay=False), help="Another rules file."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (every entry).")
@click.option("--limit", type=COUNT, default=50, show_default=True, help="Entries listed.")
@_friendly_errors
def plan_command(since: datetime | None, rules_path: Path | None, as_json: bool, limit: int) -> None:
    """Show who would enter which journey and who is suppressed and why; writes nothing."""
    from datetime import UTC

    from donor_sync.journeys import plan

    rules = _rules(rules_path)
    with connect_staging() as conn:
        report = plan(conn, rules=rules, since=since.replace(tzinfo=UTC) if since else None)
    click.echo(_as_json(report)) if as_json else _print_report(report, limit)


@journeys_group.command("run")
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path, dir_okay=False), help="Another rules file."
)
@click.option("--limit", type=COUNT, default=50, show_default=True, help="Entries listed.")
@_friendly_errors
def run_command(rules_path: Path | None, limit: int) -> None:
    """Decide now: enroll, suppress with reasons, queue triggers (as the DAG's journeys task)."""
    from donor_sync.journeys import decide

    rules = _rules(rules_path)
    with connect_staging() as conn:
        report = decide(conn, rules=rules)
    _print_report(report, limit)


@journeys_group.command("report")
@click.option(
    "--days",
    type=click.IntRange(1, 36_500),
    default=90,
    show_default=True,
    help="Window after entry for experiment results.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly_errors
def report_command(days: int, as_json: bool) -> None:
    """Enrollments by journey, status, reason and variant; experiment results per arm."""
    from donor_sync.journeys import experiment_results, status_rows
    from donor_sync.resolve.fiscal import load_giving_settings

    currency = load_giving_settings().reporting_currency
    with connect_staging() as conn:
        rows = status_rows(conn)
        arms = experiment_results(conn, reporting_currency=currency, days=days)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "enrollments": [dataclasses.asdict(r) for r in rows],
                    "experiments": [
                        {
                            **dataclasses.asdict(a),
                            "giving_after": str(a.giving_after),
                            "conversion": a.conversion,
                        }
                        for a in arms
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(f"  {'journey':<30}{'destination':<12}{'status':<11}{'reason':<24}{'variant':<28}{'n':>7}")
    for r in rows:
        arm = f"{r.experiment_id}:{r.variant}" if r.variant else ""
        click.echo(
            f"  {r.journey_id:<30}{r.destination:<12}{r.status:<11}{r.reason_code or '':<24}{arm:<28}"
            f"{r.enrollments:>7}"
        )
    if arms:
        click.echo(f"experiments (gave again within {days} days of entry, {currency}):")
        for a in arms:
            click.echo(
                f"  {a.experiment_id}:{a.variant:<20} donors {a.donors:>6}  entries {a.enrollments:>6}  "
                f"triggered {a.triggered:>6}  gave again {a.gave_again:>6} ({a.conversion:.1%})  "
                f"giving {a.giving_after}"
            )


@journeys_group.command("validate")
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path, dir_okay=False), help="Another rules file."
)
@_friendly_errors
def validate_command(rules_path: Path | None) -> None:
    """Validate the journey rules (errors name the file, the line and the field)."""
    rules = _rules(rules_path)
    click.echo(f"{len(rules.journeys)} journey(s) valid")


@journeys_group.command("docs")
@click.option("--write", is_flag=True, help="Write docs/journeys.md.")
@click.option("--check", is_flag=True, help="Fail when docs/journeys.md is stale.")
@_friendly_errors
def docs_command(write: bool, check: bool) -> None:
    """Print (or write, or check) docs/journeys.md, generated from the rule models and the file."""
    from donor_sync.journeys.rules_doc import doc_path, render

    emit_generated_doc(
        render(), doc_path(), regenerate="donor-sync journeys docs --write", write=write, check=check
    )
