"""One extraction of one source stream: watermark → window → batch → COPY landing → counts.

Every source module supplies only how to read records of a window; this module owns the batch,
the landing, the cursor it reached, and marking the batch failed (error class only) on failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg

from donor_sync.sources.raw_landing import RawRecord, fail_batch, finish_batch, land_records, open_batch
from donor_sync.sources.watermarks import DEFAULT_OVERLAP, highest, read_watermark

#: Reads one window: given its start, yields the records in it.
WindowReader = Callable[[datetime], Iterable[RawRecord]]


@dataclass(frozen=True)
class StreamResult:
    """What one stream's extraction read and newly loaded."""

    source: str
    stream: str
    batch_id: int
    read: int
    loaded: int
    reported: int | None = None

    @property
    def unreconciled(self) -> int:
        """Return how many records the source reported beyond those read (0 when it reports none)."""
        return max(0, (self.reported or 0) - self.read)


def extract_stream(
    conn: psycopg.Connection,
    *,
    source: str,
    stream: str,
    run_id: UUID | None,
    read_window: WindowReader,
    initial_start: datetime,
    overlap: timedelta = DEFAULT_OVERLAP,
    reported: Callable[[], int | None] | None = None,
) -> StreamResult:
    """Land one window of ``source``/``stream`` as one batch and return its counts.

    The window starts at the watermark minus its overlap (``initial_start`` the first time). The
    batch keeps the highest (timestamp, id) read up to now; only a successful run moves the
    watermark to it.

    :param reported: after the window is read, how many records the source says it holds (for
        sources whose API tells); kept on the batch so each run's counts can be reconciled.
    """
    watermark = read_watermark(conn, source, stream, overlap=overlap)
    window_end = datetime.now(UTC)
    start = min(watermark.window_start(initial_start), window_end)
    batch_id = open_batch(
        conn,
        source=source,
        stream=stream,
        channel="api",
        run_id=run_id,
        window_start=start,
        window_end=window_end,
    )
    cursors: list[tuple[datetime, str]] = []

    def tracked() -> Iterator[RawRecord]:
        for record in read_window(start):
            # A record stamped in the future (bad data, a skewed clock) lands like any other, but
            # must not carry the watermark past now: every later record would be skipped.
            if record.source_updated_at is not None and record.source_updated_at <= window_end:
                cursors.append((record.source_updated_at, record.source_id))
            yield record

    try:
        read, loaded = land_records(conn, batch_id=batch_id, source=source, channel="api", records=tracked())
        total = reported() if reported else None
        finish_batch(conn, batch_id, read=read, loaded=loaded, cursor=highest(cursors), reported=total)
    except BaseException as exc:
        fail_batch(conn, batch_id, type(exc).__name__)
        raise
    return StreamResult(source, stream, batch_id, read, loaded, total)


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` or offset) into an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def source_time(value: object) -> datetime | None:
    """Return a record's own time (ISO-8601 text or epoch seconds) as UTC, or None when unreadable.

    Extraction never judges a record: one with a missing or garbled time still lands exactly as
    received (standardization quarantines it, naming the field); it just cannot move the watermark.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        text = str(value).strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        return parse_iso(text) if text else None
    except (ValueError, OverflowError, OSError):
        return None
