"""``donor-sync privacy``: donors' rights requests -- erase, export, and list or show requests.

``erase`` and ``export`` record a request (identifiers stored only as keyed hashes); ``--process``
/ the ``export`` command carry it out at once, otherwise the ``privacy_requests`` DAG does. Output
names request ids, states and receipts, never the donor's data (an export's content goes to its
file, mode 0600). Exit status: 0 done or recorded, 1 refused or failed, 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from donor_sync.cli_support import COUNT, cli_actor, connect_staging
from donor_sync.cli_support import friendly_errors as _friendly_errors

if TYPE_CHECKING:
    from donor_sync.privacy.requests.identifiers import Identifier

_IDENTIFIER_OPTIONS = (
    click.option("--email", default=None, help="The donor's email address."),
    click.option("--phone", default=None, help="The donor's phone number (E.164 or US format)."),
    click.option("--donor-id", default=None, help="The donor's id in donor-sync."),
    click.option("--source-id", default=None, help="A source record id as system:id (stripe:cus_123)."),
)


def _identifiers(**given: str | None) -> list[Identifier]:
    from donor_sync.privacy.requests.identifiers import normalize

    out = [normalize(kind, value) for kind, value in given.items() if value]
    if not out:
        raise click.UsageError("name the donor: --email, --phone, --donor-id or --source-id")
    return out


def _with_identifiers(func):  # type: ignore[no-untyped-def]
    for option in reversed(_IDENTIFIER_OPTIONS):
        func = option(func)
    return func


@click.group("privacy")
def privacy_group() -> None:
    """Donors' rights requests: erasure, export (access and portability), and their receipts."""


def _create(kind: str, identifiers: list[Identifier]) -> str:
    from donor_sync.privacy.keys import default_key_source
    from donor_sync.privacy.requests.store import create_request

    with connect_staging() as conn:
        view = create_request(
            conn,
            kind=kind,
            identifiers=identifiers,
            ring=default_key_source().require("tombstone"),
            channel="cli",
            requested_by=cli_actor(),
        )
        conn.commit()
    found = f"donor {view.donor_id}" if view.donor_id else "no donor found yet (kept as keyed hashes)"
    click.echo(f"{kind} request {view.request_id} recorded: {found}; due {view.due_at:%Y-%m-%d}")
    return str(view.request_id)


def _process(request_id: str, export_out: Path | None = None) -> None:
    from donor_sync.privacy.keys import default_key_source
    from donor_sync.privacy.requests.process import process_requests
    from donor_sync.privacy.requests.store import get_request

    erasers: list[object] = []
    try:
        from donor_sync.hooks.privacy_erasers import erasers_for  # type: ignore[import-not-found,unused-ignore]

        erasers = list(erasers_for())
    except ImportError:
        click.echo("warning: no destination erasers available; only the local purge runs", err=True)
    with connect_staging() as conn:
        process_requests(
            conn,
            erasers=erasers,  # type: ignore[arg-type]
            keys=default_key_source(),
            request_ids=[request_id],
            actor=cli_actor(),
            export_dir=export_out.parent if export_out else None,
        )
        view = get_request(conn, request_id)
        if export_out and view.result_ref and Path(view.result_ref) != export_out:
            Path(view.result_ref).replace(export_out)
            conn.execute(
                "UPDATE sync.privacy_requests SET result_ref = %s WHERE request_id = %s",
                (str(export_out), view.request_id),
            )
            conn.commit()
            view = get_request(conn, request_id)
    _print(view)
    if view.status not in ("completed",):
        raise SystemExit(1)


def _print(view: object) -> None:
    from donor_sync.privacy.requests.store import RequestView

    assert isinstance(view, RequestView)
    click.echo(
        f"{view.request_id}  {view.kind}  {view.status}  due {view.due_at:%Y-%m-%d}  attempts {view.attempts}"
        + (f"  error: {view.error}" if view.error else "")
        + (f"  result: {view.result_ref}" if view.result_ref else "")
    )
    for r in view.receipts:
        mark = "verified" if r.verified else "not verified"
        click.echo(
            f"    {r.system:<18} {r.action:<20} {r.status:<6} {mark}" + (f"  {r.error}" if r.error else "")
        )


@privacy_group.command("erase")
@_with_identifiers
@click.option(
    "--process", "process_now", is_flag=True, help="Carry it out now instead of waiting for the DAG."
)
@_friendly_errors
def erase_command(
    email: str | None, phone: str | None, donor_id: str | None, source_id: str | None, process_now: bool
) -> None:
    """Record an erasure request (GDPR Art. 17, CCPA deletion) for the donor named."""
    request_id = _create(
        "erasure", _identifiers(email=email, phone=phone, donor_id=donor_id, source_id=source_id)
    )
    if process_now:
        _process(request_id)


@privacy_group.command("export")
@_with_identifiers
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the JSON export (default .local/exports/<request id>.json).",
)
@_friendly_errors
def export_command(
    email: str | None, phone: str | None, donor_id: str | None, source_id: str | None, out: Path | None
) -> None:
    """Export everything held about the donor (access and portability) to a JSON file (mode 0600)."""
    request_id = _create(
        "export", _identifiers(email=email, phone=phone, donor_id=donor_id, source_id=source_id)
    )
    _process(request_id, export_out=out.resolve() if out else None)


@privacy_group.group("requests")
def requests_group() -> None:
    """List and show privacy requests (ids, states, deadlines, receipts; never PII)."""


@requests_group.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["received", "in_progress", "completed", "failed", "rejected"]),
)
@click.option("--kind", type=click.Choice(["erasure", "export", "consent_change"]), default=None)
@click.option("--limit", type=COUNT, default=100, show_default=True)
@_friendly_errors
def list_command(statuses: tuple[str, ...], kind: str | None, limit: int) -> None:
    """List requests, soonest deadline first."""
    from donor_sync.privacy.requests.store import list_requests

    with connect_staging() as conn:
        views = list_requests(conn, statuses=statuses, kind=kind, limit=limit)
    if not views:
        click.echo("no privacy requests")
    for view in views:
        _print(view)


@requests_group.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON.")
@_friendly_errors
def show_command(request_id: str, as_json: bool) -> None:
    """Show one request and its receipts."""
    from donor_sync.privacy.requests.store import get_request

    with connect_staging() as conn:
        view = get_request(conn, request_id)
    if as_json:
        click.echo(json.dumps(view.as_json(), indent=2))
    else:
        _print(view)
