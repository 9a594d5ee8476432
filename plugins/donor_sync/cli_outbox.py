"""``donor-sync outbox`` and ``donor-sync merges``: the dry run, the queue's state, CRM merges to do.

* ``outbox plan --destination D [--samples N] [--full | --donor ID...] [--show-pii] [--json]``:
  what the next queue run of D would create, update, delete, archive and merge, whether the
  blast-radius guard would stop it, and sample records (masked unless ``--show-pii``, which is
  audited as PII access). Writes nothing else.
* ``outbox status [--destination D]``: outbox rows by destination, entity and state.
* ``merges list [--destination D] [--status S]`` and ``merges done ID``: donor merges a person must
  carry out in a CRM (Salesforce), and marking one done once it is merged there.

The staging database is ``$DONOR_SYNC_DB_URL`` or the embedded server (as for every command).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from donor_sync.cli_support import (
    COUNT,
    DESTINATION,
    MAPPED_DESTINATION,
    ROW_ID,
    UUID_TEXT,
    check_destination_filter,
    cli_actor,
    connect_staging,
)
from donor_sync.cli_support import friendly_errors as _friendly_errors

if TYPE_CHECKING:
    from donor_sync.delivery.outbox import Plan, Renderer


def _default_renderer(destination: str) -> Renderer:
    from donor_sync.delivery.outbox import default_renderer

    return default_renderer(destination)


#: Builds a destination's renderer; the mapping engine's, unless a test or tool swaps it.
renderer_factory: Callable[[str], Renderer] = _default_renderer


@click.group("outbox")
def outbox_group() -> None:
    """What each destination is waiting to receive: the dry run and the queue's state."""


def _print_plan(plan: Plan) -> None:
    click.echo(f"plan for {plan.destination} ({plan.scope}); core rows read: {plan.rows_read}")
    header = f"  {'entity':<28}{'create':>8}{'update':>8}{'delete':>8}{'archive':>8}{'merge':>7}"
    click.echo(header + f"{'same':>8}{'skipped':>8}{'withdrawn':>10}")
    for entity, c in sorted(plan.entities.items()):
        click.echo(
            f"  {entity:<28}{c.creates:>8}{c.updates:>8}{c.deletes:>8}{c.archives:>8}{c.merges:>7}"
            f"{c.unchanged:>8}{c.skipped + c.deferred:>8}{c.withdrawn:>10}"
        )
    if plan.merges_listed:
        click.echo(f"  {plan.merges_listed} merge(s) would be listed for a person (donor-sync merges list)")
    guard = plan.verdict
    click.echo(
        "blast-radius guard: "
        + (f"WOULD STOP the run: {guard.describe()}" if guard.exceeded else "within limits")
    )
    if plan.samples:
        click.echo("samples" + (" (PII shown)" if plan.pii_revealed else " (masked)") + ":")
        for s in plan.samples:
            click.echo(f"  {s.entity} {s.action} {s.record_key}: {json.dumps(s.payload, default=str)}")


