"""``donor-sync quarantine``: review, fix, release or discard records standardization quarantined.

The staging database is ``$DONOR_SYNC_DB_URL`` or the embedded server (as for every command).
``show`` prints the offending values so an operator can fix them; nothing here logs them.
Each change is audited in sync.audit_log as ``cli:<user>`` with the note given.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from donor_sync.cli import main
from donor_sync.cli_support import COUNT, ROW_ID, cli_actor, connect_staging
from donor_sync.cli_support import friendly_errors as _friendly_errors

if TYPE_CHECKING:
    from donor_sync.standardize.quarantine import Outcome, QuarantinedRecord


def _summary(record: QuarantinedRecord) -> str:
    state = "open" if record.released_at is None else f"{record.resolution} by {record.released_by}"
    when = record.quarantined_at.strftime("%Y-%m-%d %H:%M")
    return (
        f"{record.quarantine_id:>8}  {when}  {record.source}/{record.entity} {record.source_id}  "
        f"[{', '.join(record.codes)}]  {state}"
    )


def _report(outcome: Outcome) -> None:
    if outcome.disposition == "staged":
        click.echo(
            f"raw record {outcome.raw_record_id} staged; quarantine row {outcome.quarantine_id} closed"
        )
        return
    click.echo(f"raw record {outcome.raw_record_id} is still quarantined:")
    for reason in outcome.reasons:
        click.echo(f"  {reason.get('field')}: {reason.get('code')} - {reason.get('message')}")
    sys.exit(1)


@main.group("quarantine")
def quarantine_group() -> None:
    """Records standardization quarantined: list, show, fix, release as is, discard."""


@quarantine_group.command("list")
@click.option("--source", default=None, help="Only this source (stripe, donorbox, a CSV format's source...).")
@click.option("--code", default=None, help="Only rows with a reason of this code (invalid_email...).")
@click.option(
    "--all", "include_closed", is_flag=True, help="Include closed rows (fixed, released, discarded)."
)
@click.option("--limit", type=COUNT, default=100, show_default=True)
@_friendly_errors
def list_command(source: str | None, code: str | None, include_closed: bool, limit: int) -> None:
    """List quarantine rows, newest first (ids, kinds of record and reason codes; no values)."""
    from donor_sync.standardize.quarantine import list_quarantined

    with connect_staging() as conn:
        rows = list_quarantined(conn, source=source, code=code, include_closed=include_closed, limit=limit)
    for row in rows:
        click.echo(_summary(row))
    if not rows:
        click.echo("nothing quarantined" + (" matches" if source or code else ""))


@quarantine_group.command("show")
@click.argument("quarantine_id", type=ROW_ID)
@click.option("--json", "as_json", is_flag=True, help="Print the row as JSON.")
@_friendly_errors
def show_command(quarantine_id: int, as_json: bool) -> None:
    """Show one quarantine row with every reason and the offending values."""
    from donor_sync.standardize.quarantine import get_quarantined

    with connect_staging() as conn:
        record = get_quarantined(conn, quarantine_id)
    if as_json:
        payload = dict(record.__dict__)
        click.echo(json.dumps(payload, default=str, indent=2, ensure_ascii=False))
        return
    click.echo(_summary(record))
    click.echo(f"  raw record {record.raw_record_id}, batch {record.batch_id}")
    for reason in record.reasons:
        click.echo(f"  - {reason.get('field')}: {reason.get('code')} ({reason.get('rule')})")
        click.echo(f"    {reason.get('message')}")
        if reason.get("value") is not None:
            click.echo(f"    value: {reason.get('value')!r}")
    if record.note:
        click.echo(f"  note: {record.note}")


def _overrides(assignments: tuple[str, ...]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for item in assignments:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise click.BadParameter(f"expected field=value, got {item!r}", param_hint="FIELD=VALUE")
        values[name.strip()] = value if value != "" else None
    return values


@quarantine_group.command("fix")
@click.argument("quarantine_id", type=ROW_ID)
@click.argument("assignments", nargs=-1, required=True, metavar="FIELD=VALUE...")
@click.option("--note", default=None, help="Why (kept in the quarantine row and the audit log).")
@_friendly_errors
def fix_command(quarantine_id: int, assignments: tuple[str, ...], note: str | None) -> None:
    """Standardize a record again with corrected intake fields (e.g. email=jane@example.org; empty clears)."""
    from donor_sync.standardize import quarantine
    from donor_sync.standardize.settings import load_settings

    overrides = _overrides(assignments)
    with connect_staging() as conn:
        outcome = quarantine.fix(
            conn,
            quarantine_id,
            overrides,
            actor=cli_actor(),
            settings=load_settings(),
            now=datetime.now(UTC),
            note=note,
        )
    _report(outcome)


@quarantine_group.command("release")
@click.argument("quarantine_id", type=ROW_ID)
@click.option("--note", default=None, help="Why it is accepted as it is.")
@_friendly_errors
def release_command(quarantine_id: int, note: str | None) -> None:
    """Stage a record as it is: what parses is kept, what does not is left empty and flagged."""
    from donor_sync.standardize import quarantine
    from donor_sync.standardize.settings import load_settings

    with connect_staging() as conn:
        outcome = quarantine.release(
            conn, quarantine_id, actor=cli_actor(), settings=load_settings(), now=datetime.now(UTC), note=note
        )
    _report(outcome)


@quarantine_group.command("discard")
@click.argument("quarantine_id", type=ROW_ID)
@click.option("--note", required=True, help="Why the record is dropped for good.")
@_friendly_errors
def discard_command(quarantine_id: int, note: str) -> None:
    """Drop a record for good: the quarantine row is closed, the record stays quarantined."""
    from donor_sync.standardize import quarantine

    with connect_staging() as conn:
        record = quarantine.discard(conn, quarantine_id, actor=cli_actor(), note=note)
    click.echo(f"quarantine row {record.quarantine_id} discarded (raw record {record.raw_record_id})")
