"""Consent changes that arrive as privacy requests (API, table, staff): validated, then recorded as events.

A ``consent_change`` request's ``details`` name the choices::

    {"changes": [{"purpose": "marketing", "channel": "email", "status": "opt_out"}, ...],
     "evidence": {"form_text": "...", "form_version": "...", "url": "..."},   # optional
     "occurred_at": "2026-11-20T10:00:00Z"}                                    # optional

or one choice at the top level (``{"purpose": ..., "channel": ..., "status": ...}``). Each becomes a
consent event with source ``privacy_request`` and ``source_ref`` ``<request id>:<index>``, so a
request processed twice records its choices once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from donor_sync.errors import DonorSyncError
from donor_sync.privacy.consent.events import ConsentEvent, Evidence, RecordResult, record_events
from donor_sync.privacy.consent.vocabulary import Channel, Purpose, Status

SOURCE = "privacy_request"


class InvalidConsentChange(DonorSyncError):  # noqa: N818 - reads as a state
    """The request's details do not describe a consent change; the message names the field."""


class _Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: Purpose
    channel: Channel
    status: Status


class _Details(BaseModel):
    model_config = ConfigDict(extra="forbid")
    changes: list[_Choice] = Field(min_length=1)
    evidence: Evidence = Field(default_factory=Evidence)
    occurred_at: datetime | None = None


def parse_details(details: Mapping[str, Any]) -> tuple[list[_Choice], Evidence, datetime | None]:
    """Validate a request's details; :class:`InvalidConsentChange` names the bad field."""
    given = dict(details)
    if "changes" not in given and {"purpose", "channel", "status"} & set(given):
        single = {k: given.pop(k) for k in ("purpose", "channel", "status") if k in given}
        given["changes"] = [single]
    try:
        parsed = _Details.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "details"
        raise InvalidConsentChange(f"consent change: details.{where}: {first['msg']}") from None
    return parsed.changes, parsed.evidence, parsed.occurred_at


def record_request_change(
    conn: psycopg.Connection,
    donor_id: UUID,
    details: Mapping[str, Any],
    actor: str,
    *,
    request_id: UUID | str | None = None,
    now: datetime | None = None,
) -> RecordResult:
    """Record the choices of a consent-change request as events of ``donor_id``; refresh its state."""
    changes, evidence, occurred = parse_details(details)
    when = occurred or now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ref = str(request_id) if request_id is not None else None
    events = [
        ConsentEvent(
            donor_id=donor_id,
            purpose=c.purpose,
            channel=c.channel,
            status=c.status,
            source=SOURCE,
            source_ref=f"{ref}:{i}" if ref else None,
            occurred_at=when,
            evidence=evidence,
            recorded_by=actor,
        )
        for i, c in enumerate(changes)
    ]
    return record_events(conn, events, actor=actor, now=now)