@outbox_group.command("plan")
@click.option(
    "--destination",
    "-d",
    type=MAPPED_DESTINATION,
    required=True,
    help="Destination name (salesforce, hubspot...).",
)
@click.option(
    "--samples", type=click.IntRange(min=0), default=5, show_default=True, help="Per entity and action."
)
@click.option("--full", is_flag=True, help="Recompute every record (the nightly run), not only what changed.")
@click.option(
    "--donor", "donors", type=UUID_TEXT, multiple=True, help="Only these donors and their gifts (repeatable)."
)
@click.option("--show-pii", is_flag=True, help="Show sample payloads in clear (audited as PII access).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@_friendly_errors
def plan_command(
    *, destination: str, samples: int, full: bool, donors: tuple[str, ...], show_pii: bool, as_json: bool
) -> None:
    """Dry run: what the next queue run of a destination would do, without writing it."""
    from donor_sync.delivery.outbox import Scope, plan_destination

    if full and donors:
        raise click.UsageError("--full and --donor exclude each other")
    scope = Scope.full() if full else Scope.of(donor_ids=donors) if donors else Scope.incremental()
    renderer = renderer_factory(destination)
    with connect_staging() as conn:
        plan = plan_destination(
            conn, destination, renderer, scope=scope, samples=samples, reveal_pii=show_pii
        )
        if show_pii and plan.samples:
            from donor_sync.observability.audit import record_pii_access

            record_pii_access(
                conn,
                actor=cli_actor(),
                object_type="destination",
                object_id=destination,
                details={
                    "via": "cli",
                    "command": "outbox plan",
                    "records": [s.record_key for s in plan.samples],
                },
            )
            conn.commit()
    if as_json:
        click.echo(json.dumps(plan.as_dict(), default=str, indent=2))
    else:
        _print_plan(plan)


@outbox_group.command("status")
@click.option("--destination", "-d", default=None, help="Only this destination.")
@_friendly_errors
def status_command(destination: str | None) -> None:
    """Outbox rows by destination, entity and state (pending, in flight, succeeded, dead, canceled)."""
    from donor_sync.delivery.outbox import outbox_status

    with connect_staging() as conn:
        check_destination_filter(conn, destination, "sync.outbox")
        rows = outbox_status(conn, destination=destination)
    if not rows:
        click.echo("the outbox is empty")
        return
    click.echo(f"{'destination':<14}{'entity':<28}{'state':<11}{'rows':>9}  oldest queued      next due")
    for r in rows:
        due = f"{r.next_attempt_at:%Y-%m-%d %H:%M}" if r.next_attempt_at else ""
        oldest = f"{r.oldest_created_at:%Y-%m-%d %H:%M}"
        click.echo(f"{r.destination:<14}{r.entity:<28}{r.state:<11}{r.rows:>9}  {oldest}   {due}")


@click.group("merges")
def merges_group() -> None:
    """Donor merges reaching the destinations; the ones a person must do in the CRM."""


@merges_group.command("list")
@click.option("--destination", "-d", default=None, help="Only this destination.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["pending", "merged", "failed", "superseded"]),
    help="Statuses to list (default: pending).",
)
@click.option("--limit", type=COUNT, default=100, show_default=True)
@_friendly_errors
def merges_list(destination: str | None, statuses: tuple[str, ...], limit: int) -> None:
    """List destination merges, oldest first (donor ids and the destination's record ids)."""
    from donor_sync.delivery.outbox import list_merges

    with connect_staging() as conn:
        check_destination_filter(conn, destination, "sync.destination_merges")
        merges = list_merges(conn, destination=destination, statuses=statuses or ("pending",), limit=limit)
    for m in merges:
        how = "merge in the CRM" if m.method == "crm_task" else "merge API"
        click.echo(
            f"{m.destination_merge_id:>7}  {m.destination:<12} {m.status:<10} {how:<17}"
            f" keep {m.survivor_remote_id or '-'} (donor {m.survivor_key})"
            f" <- merge away {m.merged_remote_id or '-'} (donor {m.merged_key})"
        )
    click.echo(f"{len(merges)} merge(s)" if merges else "no merges to show")


@merges_group.command("done")
@click.argument("destination_merge_id", type=ROW_ID)
@_friendly_errors
def merges_done(destination_merge_id: int) -> None:
    """Mark a listed merge done once a person merged the two records in the CRM (audited)."""
    from donor_sync.delivery.outbox import mark_merge_done

    with connect_staging() as conn:
        merge = mark_merge_done(conn, destination_merge_id, actor=cli_actor())
        conn.commit()
    click.echo(
        f"merge {merge.destination_merge_id} marked merged in {merge.destination}: "
        f"record {merge.merged_remote_id or merge.merged_key} is no longer synced"
    )


@outbox_group.command("queue")
@click.option(
    "--destination",
    "-d",
    type=MAPPED_DESTINATION,
    required=True,
    help="Destination name (salesforce, hubspot...).",
)
@click.option(
    "--full", is_flag=True, help="Recompute every record (after a mapping change), not only what changed."
)
@click.option("--approve", is_flag=True, help="Go ahead over the blast-radius limit (audited).")
@_friendly_errors
def queue_command(destination: str, full: bool, approve: bool) -> None:
    """Queue a destination's changed records in the outbox (what donations_hourly's queue task does)."""
    from donor_sync.delivery import run as delivery
    from donor_sync.delivery.outbox import Scope

    with connect_staging() as conn:
        report = delivery.queue(
            conn,
            destination,
            run_id=None,
            actor=cli_actor(),
            approved=approve,
            scope=Scope.full() if full else None,
        )
    click.echo(
        f"{destination}: {report.queued} queued, {report.unchanged} unchanged, {report.withdrawn} withdrawn;"
        f" merges {report.merges.queued} by API, {report.merges.listed} listed"
    )


@outbox_group.command("push")
@click.option(
    "--destination", "-d", type=DESTINATION, required=True, help="Destination name (salesforce, hubspot...)."
)
@_friendly_errors
def push_command(destination: str) -> None:
    """Push a destination's due outbox rows now, through its Airflow connection."""
    import getpass
    import os

    from donor_sync.delivery import run as delivery
    from donor_sync.hooks.destinations import connector_for

    with connect_staging() as conn:
        if not delivery.has_due_work(conn, destination):
            click.echo(f"{destination}: nothing due")
            return
        report = delivery.push(
            conn,
            connector_for(destination),
            run_id=None,
            worker_id=f"cli:{getpass.getuser()}:{os.getpid()}",
        )
    click.echo(f"{destination}: {report.summary()}")
