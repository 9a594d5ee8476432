"""Stripe extraction: customers, charges, payment intents, refunds and events into ``raw``.

Each stream is listed by ``created`` from its watermark minus the overlap window (Stripe's lists
have no updated-since filter; later changes to a charge arrive as events). Written with
``merge``-like semantics: raw keeps every distinct version, and re-reading the overlap adds
nothing already held.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import psycopg

from donor_sync.sources.raw_landing import RawRecord, fail_batch, finish_batch, land_records, open_batch
from donor_sync.sources.stripe.helpers import StripeApi
from donor_sync.sources.stripe.settings import INITIAL_START, SOURCE, STREAMS

__all__ = ["SOURCE", "StreamResult", "extract_stripe"]
from donor_sync.sources.watermarks import highest, read_watermark


@dataclass(frozen=True)
class StreamResult:
    """What one stream's extraction read and newly loaded."""

    stream: str
    batch_id: int
    read: int
    loaded: int


def extract_stripe(
    conn: psycopg.Connection,
    api: StripeApi,
    *,
    run_id: UUID | None,
    streams: tuple[str, ...] = STREAMS,
    initial_start: datetime = INITIAL_START,
) -> list[StreamResult]:
    """Extract every stream into ``raw.records``, one batch per stream; return their counts.

    A stream that fails marks its batch failed (error class only) and re-raises; its watermark
    does not move because only the batches of a successful run advance watermarks.
    """
    results = []
    for stream in streams:
        watermark = read_watermark(conn, SOURCE, stream)
        start = watermark.window_start(initial_start)
        now = datetime.now(UTC)
        batch_id = open_batch(
            conn,
            source=SOURCE,
            stream=stream,
            channel="api",
            run_id=run_id,
            window_start=start,
            window_end=now,
        )
        cursors: list[tuple[datetime, str]] = []

        def records(
            stream: str = stream, start: datetime = start, cursors: list[tuple[datetime, str]] = cursors
        ) -> Iterator[RawRecord]:
            for page in api.list_pages(stream, created_gte=int(start.timestamp())):
                for obj in page:
                    created = datetime.fromtimestamp(int(obj["created"]), UTC)
                    cursors.append((created, str(obj["id"])))
                    yield RawRecord(str(obj["object"]), str(obj["id"]), obj, created)

        try:
            read, loaded = land_records(
                conn, batch_id=batch_id, source=SOURCE, channel="api", records=records()
            )
            finish_batch(conn, batch_id, read=read, loaded=loaded, cursor=highest(cursors))
        except BaseException as exc:
            fail_batch(conn, batch_id, type(exc).__name__)
            raise
        results.append(StreamResult(stream, batch_id, read, loaded))
    return results
