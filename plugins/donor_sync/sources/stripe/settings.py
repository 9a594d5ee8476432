"""Stripe extraction constants."""

from __future__ import annotations

from datetime import UTC, datetime

SOURCE = "stripe"
#: Streams read through the list API (resource path == stream name), oldest data first on a first run.
STREAMS: tuple[str, ...] = ("customers", "charges", "payment_intents", "refunds", "events")
PAGE_SIZE = 100
#: Where a stream's first read starts: its whole history (the first run is a backfill).
INITIAL_START = datetime(2010, 1, 1, tzinfo=UTC)
