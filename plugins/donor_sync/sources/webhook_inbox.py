"""Drain ``raw.webhook_inbox``: turn received events into ``raw.records`` (channel ``webhook``).

Per source with waiting events, one drain is one batch (stream ``webhook``) and one transaction:
the events are taken with ``FOR UPDATE SKIP LOCKED`` (two drains running at once never take the
same event), landed through :func:`~donor_sync.sources.raw_landing.land_records` with their inbox
id as lineage, and marked processed in the same commit as the records and the batch counts.

How an event becomes a record is configured per endpoint (``landing`` in webhooks.yaml): Stripe
events land as entity ``event`` exactly as the API extractor lands listed events; Donorbox and
Classy land the donation / transaction inside the envelope as the entity their API extractor
uses, so reading the same object through the API later adds nothing (same payload hash).

Every event is accounted for: landed (processed), ignored (processed, ``process_error`` =
``ignored_event_type``: its type is not one the source lands; it stays in the inbox), or failed
(``process_attempts`` + 1 and the error class; retried by the next drain until ``max_attempts``,
then left for a person and counted as stuck). A failing event never blocks the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.sources.raw_landing import RawRecord, fail_batch, finish_batch, land_records, open_batch
from donor_sync.web.webhooks.config import EndpointSettings, WebhookSettings, load_settings
from donor_sync.web.webhooks.jsonpath import lookup, to_datetime

__all__ = [
    "IGNORED_EVENT_TYPE",
    "DrainResult",
    "WebhookMappingError",
    "drain_webhook_inbox",
    "event_records",
]

log = logging.getLogger(__name__)

STREAM = "webhook"
CHANNEL = "webhook"
IGNORED_EVENT_TYPE = "ignored_event_type"
DEFAULT_LIMIT = 1000
DEFAULT_MAX_ATTEMPTS = 5


class WebhookMappingError(Exception):
    """An event cannot be turned into a record; its class name is what the inbox records."""


class MissingObject(WebhookMappingError):  # noqa: N818 - the class name is the recorded error
    """The body has no JSON object at the endpoint's ``landing.object`` path."""


class MissingObjectId(WebhookMappingError):  # noqa: N818
    """The object has no usable id at the endpoint's ``landing.id`` path."""


class UnconfiguredSource(WebhookMappingError):  # noqa: N818
    """The inbox holds events of a source that webhooks.yaml no longer configures."""


@dataclass(frozen=True)
class DrainResult:
    """What one source's drain took and landed (fields as :class:`~donor_sync.sources.extract.StreamResult`).

    :ivar read: records handed to landing; ``loaded``: new rows in raw.records (versions already
        held, e.g. listed by the API first, are not loaded again).
    :ivar events: events taken; ``ignored`` and ``failed`` among them; ``stuck``: events of the
        source left unprocessed after ``max_attempts`` failures (need a person).
    """

    source: str
    stream: str
    batch_id: int
    read: int
    loaded: int
    events: int = 0
    ignored: int = 0
    failed: int = 0
    stuck: int = 0
    reported: int | None = None

    @property
    def unreconciled(self) -> int:
        """Return 0: an inbox reports no total of its own beyond what was read."""
        return 0


def event_records(
    endpoint: EndpointSettings, *, webhook_event_id: int, event_type: str | None, body: Any
) -> list[RawRecord] | None:
    """Return the records one event lands, or None when its type is not one the source lands.

    :raises WebhookMappingError: the body lacks the object or its id.
    """
    landing = endpoint.landing
    if not any(fnmatchcase(event_type or "", pattern) for pattern in landing.event_types):
        return None
    obj = lookup(body, landing.object)
    if not isinstance(obj, dict):
        raise MissingObject(f"no object at '{landing.object}'")
    object_id = lookup(obj, landing.id)
    if isinstance(object_id, bool) or not isinstance(object_id, str | int) or not str(object_id).strip():
        raise MissingObjectId(f"no id at '{landing.id}'")
    updated = next(
        (t for t in (to_datetime(lookup(obj, path)) for path in landing.updated_at) if t is not None), None
    )
    return [RawRecord(landing.entity, str(object_id), obj, updated, webhook_event_id=webhook_event_id)]


def _waiting_sources(conn: psycopg.Connection, max_attempts: int) -> list[str]:
    rows = conn.execute(
        """
        SELECT DISTINCT source FROM raw.webhook_inbox
         WHERE processed_at IS NULL AND process_attempts < %s ORDER BY source
        """,
        (max_attempts,),
    ).fetchall()
    conn.commit()
    return [str(r[0]) for r in rows]


