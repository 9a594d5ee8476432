"""Pull Braze unsubscribes back into consent, every run (before the Braze queue).

Braze has no cheap "changed since" feed of subscription states (Currents is an add-on; exports
are asynchronous files), so each run reads the states of a rolling slice of the users donor-sync
put there: ``GET /subscription/status/get`` for each subscription group of the mapping, 50
external ids per call, for at most ``budget`` users per run (default 2,500: 50 calls per group,
on the 250,000-per-hour pool). The slice starts after the last donor id checked
(``sync.watermarks``, source ``braze``, stream ``consent_pullback``) and wraps around, so every
user is checked every ``users / budget`` runs (100,000 users at 2,500 per hourly run: under two days).

Only users whose core consent for the group's purpose and channel is a live opt-in are asked
about (an unsubscribe matters only there, and the states donor-sync itself wrote as
``unsubscribed``, for a lapsed or suppressed choice, are never read back as the donor's opt-out).
A group Braze reports ``unsubscribed`` becomes an opt-out event (source ``braze``, ``source_ref``
``<donor>:subscription:<group>:after:<consent event>``: once per opt-in it overrides), recorded
with :func:`~donor_sync.privacy.consent.events.record_events`, which refreshes the consent state.
The next queue then finds the donor without consent for Braze: the user is deleted there (mirror)
and no subscribe is ever sent back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.delivery.connectors.braze import subscriptions
from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.contracts import BRAZE
from donor_sync.observability import audit
from donor_sync.privacy.consent.events import ConsentEvent, Evidence, record_events

__all__ = ["DEFAULT_BUDGET", "PullbackReport", "pull_unsubscribes"]

log = logging.getLogger(__name__)

DEFAULT_BUDGET = 2_500
STREAM = "consent_pullback"
USER_ENTITY = "user"

_SLICE = """
SELECT record_key FROM sync.destination_state
WHERE destination = %(d)s AND entity = %(e)s
  AND remote_deleted_at IS NULL AND last_payload_sha256 IS NOT NULL
  AND (%(after)s::text IS NULL OR record_key > %(after)s)
ORDER BY record_key LIMIT %(n)s
"""
# The slice's donors holding a live opt-in for (purpose, channel), with the deciding event.
_OPTED_IN = """
SELECT cs.donor_id::text, cs.consent_event_id FROM core.consent_state cs
JOIN core.donors d ON d.donor_id = cs.donor_id AND d.erased_at IS NULL AND d.merged_into IS NULL
WHERE cs.donor_id = ANY(%(ids)s::uuid[]) AND cs.purpose = %(p)s AND cs.channel = %(c)s
  AND cs.status IN ('opt_in', 'soft_opt_in') AND (cs.expires_at IS NULL OR cs.expires_at > now())
"""


@dataclass
class PullbackReport:
    """What one pull-back read and recorded (ids and counts only)."""

    checked: int = 0
    calls: int = 0
    unsubscribed: dict[str, int] = field(default_factory=dict)
    recorded: int = 0
    wrapped: bool = False

    def as_details(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "calls": self.calls,
            "unsubscribed": dict(self.unsubscribed),
            "recorded": self.recorded,
            "wrapped": self.wrapped,
        }


def _cursor(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT cursor_id FROM sync.watermarks WHERE source = %s AND stream = %s", [BRAZE, STREAM]
    ).fetchone()
    return str(row[0]) if row and row[0] else None


def _save_cursor(conn: psycopg.Connection, last: str | None, run_id: Any) -> None:
    conn.execute(
        "INSERT INTO sync.watermarks (source, stream, cursor_ts, cursor_id, run_id)"
        " VALUES (%s, %s, now(), %s, %s) ON CONFLICT (source, stream) DO UPDATE SET"
        " cursor_ts = EXCLUDED.cursor_ts, cursor_id = EXCLUDED.cursor_id, run_id = EXCLUDED.run_id,"
        " updated_at = now()",
        [BRAZE, STREAM, last, run_id],
    )


def _slice(conn: psycopg.Connection, budget: int) -> tuple[list[str], bool]:
    after = _cursor(conn)
    params = {"d": BRAZE, "e": USER_ENTITY, "n": budget}
    keys = [str(r[0]) for r in conn.execute(_SLICE, {**params, "after": after}).fetchall()]
    wrapped = False
    if len(keys) < budget and after is not None:  # wrap around to the start
        wrapped = True
        more = conn.execute(_SLICE, {**params, "after": None, "n": budget - len(keys)}).fetchall()
        keys += [str(r[0]) for r in more if str(r[0]) <= after and str(r[0]) not in keys]
    return keys, wrapped


def pull_unsubscribes(
    conn: psycopg.Connection,
    client: BrazeClient,
    groups: Mapping[str, tuple[str, str]],
    *,
    actor: str,
    budget: int = DEFAULT_BUDGET,
    run_id: Any = None,
    now: datetime | None = None,
) -> PullbackReport:
    """Record the unsubscribes Braze holds for the next slice of users as opt-out events.

    :param groups: ``{group id: (purpose, channel)}``, from the mapping
        (:func:`~donor_sync.delivery.connectors.braze.subscriptions.group_purposes`).
    Not committed: the events, the state refresh, the cursor and one ``consent.pulled_back`` audit
    row land with the caller's transaction.
    """
    moment = now or datetime.now(UTC)
    report = PullbackReport()
    keys, report.wrapped = _slice(conn, budget)
    report.checked = len(keys)
    events: list[ConsentEvent] = []
    calls_before = client.calls
    for group_id, (purpose, channel) in sorted(groups.items()):
        opted_in = {
            str(r[0]): int(r[1])
            for r in conn.execute(_OPTED_IN, {"ids": keys, "p": purpose, "c": channel}).fetchall()
        }
        if not opted_in:
            continue
        states = subscriptions.read_states(client, group_id, sorted(opted_in))
        gone = sorted(k for k, state in states.items() if state == "unsubscribed" and k in opted_in)
        report.unsubscribed[group_id] = len(gone)
        events += [
            ConsentEvent(
                donor_id=UUID(donor),
                purpose=purpose,  # type: ignore[arg-type]
                channel=channel,  # type: ignore[arg-type]
                status="opt_out",
                source=BRAZE,
                source_ref=f"{donor}:subscription:{group_id}:after:{opted_in[donor]}",
                occurred_at=moment,
                evidence=Evidence(field=f"subscription_group:{group_id}", remote_id=donor),
                recorded_by=actor,
            )
            for donor in gone
        ]
    report.calls = client.calls - calls_before
    if events:
        report.recorded = record_events(conn, events, actor=actor, now=moment, run_id=run_id).recorded
    _save_cursor(conn, keys[-1] if keys else None, run_id)
    audit.record(
        conn,
        actor=actor,
        action="consent.pulled_back",
        object_type="destination",
        object_id=BRAZE,
        details=report.as_details(),
        run_id=run_id,
    )
    log.info("Braze pull-back: %s", report.as_details())
    return report
