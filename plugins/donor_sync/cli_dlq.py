"""``donor-sync dlq``: the dead-letter queue -- list, show, replay, edit, discard.

The staging database is ``$DONOR_SYNC_DB_URL`` or the embedded server (as for every command).
``list`` shows ids, classes and codes only; ``show`` prints the payload so an operator can judge
and correct it (an operator command: PII goes to stdout, never to the logs). Every change is
audited in sync.audit_log as ``cli:<user>``. Exit status: 0 done (or nothing to do), 1 a letter
was refused or not found, 2 a usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from donor_sync.cli_support import COUNT, ROW_ID, check_destination_filter, cli_actor, connect_staging
from donor_sync.cli_support import friendly_errors as _friendly_errors
from donor_sync.delivery.contracts import EVENT_SUBSCRIBERS, FailureClass

if TYPE_CHECKING:
    import psycopg

    from donor_sync.delivery.dlq.store import DeadLetter, SelectionReport

_CLASSES = click.Choice([c.value for c in FailureClass])
_STATUSES = ("open", "replayed", "edited", "discarded")


def _summary(letter: DeadLetter) -> str:
    when = letter.first_failed_at.strftime("%Y-%m-%d %H:%M")
    code = f"/{letter.error_code}" if letter.error_code else ""
    edited = " (edited)" if letter.edited_payload is not None and letter.status == "open" else ""
    return (
        f"{letter.dead_letter_id:>8}  {when}  {letter.destination}/{letter.entity} {letter.record_key}  "
        f"{letter.operation}  {letter.error_class}{code}  attempts {letter.attempts}  {letter.status}{edited}"
    )


def _check_destination(conn: psycopg.Connection, destination: str | None) -> None:
    """Refuse (exit 2) an unknown ``--destination``; ``webhooks`` names every event subscriber."""
    if destination != EVENT_SUBSCRIBERS:
        check_destination_filter(conn, destination, "sync.dead_letters")


@click.group("dlq")
def dlq_group() -> None:
    """Dead letters: records a destination would not take. List, show, replay, edit, discard."""


@dlq_group.command("list")
@click.option(
    "--destination",
    default=None,
    help="Only this destination (salesforce, hubspot, webhook_<name>...; webhooks: every event subscriber).",
)
@click.option("--class", "error_class", type=_CLASSES, default=None, help="Only this error class.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([*_STATUSES, "all"]),
    help="Statuses to list (repeatable; default open).",
)
@click.option("--limit", type=COUNT, default=100, show_default=True)
@_friendly_errors
def list_command(
    destination: str | None, error_class: str | None, statuses: tuple[str, ...], limit: int
) -> None:
    """List dead letters, oldest first (ids, record keys, classes and codes; no payloads)."""
    from donor_sync.delivery.dlq.store import count_dead_letters, list_dead_letters

    wanted: tuple[str, ...] | None = None if "all" in statuses else (statuses or ("open",))
    with connect_staging() as conn:
        _check_destination(conn, destination)
        letters = list_dead_letters(
            conn, destination=destination, error_class=error_class, statuses=wanted, limit=limit
        )
        total = count_dead_letters(conn, destination=destination, error_class=error_class, statuses=wanted)
    for letter in letters:
        click.echo(_summary(letter))
    click.echo(f"{len(letters)} of {total} dead letter(s) shown" if letters else "no dead letters")


@dlq_group.command("show")
@click.argument("dead_letter_id", type=ROW_ID)
@click.option("--json", "as_json", is_flag=True, help="Print the letter as JSON.")
@_friendly_errors
def show_command(dead_letter_id: int, as_json: bool) -> None:
    """Show one dead letter: the error, what to do about it, and the payload."""
    from donor_sync.delivery.dlq.store import get_dead_letter

    with connect_staging() as conn:
        letter = get_dead_letter(conn, dead_letter_id)
    if as_json:
        click.echo(json.dumps(letter.__dict__, default=str, indent=2, ensure_ascii=False))
        return
    click.echo(_summary(letter))
    click.echo(f"  outbox row {letter.outbox_id}; donor {letter.donor_id or '-'}")
    click.echo(
        f"  failed {letter.attempts} time(s) between {letter.first_failed_at:%Y-%m-%d %H:%M} "
        f"and {letter.last_failed_at:%Y-%m-%d %H:%M}"
    )
    click.echo(f"  error: {letter.error_class} {letter.error_code or ''} {letter.message or ''}".rstrip())
    click.echo(f"  what to do: {letter.remediation}")
    if letter.status != "open":
        outbox = f" as outbox row {letter.replay_outbox_id}" if letter.replay_outbox_id else ""
        click.echo(
            f"  {letter.status}{outbox} by {letter.resolved_by} at {letter.resolved_at:%Y-%m-%d %H:%M}"
        )
    if letter.note:
        click.echo(f"  note: {letter.note}")
    click.echo("payload:")
    click.echo(_indent(letter.payload))
    if letter.edited_payload is not None:
        click.echo("edited payload (sent by the next replay):")
        click.echo(_indent(letter.edited_payload))


def _indent(payload: Any) -> str:
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return "\n".join(f"  {line}" for line in text.splitlines())


def _report(report: SelectionReport) -> None:
    for result in report.results:
        click.echo(result.message)
    for dead_letter_id, reason in sorted(report.refused.items()):
        click.echo(click.style("refused: ", fg="red", bold=True) + f"{dead_letter_id}: {reason}", err=True)
    click.echo(report.summary())
    if report.refused:
        sys.exit(1)


_NOTE = click.option("--note", default=None, help="Why (kept with the letter; no personal data please).")


@dlq_group.command("replay")
@click.argument("ids", nargs=-1, type=ROW_ID)
@click.option(
    "--destination",
    default=None,
    help="Replay every open letter of this destination (webhooks: of every event subscriber) ...",
)
@click.option("--class", "error_class", type=_CLASSES, default=None, help="... of this error class only.")
@_NOTE
@_friendly_errors
def replay_command(
    ids: tuple[int, ...], destination: str | None, error_class: str | None, note: str | None
) -> None:
    """Queue dead letters again (their edited payload when they have one): IDS, or --destination [--class]."""
    from donor_sync.delivery.dlq.store import replay_selection

    if ids and (destination or error_class):
        raise click.UsageError("give dead letter ids, or --destination [--class], not both")
    if not ids and not destination:
        raise click.UsageError("give dead letter ids, or --destination [--class]")
    with connect_staging() as conn:
        _check_destination(conn, destination)
        report = replay_selection(
            conn, destination=destination, error_class=error_class, ids=list(ids) or None,
            action="replay", actor=cli_actor(), note=note,
        )  # fmt: skip
        conn.commit()
    _report(report)


def _assignments(items: tuple[str, ...]) -> dict[str, Any]:
    from donor_sync.delivery.dlq.store import parse_value

    values: dict[str, Any] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise click.BadParameter(f"expected field=value, got {item!r}", param_hint="--set")
        values[name.strip()] = parse_value(value)
    return values


@dlq_group.command("edit")
@click.argument("dead_letter_id", type=ROW_ID)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Set a payload field (dotted path for nested objects, e.g. properties.email=...). "
    'VALUE is JSON when it parses (50, true, null, "50"), else text. Repeatable.',
)
@click.option(
    "--file",
    "payload_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON file holding the whole corrected payload.",
)
@click.option("--replay", "then_replay", is_flag=True, help="Replay the letter at once with the correction.")
@_NOTE
@_friendly_errors
def edit_command(
    dead_letter_id: int,
    assignments: tuple[str, ...],
    payload_file: Path | None,
    then_replay: bool,
    note: str | None,
) -> None:
    """Correct a dead letter's payload (kept beside the original); replay sends the correction."""
    from donor_sync.delivery.dlq.store import DeadLetterError, apply_edits, edit, get_dead_letter, replay

    if bool(assignments) == bool(payload_file):
        raise click.UsageError("give either --set FIELD=VALUE (repeatable) or --file payload.json")
    values = _assignments(assignments)
    if payload_file is not None:
        try:
            payload: Any = json.loads(payload_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DeadLetterError(f"{payload_file}: not a JSON document: {exc}") from exc
    actor = cli_actor()
    with connect_staging() as conn:
        if payload_file is None:
            payload = apply_edits(get_dead_letter(conn, dead_letter_id).replay_payload, values)
        result = edit(conn, dead_letter_id, payload, actor=actor, note=note)
        replayed = replay(conn, dead_letter_id, actor=actor, note=note) if then_replay else None
        conn.commit()
    click.echo(result.message)
    if replayed is not None:
        click.echo(replayed.message)


@dlq_group.command("discard")
@click.argument("ids", nargs=-1, type=ROW_ID, required=True)
@click.option(
    "--note", required=True, help="Why the letters are dropped (required; no personal data please)."
)
@_friendly_errors
def discard_command(ids: tuple[int, ...], note: str) -> None:
    """Drop dead letters on purpose (consent-blocked records, records deleted at the source...)."""
    from donor_sync.delivery.dlq.store import replay_selection

    with connect_staging() as conn:
        report = replay_selection(conn, ids=list(ids), action="discard", actor=cli_actor(), note=note)
        conn.commit()
    _report(report)