def _mark(conn: psycopg.Connection, ids: list[int], *, processed: bool, errors: list[str | None]) -> None:
    """Count an attempt for each event, with its error (None when it landed), and set processed_at."""
    if ids:
        conn.execute(
            """
            UPDATE raw.webhook_inbox AS i
               SET process_attempts = i.process_attempts + 1,
                   process_error = e.error,
                   processed_at = CASE WHEN %s THEN now() ELSE i.processed_at END
              FROM unnest(%s::bigint[], %s::text[]) AS e (id, error)
             WHERE i.webhook_event_id = e.id
            """,
            (processed, ids, errors),
        )


def _drain_source(
    conn: psycopg.Connection,
    source: str,
    endpoint: EndpointSettings | None,
    *,
    run_id: UUID | None,
    limit: int,
    max_attempts: int,
) -> DrainResult:
    batch_id = open_batch(conn, source=source, stream=STREAM, channel=CHANNEL, run_id=run_id)
    try:
        events = conn.execute(
            """
            SELECT webhook_event_id, event_type, body FROM raw.webhook_inbox
             WHERE source = %s AND processed_at IS NULL AND process_attempts < %s
             ORDER BY received_at, webhook_event_id
             LIMIT %s
               FOR UPDATE SKIP LOCKED
            """,
            (source, max_attempts, limit),
        ).fetchall()
        records: list[RawRecord] = []
        landed: list[int] = []
        ignored: list[int] = []
        failed: dict[int, str] = {}
        for inbox_id, event_type, body in events:
            try:
                if endpoint is None:
                    raise UnconfiguredSource(source)
                found = event_records(endpoint, webhook_event_id=inbox_id, event_type=event_type, body=body)
            except (WebhookMappingError, ValueError, TypeError) as exc:
                failed[inbox_id] = type(exc).__name__
                continue
            if found is None:
                ignored.append(inbox_id)
            else:
                records.extend(found)
                landed.append(inbox_id)
        read, loaded = land_records(conn, batch_id=batch_id, source=source, channel=CHANNEL, records=records)
        _mark(conn, landed, processed=True, errors=[None] * len(landed))
        _mark(conn, ignored, processed=True, errors=[IGNORED_EVENT_TYPE] * len(ignored))
        _mark(conn, list(failed), processed=False, errors=list(failed.values()))
        stuck_row = conn.execute(
            """
            SELECT count(*) FROM raw.webhook_inbox
             WHERE source = %s AND processed_at IS NULL AND process_attempts >= %s
            """,
            (source, max_attempts),
        ).fetchone()
        finish_batch(conn, batch_id, read=read, loaded=loaded, cursor=None)  # commits it all at once
    except BaseException as exc:
        fail_batch(conn, batch_id, type(exc).__name__)
        raise
    result = DrainResult(
        source,
        STREAM,
        batch_id,
        read,
        loaded,
        events=len(events),
        ignored=len(ignored),
        failed=len(failed),
        stuck=int(stuck_row[0]) if stuck_row else 0,
    )
    log.info(
        "webhook drain %s: %s events, %s records read, %s loaded, %s ignored, %s failed, %s stuck (batch %s)",
        source,
        result.events,
        read,
        loaded,
        result.ignored,
        result.failed,
        result.stuck,
        batch_id,
    )
    for inbox_id, error in failed.items():
        log.warning("webhook drain %s: inbox event %s failed: %s", source, inbox_id, error)
    return result


def drain_webhook_inbox(
    conn: psycopg.Connection,
    *,
    run_id: UUID | None,
    limit: int = DEFAULT_LIMIT,
    settings: WebhookSettings | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> list[DrainResult]:
    """Land up to ``limit`` waiting events per source; return one result (and one batch) per source.

    Sources are drained one after another, each in its own transaction, so a failure in one
    (recorded on its batch, then raised) leaves the others' work committed or untouched.

    :param settings: the endpoints' landing rules (default: include/mappings/webhooks.yaml).
    :param max_attempts: events that failed this often are no longer retried (counted as stuck).
    """
    settings = settings or load_settings()
    return [
        _drain_source(
            conn, source, settings.endpoint(source), run_id=run_id, limit=limit, max_attempts=max_attempts
        )
        for source in _waiting_sources(conn, max_attempts)
    ]
