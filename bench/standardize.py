"""Benchmark the standardize stage: N raw records (a realistic mix of sources) standardized.

Sample data comes from ``sandbox.datagen`` (enough donors for N raw records, the same share of
each stream as generated: Stripe customers, charges, payment intents, refunds and events,
Donorbox donations, Classy transactions and both CSV exports). It is landed in raw through COPY
by a child process, not timed; then this process standardizes every batch, timed, and reconciles.

Reported: wall time of ``standardize_batches`` (Postgres' work included: it runs on the same
machine), this process's peak RSS (Postgres' memory is its own), records per second, and the
outcome counts. Run from the repository root:
``.venv/bin/python bench/standardize.py --size 1000000``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_arguments, bench_url, headline, metric, write_result

#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 5_000
#: Raw records the generator writes per donor (measured: 20,000 donors -> 135,797 records).
RECORDS_PER_DONOR = 6.79


#: The README table's row.
HEADLINES = [
    headline(
        "standardizing {raw_records:,} raw records (all sources' mix)",
        "{wall_time} s, {peak_rss} GiB peak RSS ({records_per_second:,} records/s); staged {staged:,},"
        " quarantined {quarantined:,}, skipped {skipped:,}; {reconcile_mismatches} reconcile mismatches",
        ["wall_time", "peak_rss", "reconcile_mismatches"],
    )
]


def sample_dir(donors: int, seed: int) -> Path:
    """Generate (once) and return a sample-data folder for ``donors`` donors."""
    from donor_sync.paths import local_state_dir
    from sandbox.datagen import GenerationConfig, generate

    out = local_state_dir() / "bench" / f"standardize-{donors}-{seed}"
    if not (out / "truth" / "manifest.json").exists():
        generate(GenerationConfig(donors=donors, seed=seed, out=out))
    return out


def _copy_jsonl(conn: Any, path: Path, source: str, stream: str, entity: str | None, limit: int) -> int:
    """COPY the first ``limit`` lines of a jsonl file into raw.records as one loaded batch."""
    import msgspec

    from donor_sync.sources.extract import parse_iso
    from donor_sync.sources.raw_landing import finish_batch, open_batch

    class Head(msgspec.Struct):
        id: str | int
        object: str | None = None
        created: int | None = None
        donation_date: str | None = None
        updated_at: str | None = None
        created_at: str | None = None

    decoder = msgspec.json.Decoder(Head)
    batch_id = open_batch(conn, source=source, stream=stream, channel="api", run_id=None)
    fetched = datetime.now(UTC)
    count = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY raw.records (batch_id, source, entity, source_id, channel, source_updated_at, fetched_at,"
            " payload)"
            " FROM STDIN"
        ) as copy,
        path.open("rb") as handle,
    ):
        for line in handle:
            if count >= limit:
                break
            head = decoder.decode(line)
            stamp: datetime | None
            if source == "stripe":
                stamp = datetime.fromtimestamp(head.created or 0, UTC)
            elif source == "donorbox":
                stamp = parse_iso(head.donation_date) if head.donation_date else None
            else:
                when = head.updated_at or head.created_at
                stamp = parse_iso(when) if when else None
            copy.write_row(
                (
                    batch_id,
                    source,
                    entity or head.object,
                    str(head.id),
                    "api",
                    stamp,
                    fetched,
                    line.decode().rstrip("\n"),
                )
            )
            count += 1
    finish_batch(conn, batch_id, read=count, loaded=count, cursor=None)
    return count


def land(url: str, data: str, size: int) -> None:
    """Land ``size`` raw records from ``data`` (run in a child process, so its memory is its own)."""
    from donor_sync.db import connect
    from donor_sync.standardize.sample_landing import SAMPLE_CSVS, SAMPLE_STREAMS, land_csv_sample

    root = Path(data)
    files: list[tuple[Path, int]] = []
    for relative, *_ in SAMPLE_STREAMS:
        path = root / relative
        with path.open("rb") as handle:
            files.append((path, sum(1 for _ in handle)))
    csv_counts = {}
    for name in SAMPLE_CSVS:
        with (root / "csv" / f"{name}.csv").open("rb") as handle:
            csv_counts[name] = max(0, sum(1 for _ in handle) - 1)
    total = sum(n for _, n in files) + sum(csv_counts.values())
    share = min(1.0, size / total)
    with connect(url) as conn:
        for (relative, source, stream, entity), (path, lines) in zip(SAMPLE_STREAMS, files, strict=True):
            del relative
            _copy_jsonl(conn, path, source, stream, entity, math.floor(lines * share))
        conn.commit()
        for name in SAMPLE_CSVS:
            limit = math.floor(csv_counts[name] * share)
            land_csv_sample(conn, root / "csv" / f"{name}.csv", name, limit=limit, workdir=root)


def main() -> int:
    """Land ``--size`` raw records (not timed), standardize them (timed), reconcile, write results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="raw records to standardize")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="standardize again what an earlier run landed (staging emptied first)",
    )
    add_common_arguments(parser)
    args = parser.parse_args()

    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade

    url = bench_url("donor_sync_bench_standardize")
    donors = max(100, math.ceil(args.size / RECORDS_PER_DONOR))
    if not args.reuse:
        data = sample_dir(donors, args.seed)
        drop_database(url)
        ensure_database(url)
        upgrade(url)
        began = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=land, args=(url, str(data), args.size))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"landing failed with exit code {child.exitcode}")
        print(f"landed in {time.perf_counter() - began:.1f} s (not timed)")
    with connect(url, autocommit=True) as conn:
        if args.reuse:
            conn.execute("TRUNCATE staging.donors, staging.gifts, staging.quarantine, staging.dispositions")
            conn.execute(
                "UPDATE raw.batches SET status = 'loaded', records_staged = 0, records_quarantined = 0,"
                " records_skipped = 0, finished_at = NULL"
            )
        conn.execute("ANALYZE raw.records")  # what autovacuum does after a large load

    from donor_sync.standardize.pipeline import standardize_batches
    from donor_sync.standardize.reconcile import reconcile
    from donor_sync.standardize.settings import load_settings

    settings = load_settings().with_expect_livemode("stripe", False)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    with connect(url) as conn:
        batch_ids = [
            int(r[0]) for r in conn.execute("SELECT batch_id FROM raw.batches ORDER BY 1").fetchall()
        ]
        records = int(
            conn.execute(
                "SELECT (SELECT count(*) FROM raw.records) + (SELECT count(*) FROM raw.csv_rows)"
            ).fetchone()[0]
        )  # type: ignore[index]
        began = time.perf_counter()
        result = standardize_batches(conn, batch_ids, settings=settings, now=datetime(2026, 1, 1, tzinfo=UTC))
        wall = time.perf_counter() - began
        mismatches = reconcile(conn, batch_ids)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    path = write_result(
        "standardize",
        {"size": args.size, "seed": args.seed, "donors_generated": donors, "chunk_size": settings.chunk_size},
        [
            metric(
                "wall_time", round(wall, 2), "s", goal="< 60", note="standardize_batches, Postgres included"
            ),
            metric("records_per_second", round(records / wall), "records/s"),
            metric("peak_rss", round(peak, 3), "GiB", goal="< 4", note="this process; Postgres apart"),
            metric("rss_before_standardize", round(rss_before, 3), "GiB"),
            metric("raw_records", records, "records"),
            metric("staged", result.staged, "records"),
            metric("quarantined", result.quarantined, "records"),
            metric("skipped", result.skipped, "records"),
            metric("staged_donor_rows", result.donors, "rows"),
            metric("staged_gift_rows", result.gifts, "rows"),
            metric("reconcile_mismatches", len(mismatches), "mismatches", goal="0"),
        ],
        headlines=HEADLINES,
        results_dir=args.results_dir,
    )
    print(
        f"{records:,} raw records standardized in {wall:.1f} s ({records / wall:,.0f}/s), "
        f"peak RSS {peak:.2f} GiB; "
        f"staged {result.staged:,}, quarantined {result.quarantined:,}, skipped {result.skipped:,}; "
        f"{len(mismatches)} reconcile mismatches: {path}"
    )
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
