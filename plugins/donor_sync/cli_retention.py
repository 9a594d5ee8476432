"""``donor-sync retention run [--dry-run]``: apply the retention policies now (or count what is due).

The staging database is ``$DONOR_SYNC_DB_URL`` or the embedded server. Each policy that changes
rows is audited as ``retention.purged`` by ``cli:<user>``; a dry run changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from donor_sync.cli_support import cli_actor
from donor_sync.cli_support import friendly_errors as _friendly_errors


@click.group("retention")
def retention_group() -> None:
    """Retention policies (include/mappings/privacy/retention.yaml): purge what has expired."""


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="Count what is due; change nothing.")
@click.option(
    "--policies",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Another policies file (default include/mappings/privacy/retention.yaml).",
)
@_friendly_errors
def run_command(dry_run: bool, path: Path | None) -> None:
    """Run every retention policy in batches (each purge counted and audited)."""
    from donor_sync.db import connect, resolve_target
    from donor_sync.privacy.retention import load_retention_settings, run_retention

    settings = load_retention_settings(path)
    with connect(resolve_target().url) as conn:
        report = run_retention(conn, settings, now=datetime.now(UTC), actor=cli_actor(), dry_run=dry_run)
    click.echo(report.summary() or "no retention policies")
    click.echo(("dry run: nothing changed; " if dry_run else "") + f"{report.total} row(s) in all")
