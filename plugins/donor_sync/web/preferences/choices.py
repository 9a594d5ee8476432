"""Read and change one donor's choices as the preference centre shows them (no Airflow, no HTTP)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

from donor_sync.privacy.consent.events import ConsentEvent, Evidence, RecordResult, record_events
from donor_sync.privacy.consent.state import current_state
from donor_sync.web.preferences.config import PreferenceCentreSettings

__all__ = ["DonorLookup", "choices_of", "find_donor", "record_choices"]

SOURCE = "preference_centre"


@dataclass(frozen=True)
class DonorLookup:
    """The donor a link names, followed to its survivor."""

    status: Literal["live", "erased", "unknown"]
    donor_id: str | None = None


def find_donor(conn: psycopg.Connection, donor_id: str) -> DonorLookup:
    """Return the live donor ``donor_id`` is (or was merged into), or why there is none."""
    row = conn.execute(
        "SELECT o.donor_id::text, o.erased_at IS NOT NULL OR d.erased_at IS NOT NULL"
        " FROM core.donors d JOIN core.donors o ON o.donor_id = coalesce(d.merged_into, d.donor_id)"
        " WHERE d.donor_id = %s",
        (donor_id,),
    ).fetchone()
    if row is None:
        return DonorLookup("unknown")
    if row[1]:
        return DonorLookup("erased")
    return DonorLookup("live", str(row[0]))


def choices_of(
    conn: psycopg.Connection, donor_id: str, settings: PreferenceCentreSettings
) -> list[dict[str, Any]]:
    """Return the donor's current choice for every offered purpose and channel (``status`` None: none)."""
    state = current_state(conn, donor_id)
    out: list[dict[str, Any]] = []
    for group in settings.choices:
        for channel in group.channels:
            found = state.get((group.purpose, channel))
            out.append(
                {
                    "purpose": group.purpose,
                    "label": group.label,
                    "channel": channel,
                    "status": None if found is None else found["status"],
                    "since": None if found is None else found["effective_at"].isoformat(),
                }
            )
    return out


def record_choices(
    conn: psycopg.Connection,
    donor_id: str,
    requested: Sequence[tuple[str, str, str]],
    settings: PreferenceCentreSettings,
    *,
    now: datetime,
    actor: str,
    url: str | None = None,
) -> RecordResult:
    """Record the requested ``(purpose, channel, status)`` choices that differ from the current state.

    The caller has checked each pair is offered. Evidence: the form text and version shown.
    Not committed.
    """
    state = current_state(conn, donor_id)
    evidence = Evidence(form_text=settings.form_text, form_version=settings.form_version, url=url)
    events = [
        ConsentEvent(
            donor_id=donor_id,  # type: ignore[arg-type]  # pydantic parses the uuid text
            purpose=purpose,  # type: ignore[arg-type]
            channel=channel,  # type: ignore[arg-type]
            status=status,  # type: ignore[arg-type]
            source=SOURCE,
            occurred_at=now,
            evidence=evidence,
            recorded_by=actor,
        )
        for purpose, channel, status in requested
        if (state.get((purpose, channel)) or {}).get("status") != status
    ]
    return record_events(conn, events, actor=actor, now=now)
