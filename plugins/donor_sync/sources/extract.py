"""One extraction of one source stream: watermark → window → batch → COPY landing → counts.

Every source module supplies only how to read records of a window; this module owns the batch,
the landing, the cursor it reached, and marking the batch failed (error class only) on failure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg

from donor_sync.sources.raw_landing import (
    RawRecord,
    fail_batch,
    finish_batch,
    land_records,
    open_batch,
    payload_json,
)
from donor_sync.sources.watermarks import DEFAULT_OVERLAP, highest, read_watermark

#: Reads one window: given its start, yields the records in it.
WindowReader = Callable[[datetime], Iterable[RawRecord]]

#: Entity of an item a source listed that cannot be identified: not a JSON object, or without a
#: usable id (or object type). It lands anyway, so it is counted, and standardization quarantines
#: it (``missing_id``) for a person; one such item never fails its whole batch.
UNIDENTIFIED = "unidentified"
_ENTITY = re.compile(r"^[a-z][a-z0-9_]*$")


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


def _usable_id(value: object) -> bool:
    """Whether ``value`` can be a record's source id (text Postgres can hold, not blank)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return False
    text = str(value)
    return bool(text.strip()) and "\x00" not in text and text.isprintable()


def listed_record(
    item: object,
    *,
    entity: str | None = None,
    entity_key: str | None = None,
    id_key: str = "id",
    time_keys: Sequence[str] = (),
) -> RawRecord:
    """Return the raw record of one item of a page, exactly as received.

    An item that is not a JSON object, has no usable id, or (with ``entity_key``) no valid object
    type becomes an :data:`UNIDENTIFIED` record whose source id is its payload's SHA-256 (the same
    on every read, so re-reading it adds nothing); a non-object item is kept as ``{"item": ...}``.

    :param entity: the entity of every item of the stream; or ``entity_key``: the item's field naming it.
    :param time_keys: the item's fields holding its time, the first one present is used.
    """
    if isinstance(item, dict):
        kind = item.get(entity_key) if entity_key else entity
        source_id = item.get(id_key)
        if isinstance(kind, str) and _ENTITY.match(kind) and _usable_id(source_id):
            when = next((item[key] for key in time_keys if item.get(key)), None)
            return RawRecord(kind, str(source_id), item, source_time(when))
    payload = item if isinstance(item, dict) else {"item": item}
    digest = hashlib.sha256(payload_json(payload).encode()).hexdigest()
    return RawRecord(UNIDENTIFIED, f"sha256:{digest}", payload, None)
