"""Record consent events (``core.consent_events``, append-only), then refresh the derived state.

Every writer of consent goes through :func:`record_events` (the preference centre, CRM pull-back,
the CLI) or writes set-based SQL with the same columns and then calls
:func:`~donor_sync.privacy.consent.state.refresh_consent_state` (resolve's ingest of staged
signals). An event is idempotent on ``(source, source_ref)``: the same choice reported twice is
recorded once. Events of erased donors are refused (counted, never written).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from donor_sync.privacy.consent.state import StateRefresh, refresh_consent_state
from donor_sync.privacy.consent.vocabulary import DEFAULT_BASIS, Channel, LawfulBasis, Purpose, Status

__all__ = ["ConsentEvent", "Evidence", "RecordResult", "record_events"]


class Evidence(BaseModel):
    """Proof of a choice: what the donor was shown and where. Other keys are kept as given.

    Never a donor's PII: form text is the organization's wording; remote ids are vendor ids.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    form_text: str | None = Field(default=None, description="The wording the donor agreed to.")
    form_version: str | None = Field(default=None, description="Version of that wording.")
    url: str | None = Field(default=None, description="Page the choice was made on.")
    field: str | None = Field(default=None, description="Source or CRM field that carried the choice.")
    remote_id: str | None = Field(default=None, description="Id of the record in the system reporting it.")
    changed_at: str | None = Field(default=None, description="When that system says it changed.")


class ConsentEvent(BaseModel):
    """One choice of one donor, validated before it is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    donor_id: UUID
    purpose: Purpose
    channel: Channel
    status: Status
    lawful_basis: LawfulBasis | None = Field(
        default=None, description="Defaults by status: opt_in consent, soft_opt_in legitimate_interests."
    )
    source: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="core.system_name of the source.")
    source_ref: str | None = Field(default=None, min_length=1, max_length=500)
    occurred_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    evidence: Evidence = Field(default_factory=Evidence)
    recorded_by: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ConsentEvent:
        if self.expires_at is not None and self.expires_at <= self.occurred_at:
            raise ValueError("expires_at must be later than occurred_at")
        if self.lawful_basis is None and DEFAULT_BASIS[self.status] is not None:
            object.__setattr__(self, "lawful_basis", DEFAULT_BASIS[self.status])
        return self


@dataclass(frozen=True)
class RecordResult:
    """What :func:`record_events` wrote (ids and counts)."""

    recorded: int
    duplicates: int  # already recorded under the same (source, source_ref)
    refused_erased: int  # the donor is erased (or unknown)
    event_ids: tuple[int, ...]
    state: StateRefresh | None


_INSERT = """
INSERT INTO core.consent_events
    (donor_id, purpose, channel, status, lawful_basis, source, source_ref, occurred_at, expires_at,
     evidence, recorded_by)
SELECT e.donor_id, e.purpose, e.channel, e.status, e.lawful_basis, e.source, e.source_ref,
       e.occurred_at, e.expires_at, e.evidence, e.recorded_by
FROM unnest(%(donor)s::uuid[], %(purpose)s::text[], %(channel)s::text[], %(status)s::text[],
            %(basis)s::text[], %(source)s::text[], %(ref)s::text[], %(occurred)s::timestamptz[],
            %(expires)s::timestamptz[], %(evidence)s::jsonb[], %(by)s::text[]) WITH ORDINALITY
     AS e(donor_id, purpose, channel, status, lawful_basis, source, source_ref, occurred_at,
          expires_at, evidence, recorded_by, n)
JOIN core.donors d ON d.donor_id = e.donor_id AND d.erased_at IS NULL
ORDER BY e.n
ON CONFLICT (source, source_ref) WHERE source_ref IS NOT NULL DO NOTHING
RETURNING consent_event_id, donor_id::text
"""


def record_events(
    conn: psycopg.Connection,
    events: Sequence[ConsentEvent],
    *,
    actor: str,
    now: datetime | None = None,
    run_id: Any = None,
    refresh: bool = True,
) -> RecordResult:
    """Append ``events`` (skipping ones already recorded), then refresh their donors' state.

    ``consent.changed`` is audited per donor whose state changed (by the refresh). Not committed.

    :param refresh: False when the caller refreshes once for many calls.
    """
    if not events:
        return RecordResult(0, 0, 0, (), None)
    live = {
        str(r[0])
        for r in conn.execute(
            "SELECT donor_id FROM core.donors WHERE donor_id = ANY(%s::uuid[]) AND erased_at IS NULL",
            (sorted({str(e.donor_id) for e in events}),),
        ).fetchall()
    }
    wanted = [e for e in events if str(e.donor_id) in live]
    rows = conn.execute(
        _INSERT,
        {
            "donor": [str(e.donor_id) for e in wanted],
            "purpose": [e.purpose for e in wanted],
            "channel": [e.channel for e in wanted],
            "status": [e.status for e in wanted],
            "basis": [e.lawful_basis for e in wanted],
            "source": [e.source for e in wanted],
            "ref": [e.source_ref for e in wanted],
            "occurred": [e.occurred_at for e in wanted],
            "expires": [e.expires_at for e in wanted],
            "evidence": [json.dumps(e.evidence.model_dump(exclude_none=True), default=str) for e in wanted],
            "by": [e.recorded_by for e in wanted],
        },
    ).fetchall()
    donors = sorted({str(r[1]) for r in rows})
    state = None
    if refresh and donors:
        state = refresh_consent_state(conn, donors, actor=actor, now=now or datetime.now(UTC), run_id=run_id)
    return RecordResult(
        recorded=len(rows),
        duplicates=len(wanted) - len(rows),
        refused_erased=len(events) - len(wanted),
        event_ids=tuple(int(r[0]) for r in rows),
        state=state,
    )
