"""Benchmark the outbox: queueing a donor base with gifts, a no-op re-run, and an hourly change.

A fresh database gets ``--size`` golden donors with two gifts each (generated set-based in SQL,
not timed). Then, timed, for the destination ``salesforce`` with a small hand-written mapping
(contact per donor, opportunity per gift, so the numbers measure the outbox, not a mapping):

- ``queue_records``: :func:`queue_records` of ``--size`` pre-rendered records (hash, compare,
  one INSERT ... SELECT ... ON CONFLICT), the outbox alone;
- ``first_run``: :func:`queue_destination` over everything (read core, render, COPY, classify,
  guard, write) when nothing has landed yet;
- ``noop_full_run``: the same, full recompute, after everything landed (the nightly drift check);
- ``incremental_1000``: the hourly run after 1,000 donors changed.

Where the shipped mapping engine is available, ``first_run_shipped_mapping`` repeats the first run
with the real Salesforce mapping (rendering included). Results go to bench/results/outbox_queue.json.
Run from the repository root: ``.venv/bin/python bench/outbox_queue.py --size 100000``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_arguments, bench_url, headline, metric, write_result

DESTINATION = "salesforce"
GIFTS_PER_DONOR = 2


class BenchRenderer:
    """Contacts from donors, opportunities (depending on their contact) from gifts."""

    def objects(self) -> Sequence[Any]:
        from donor_sync.delivery.outbox import MappedObject

        return [MappedObject("contact", "donor"), MappedObject("opportunity", "gift")]

    def render(self, kind: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
        from donor_sync.delivery.contracts import Operation, RecordRef, RenderedRecord

        for row in rows:
            if kind == "donor":
                yield RenderedRecord(
                    "contact",
                    row["donor_id"],
                    Operation.UPSERT,
                    {
                        "Donor_Sync_Id__c": row["donor_id"],
                        "FirstName": row["first_name"],
                        "LastName": row["last_name"],
                        "Email": row["email"],
                        "npo02__NumberOfClosedOpps__c": row["gift_count"],
                    },
                    donor_id=row["donor_id"],
                )
            elif kind == "gift":
                yield RenderedRecord(
                    "opportunity",
                    row["gift_key"],
                    Operation.UPSERT,
                    {
                        "Gift_Key__c": row["gift_key"],
                        "Amount": str(row["amount"]),
                        "CloseDate": row["gift_date"].isoformat(),
                        "StageName": "Closed Won",
                    },
                    donor_id=row["donor_id"],
                    depends_on=(RecordRef("contact", row["donor_id"]),),
                )


def synthesize(conn: Any, donors: int) -> dict[str, int]:
    """Insert donors with two gifts each, set-based; return the counts."""
    # Loaded an hour ago: the hourly run's window (watermark minus its 10-minute overlap) then
    # holds only what changed since, as in production.
    conn.execute(
        "INSERT INTO core.donors (first_name, last_name, email, gift_count, updated_at)"
        " SELECT 'First' || i, 'Last' || i, 'donor' || i || '@bench.example.org', 2,"
        " now() - interval '1 hour'"
        " FROM generate_series(1, %s) i",
        (donors,),
    )
    conn.execute(
        "INSERT INTO core.gifts (gift_key, donor_id, source, amount, currency, currency_exponent,"
        " amount_minor, gift_at, gift_date, status, updated_at)"
        " SELECT 'stripe:ch_' || d.n || '_' || k, d.donor_id, 'stripe', 25, 'USD', 2, 2500,"
        " '2026-01-15T12:00:00Z', '2026-01-15', 'succeeded', now() - interval '1 hour'"
        " FROM (SELECT donor_id, row_number() OVER () AS n FROM core.donors) d, generate_series(1, %s) k",
        (GIFTS_PER_DONOR,),
    )
    conn.execute("ANALYZE core.donors; ANALYZE core.gifts")
    conn.commit()
    return {"donors": donors, "gifts": donors * GIFTS_PER_DONOR}


def land_everything(conn: Any) -> None:
    """What a successful push leaves behind: every pending row landed with a remote id."""
    conn.execute(
        "INSERT INTO sync.destination_state (destination, entity, record_key, donor_id, remote_id,"
        " last_payload_sha256, last_pushed_at, last_outbox_id)"
        " SELECT destination, entity, record_key, donor_id, 'R' || outbox_id, payload_sha256, now(),"
        " outbox_id"
        " FROM sync.outbox WHERE destination = %s AND state = 'pending'",
        (DESTINATION,),
    )
    conn.execute(
        "UPDATE sync.outbox SET state = 'succeeded' WHERE destination = %s AND state = 'pending'",
        (DESTINATION,),
    )
    conn.execute("ANALYZE sync.outbox; ANALYZE sync.destination_state")
    conn.commit()


def _timed(label: str, timings: dict[str, float], func: Any) -> Any:
    started = time.perf_counter()
    result = func()
    timings[label] = time.perf_counter() - started
    print(f"{label}: {timings[label]:.2f} s", flush=True)
    return result


#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 2_000
#: The README table's row.
HEADLINES = [
    headline(
        "queueing {p.donors:,} donors and {p.gifts:,} gifts for Salesforce in the outbox (a small"
        " hand-written mapping)",
        "{first_run} s the first time ({first_run.records_per_second:,} records/s), {noop_full_run} s for a"
        " full re-run with nothing changed ({noop_full_run.queued} queued), {incremental_1000} s after"
        " 1,000 donors changed; the shipped Salesforce mapping's first run {first_run_shipped_mapping} s",
    )
]


def main() -> None:
    """Run the benchmark and write bench/results/outbox_queue.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="golden donors (gifts: 2x)")
    add_common_arguments(parser)
    args = parser.parse_args()

    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade
    from donor_sync.delivery.contracts import Operation, RenderedRecord
    from donor_sync.delivery.outbox import Scope, default_renderer, queue_destination, queue_records
    from donor_sync.delivery.settings import BlastRadius, DestinationSettings

    # The benchmark rewrites every record on purpose: no guard.
    settings = DestinationSettings(blast_radius=BlastRadius(max_destructive_share=1, max_overwrite_share=1))
    url = bench_url("ds_bench_outbox_queue")
    drop_database(url)
    ensure_database(url)
    upgrade(url)
    timings: dict[str, float] = {}
    counts: dict[str, int] = {}
    try:
        with connect(url) as conn:
            t = time.perf_counter()
            loaded = synthesize(conn, args.size)
            setup = time.perf_counter() - t
            records = [
                RenderedRecord(
                    "member", f"m{i}", Operation.UPSERT, {"email_hash": f"{i:064x}", "status": "subscribed"}
                )
                for i in range(args.size)
            ]
            queued = _timed("queue_records", timings, lambda: queue_records(conn, "mailchimp", records))
            conn.commit()
            counts["queue_records"] = sum(c.queued for c in queued.values())
            renderer = BenchRenderer()
            first = _timed(
                "first_run",
                timings,
                lambda: queue_destination(conn, DESTINATION, renderer, settings=settings),
            )
            conn.commit()
            counts["first_run"] = first.queued
            land_everything(conn)
            noop = _timed(
                "noop_full_run",
                timings,
                lambda: queue_destination(conn, DESTINATION, renderer, scope=Scope.full(), settings=settings),
            )
            conn.commit()
            counts["noop_full_run_queued"] = noop.queued
            conn.execute(
                "UPDATE core.donors SET gift_count = gift_count + 1 WHERE donor_id IN"
                " (SELECT donor_id FROM core.donors ORDER BY donor_id LIMIT 1000)"
            )
            conn.commit()
            hourly = _timed(
                "incremental_1000",
                timings,
                lambda: queue_destination(conn, DESTINATION, renderer, settings=settings),
            )
            conn.commit()
            counts["incremental_1000_queued"] = hourly.queued
            try:
                shipped = default_renderer(DESTINATION)
            except Exception as exc:  # the engine is optional here
                print(f"shipped mapping not measured: {exc}")
            else:
                conn.execute(
                    "DELETE FROM sync.outbox; DELETE FROM sync.destination_state; DELETE FROM sync.watermarks"
                )
                conn.commit()
                real = _timed(
                    "first_run_shipped_mapping",
                    timings,
                    lambda: queue_destination(conn, DESTINATION, shipped, settings=settings),
                )
                conn.commit()
                counts["first_run_shipped_mapping"] = real.queued
    finally:
        drop_database(url)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    total_records = args.size * (1 + GIFTS_PER_DONOR)
    results = [
        metric("queue_records", round(timings["queue_records"], 2), "s", records=counts["queue_records"]),
        metric(
            "first_run",
            round(timings["first_run"], 2),
            "s",
            records=counts["first_run"],
            records_per_second=round(total_records / timings["first_run"]),
        ),
        metric(
            "noop_full_run", round(timings["noop_full_run"], 2), "s", queued=counts["noop_full_run_queued"]
        ),
        metric(
            "incremental_1000",
            round(timings["incremental_1000"], 2),
            "s",
            queued=counts["incremental_1000_queued"],
        ),
        metric("setup_synthesize", round(setup, 1), "s", note="not part of the queue"),
        metric("peak_rss_process", round(peak, 3), "GiB"),
    ]
    if "first_run_shipped_mapping" in timings:
        results.append(
            metric(
                "first_run_shipped_mapping",
                round(timings["first_run_shipped_mapping"], 2),
                "s",
                records=counts["first_run_shipped_mapping"],
                note="include/mappings/destinations/salesforce.yaml, rendering included",
            )
        )
    path = write_result(
        "outbox_queue",
        {"size": args.size, **loaded},
        results,
        headlines=HEADLINES,
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
