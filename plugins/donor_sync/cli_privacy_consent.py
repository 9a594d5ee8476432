"""``donor-sync privacy link`` and ``donor-sync consent show|set``: preference links and choices by hand.

Links are signed with the ``links`` key ring (the ``privacy_keys`` connection, else
$DONOR_SYNC_PRIVACY_KEYS, else the development key file), as the preference centre checks them.
Every command names donors by id only and prints no PII.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from donor_sync.cli_support import UUID_TEXT, cli_actor, connect_staging
from donor_sync.cli_support import friendly_errors as _friendly_errors
from donor_sync.errors import DonorSyncError
from donor_sync.privacy.consent.vocabulary import CHANNELS, PURPOSES, STATUSES


@click.command("link")
@click.argument("donor_id", type=UUID_TEXT)
@click.option(
    "--days", type=click.IntRange(1, 366), default=None, help="Days the link is valid (default: config)."
)
@_friendly_errors
def link_command(donor_id: str, days: int | None) -> None:
    """Print a signed preference-centre link for DONOR_ID."""
    from donor_sync.privacy.consent.links import link_for
    from donor_sync.privacy.keys import default_key_source
    from donor_sync.web.preferences.choices import find_donor
    from donor_sync.web.preferences.config import load_preference_settings

    settings = load_preference_settings()
    with connect_staging() as conn:
        found = find_donor(conn, donor_id)
    if found.status != "live" or found.donor_id is None:
        raise DonorSyncError(f"donor {donor_id} is {found.status}: no link")
    token = link_for(default_key_source().require("links"), found.donor_id, days=days or settings.link_days)
    click.echo(f"{settings.base_url.rstrip('/')}/preferences/{token}")


@click.group("consent")
def consent_group() -> None:
    """A donor's consent: current state and recorded choices."""


@consent_group.command("show")
@click.argument("donor_id", type=UUID_TEXT)
@_friendly_errors
def show_command(donor_id: str) -> None:
    """Print DONOR_ID's derived consent state and its events as JSON (ids and vocabulary only)."""
    from donor_sync.privacy.consent.state import current_state

    with connect_staging() as conn:
        state = current_state(conn, donor_id)
        events = conn.execute(
            "SELECT e.consent_event_id, e.donor_id::text, e.purpose, e.channel, e.status, e.lawful_basis,"
            " e.source, e.occurred_at, e.expires_at FROM core.consent_events e JOIN core.donors d"
            " ON d.donor_id = e.donor_id WHERE coalesce(d.merged_into, d.donor_id) = %s OR d.donor_id = %s"
            " ORDER BY e.occurred_at, e.consent_event_id",
            (donor_id, donor_id),
        ).fetchall()
    out = {
        "donor_id": donor_id,
        "state": [{"purpose": p, "channel": c, **v} for (p, c), v in sorted(state.items())],
        "events": [
            dict(
                zip(
                    (
                        "id",
                        "donor_id",
                        "purpose",
                        "channel",
                        "status",
                        "lawful_basis",
                        "source",
                        "occurred_at",
                        "expires_at",
                    ),
                    row,
                    strict=True,
                )
            )
            for row in events
        ],
    }
    click.echo(json.dumps(out, indent=2, default=str))


@consent_group.command("set")
@click.argument("donor_id", type=UUID_TEXT)
@click.option("--purpose", type=click.Choice(PURPOSES), required=True)
@click.option("--channel", type=click.Choice(CHANNELS), required=True)
@click.option("--status", type=click.Choice(STATUSES), required=True)
@click.option(
    "--evidence", required=True, help="How the donor told you (e.g. 'phone call, ticket 4411'); no PII."
)
@click.option(
    "--lawful-basis", default=None, help="Default: consent for opt_in, legitimate_interests for soft."
)
@click.option("--expires", type=click.DateTime(), default=None, help="When the choice lapses (UTC).")
@_friendly_errors
def set_command(
    donor_id: str,
    *,
    purpose: str,
    channel: str,
    status: str,
    evidence: str,
    lawful_basis: str | None,
    expires: datetime | None,
) -> None:
    """Record a choice DONOR_ID made through staff (source staff) and refresh the state."""
    from pydantic import ValidationError

    from donor_sync.privacy.consent.events import ConsentEvent, Evidence, record_events

    actor = cli_actor()
    now = datetime.now(UTC)
    try:
        event = ConsentEvent.model_validate(
            {
                "donor_id": donor_id,
                "purpose": purpose,
                "channel": channel,
                "status": status,
                "lawful_basis": lawful_basis,
                "source": "staff",
                "occurred_at": now,
                "expires_at": None if expires is None else expires.replace(tzinfo=UTC),
                "evidence": Evidence(form_text=evidence, field="cli"),
                "recorded_by": actor,
            }
        )
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "event" for e in exc.errors()})
        raise DonorSyncError(f"invalid consent choice: {', '.join(fields)}") from None
    with connect_staging() as conn:
        result = record_events(conn, [event], actor=actor, now=now)
        conn.commit()
    if result.refused_erased:
        raise DonorSyncError(f"donor {donor_id} is erased or unknown: nothing recorded")
    changed = result.state.changed_donors if result.state else ()
    click.echo(f"recorded event {result.event_ids[0]}; state changed for {len(changed)} donor(s)")


def register(main: click.Group) -> None:
    """Add ``link`` to ``main``'s ``privacy`` group (created when missing) and the ``consent`` group."""
    group = main.commands.get("privacy")
    if not isinstance(group, click.Group):
        group = click.Group("privacy", help="Privacy: requests, links, profiles.")
        main.add_command(group)
    group.add_command(link_command)
    main.add_command(consent_group)
