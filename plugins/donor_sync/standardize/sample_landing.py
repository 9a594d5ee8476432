"""Land a sandbox sample-data folder (``python -m sandbox.datagen``) into ``raw`` as extraction would.

Tests and benchmarks of standardization start from raw records shaped exactly like the
extractors' (API objects with their entity and timestamp, CSV rows as ``{"row", "line",
"encoding_errors", "raw_line_b64"}`` payloads), without running the emulators or the CSV loader.
One batch per stream, marked 'loaded'.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.sources.extract import source_time
from donor_sync.sources.raw_landing import RawRecord, finish_batch, land_records, open_batch


@dataclass(frozen=True)
class SampleCsv:
    """How a sample CSV export lands: its raw source name, id column and encoding."""

    source: str
    id_header: str
    encoding: str


#: The two CSV exports the generator writes (sources as their format files name them).
SAMPLE_CSVS: dict[str, SampleCsv] = {
    "bank_cheque_export": SampleCsv("bank_cheque", "Reference", "cp1252"),
    "event_platform_export": SampleCsv("event_platform", "Order ID", "utf-8-sig"),
}

#: jsonl file -> (source, stream, entity or None to read the object's own ``object`` field).
SAMPLE_STREAMS: tuple[tuple[str, str, str, str | None], ...] = (
    ("stripe/customers.jsonl", "stripe", "customers", None),
    ("stripe/charges.jsonl", "stripe", "charges", None),
    ("stripe/payment_intents.jsonl", "stripe", "payment_intents", None),
    ("stripe/refunds.jsonl", "stripe", "refunds", None),
    ("stripe/events.jsonl", "stripe", "events", None),
    ("donorbox/donations.jsonl", "donorbox", "donations", "donation"),
    ("classy/transactions.jsonl", "classy", "transactions", "transaction"),
)


def _timestamp(source: str, obj: dict[str, Any]) -> datetime | None:
    """Return the version time each extractor records for ``obj`` (the extractors' own rule)."""
    if source == "stripe":
        return source_time(obj.get("created"))
    if source == "donorbox":
        return source_time(obj.get("donation_date"))
    return source_time(obj.get("updated_at") or obj.get("created_at"))


def jsonl_records(path: Path, source: str, entity: str | None) -> Iterator[RawRecord]:
    """Yield one raw record per line of a sample jsonl file."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            obj = json.loads(line)
            yield RawRecord(entity or str(obj["object"]), str(obj["id"]), obj, _timestamp(source, obj))


def csv_records(path: Path, sample: SampleCsv) -> Iterator[RawRecord]:
    """Yield one raw record per data row of a sample CSV export, in the CSV loader's payload shape.

    Bytes that are not valid in the file's encoding are decoded as U+FFFD, their headers listed in
    ``encoding_errors`` and the physical line kept as base64, as the CSV loader does.
    """
    data = path.read_bytes()
    codec = "utf-8" if sample.encoding == "utf-8-sig" else sample.encoding
    if sample.encoding == "utf-8-sig" and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.decode(codec, errors="surrogateescape").splitlines(keepends=True)
    digest = hashlib.sha256(data).hexdigest()[:16]
    reader = csv.reader(iter(lines))
    header = next(reader)
    start = reader.line_num
    for cells in reader:
        end = reader.line_num
        physical = "".join(lines[start:end])
        line_no = start + 1
        start = end
        row: dict[str, str] = {}
        bad: list[str] = []
        for name, cell in zip(header, cells, strict=False):
            clean = cell.encode(codec, errors="surrogateescape").decode(codec, errors="replace")
            if clean != cell:
                bad.append(name)
            row[name] = clean
        payload: dict[str, Any] = {"row": row, "line": line_no, "encoding_errors": bad}
        if bad:
            raw = physical.encode(codec, errors="surrogateescape").rstrip(b"\r\n")
            payload["raw_line_b64"] = base64.b64encode(raw).decode("ascii")
        source_id = row.get(sample.id_header) or f"{digest}:{line_no}"
        yield RawRecord("csv_row", source_id, payload, None)


def land_sample(conn: psycopg.Connection, data_dir: Path, *, run_id: UUID | None = None) -> dict[str, int]:
    """Land every stream of ``data_dir`` as one loaded batch each; return ``{stream: batch_id}``."""
    batches: dict[str, int] = {}
    for relative, source, stream, entity in SAMPLE_STREAMS:
        path = data_dir / relative
        if path.exists():
            batches[f"{source}/{stream}"] = _land(
                conn,
                source=source,
                stream=stream,
                channel="api",
                run_id=run_id,
                records=jsonl_records(path, source, entity),
            )
    for name, sample in SAMPLE_CSVS.items():
        path = data_dir / "csv" / f"{name}.csv"
        if path.exists():
            batches[f"{sample.source}/{name}"] = _land(
                conn,
                source=sample.source,
                stream=name,
                channel="csv",
                run_id=run_id,
                records=csv_records(path, sample),
            )
    return batches


def _land(
    conn: psycopg.Connection,
    *,
    source: str,
    stream: str,
    channel: str,
    run_id: UUID | None,
    records: Iterator[RawRecord],
) -> int:
    batch_id = open_batch(conn, source=source, stream=stream, channel=channel, run_id=run_id)
    read, loaded = land_records(conn, batch_id=batch_id, source=source, channel=channel, records=records)
    finish_batch(conn, batch_id, read=read, loaded=loaded, cursor=None)
    return batch_id
