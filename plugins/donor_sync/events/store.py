"""Store produced events in ``sync.events`` and queue each new one for its subscribers.

Set-based, in the caller's transaction (an event lands with the fact it reports, or not at all):
one INSERT of the events, skipping those already stored (same fact key and version: a re-run
writes nothing), then one INSERT into ``sync.outbox`` per new event and subscriber taking that
type and version (destination ``webhook_<name>``, entity = the type, record_key = the event id,
operation ``create``). From there the delivery engine pushes, retries on the ladder, dead-letters
and breaks circuits per subscriber.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from donor_sync.events.catalogue import Event, entity_of, validate_envelope
from donor_sync.events.settings import EventSettings, load_event_settings

__all__ = ["EVENT_PRIORITY", "RecordedEvents", "record_events"]

log = logging.getLogger(__name__)

#: Outbox priority of events (gifts go at 50, donors at 100; events are small and cheap).
EVENT_PRIORITY = 60


@dataclass(frozen=True)
class RecordedEvents:
    """What :func:`record_events` did: events new to the log, and outbox rows queued for them."""

    produced: int = 0
    recorded: int = 0
    queued: int = 0
    event_ids: tuple[str, ...] = ()


def record_events(
    conn: psycopg.Connection,
    events: Sequence[Event],
    *,
    run_id: Any = None,
    settings: EventSettings | None = None,
) -> RecordedEvents:
    """Validate, store and queue ``events``; not committed.

    :param settings: the subscribers; default ``include/mappings/events.yaml``.
    :raises InvalidEventError: an event breaks its schema (nothing is written).
    :raises ConfigError: events.yaml is invalid.
    """
    unique = list({(e.fact_key, e.version): e for e in events}.values())
    if not unique:
        return RecordedEvents()
    envelopes = [e.envelope() for e in unique]
    for envelope in envelopes:
        validate_envelope(envelope)
    rows = conn.execute(
        "INSERT INTO sync.events (event_id, version, event_type, fact_key, occurred_at, envelope, donor_id,"
        " run_id)"
        " SELECT i, v, t, f, o, e, d, %(run)s::uuid"
        " FROM unnest(%(ids)s::uuid[], %(versions)s::smallint[], %(types)s::text[], %(facts)s::text[],"
        "             %(times)s::timestamptz[], %(envelopes)s::jsonb[], %(donors)s::uuid[])"
        "      AS x(i, v, t, f, o, e, d)"
        " ON CONFLICT DO NOTHING RETURNING event_id::text, version",
        {
            "run": str(run_id) if run_id is not None else None,
            "ids": [e.id for e in unique],
            "versions": [e.version for e in unique],
            "types": [e.event_type for e in unique],
            "facts": [e.fact_key for e in unique],
            "times": [e.occurred_at for e in unique],
            "envelopes": [json.dumps(env, separators=(",", ":")) for env in envelopes],
            "donors": [e.donor_id for e in unique],
        },
    ).fetchall()
    if not rows:
        return RecordedEvents(produced=len(unique))
    subscribers = (settings if settings is not None else load_event_settings()).enabled()
    routes = [(s.destination, t, s.version) for s in subscribers for t in s.events]
    queued = 0
    if routes:
        queued = conn.execute(
            "INSERT INTO sync.outbox (destination, entity, record_key, donor_id, operation, payload,"
            "     payload_sha256, priority, run_id)"
            " SELECT r.destination, replace(e.event_type, '.', '_'), e.event_id::text, d.donor_id, 'create',"
            "        e.envelope, core.jsonb_sha256(e.envelope), %(priority)s, e.run_id"
            " FROM unnest(%(ids)s::uuid[], %(versions)s::smallint[]) AS n(event_id, version)"
            " JOIN sync.events e USING (event_id, version)"
            " JOIN unnest(%(dest)s::text[], %(rtypes)s::text[], %(rversions)s::smallint[])"
            "      AS r(destination, event_type, version)"
            "   ON r.event_type = e.event_type AND r.version = e.version"
            " LEFT JOIN core.donors d ON d.donor_id = e.donor_id"
            " ON CONFLICT (destination, entity, record_key) WHERE state = 'pending' DO NOTHING",
            {
                "priority": EVENT_PRIORITY,
                "ids": [r[0] for r in rows],
                "versions": [r[1] for r in rows],
                "dest": [r[0] for r in routes],
                "rtypes": [r[1] for r in routes],
                "rversions": [r[2] for r in routes],
            },
        ).rowcount
    result = RecordedEvents(
        produced=len(unique), recorded=len(rows), queued=max(queued, 0), event_ids=tuple(r[0] for r in rows)
    )
    log.info(
        "events: %s produced, %s new, %s deliveries queued (%s)",
        result.produced, result.recorded, result.queued,
        ", ".join(sorted({entity_of(e.event_type) for e in unique})),
    )  # fmt: skip
    return result
