"""Stripe extraction: customers, charges, payment intents, refunds and events into ``raw``.

Each stream is listed by ``created`` from its watermark minus the overlap window (Stripe's lists
have no updated-since filter; later changes to a charge arrive as events). Raw keeps every
distinct version, and re-reading the overlap adds nothing already held.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from uuid import UUID

import psycopg

from donor_sync.sources.extract import StreamResult, WindowReader, extract_stream, listed_record
from donor_sync.sources.raw_landing import RawRecord
from donor_sync.sources.stripe.helpers import StripeApi
from donor_sync.sources.stripe.settings import INITIAL_START, SOURCE, STREAMS

__all__ = ["SOURCE", "StreamResult", "extract_stripe"]


def extract_stripe(
    conn: psycopg.Connection,
    api: StripeApi,
    *,
    run_id: UUID | None,
    streams: tuple[str, ...] = STREAMS,
    initial_start: datetime = INITIAL_START,
) -> list[StreamResult]:
    """Extract every stream into ``raw.records``, one batch per stream; return their counts."""

    def reader(stream: str) -> WindowReader:
        def read_window(start: datetime) -> Iterator[RawRecord]:
            for page in api.list_pages(stream, created_gte=int(start.timestamp())):
                for obj in page:
                    yield listed_record(obj, entity_key="object", time_keys=("created",))

        return read_window

    return [
        extract_stream(
            conn,
            source=SOURCE,
            stream=stream,
            run_id=run_id,
            read_window=reader(stream),
            initial_start=initial_start,
        )
        for stream in streams
    ]
