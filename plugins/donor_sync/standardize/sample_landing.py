"""Land a sandbox sample-data folder (``python -m sandbox.datagen``) into ``raw`` as extraction would.

Tests and benchmarks of standardization start from raw records shaped exactly like the
extractors' (API objects with their entity and timestamp), without running the emulators; CSV
exports go through the CSV loader itself (a table per file). One batch per stream or file, marked
'loaded'.
"""

from __future__ import annotations

import csv
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


def land_csv_sample(
    conn: psycopg.Connection,
    path: Path,
    format_name: str,
    *,
    run_id: UUID | None = None,
    limit: int | None = None,
    workdir: Path | None = None,
) -> int:
    """Land a sample CSV export with the CSV loader, as its export format reads it; return its batch id.

    The file stays where it is (nothing is archived). ``limit`` lands only its first rows (a copy
    of them written to ``workdir``, in the file's encoding, invalid bytes kept).
    """
    from donor_sync.sources.csv_drop import formats_dir, load_formats
    from donor_sync.sources.csv_drop.loader import file_sha256, load_file
    from donor_sync.sources.csv_drop.readiness import DropFile

    fmt = load_formats(formats_dir())[format_name]
    known = conn.execute(
        "SELECT batch_id FROM raw.csv_files WHERE sha256 = %s", (file_sha256(path),)
    ).fetchone()
    if known is not None and limit is None:  # landed before: the loader loads each file once
        return int(known[0])
    if limit is not None:
        path = _head(path, fmt.encoding, limit, (workdir or path.parent) / f"head_{limit}_{path.name}")
    outcome = load_file(conn, DropFile.stat(path), fmt, sha256=file_sha256(path), run_id=run_id)
    conn.commit()
    return outcome.batch_id


def _head(path: Path, encoding: str, limit: int, out: Path) -> Path:
    codec = "utf-8-sig" if encoding.startswith("utf") else encoding
    with (
        path.open(encoding=codec, errors="surrogateescape", newline="") as src,
        out.open("w", encoding=codec, errors="surrogateescape", newline="") as dst,
    ):
        writer = csv.writer(dst, lineterminator="\r\n")
        for i, row in enumerate(csv.reader(src)):
            if i > limit:
                break
            writer.writerow(row)
    return out


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
            batches[f"{sample.source}/{name}"] = land_csv_sample(conn, path, name, run_id=run_id)
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
