"""Benchmark the donor aggregates: a full refresh over ``--size`` donors and about 3x as many gifts.

A fresh database gets ``--size`` golden donors (names, emails and postcodes, so core.donors'
indexes cost what they cost in production; 2% merged into another donor), about three gifts per
donor (geometric counts, mixed statuses, refunds, test payments and 5% in other currencies) and a
recurring plan for 5% of donors, all synthesized with numpy and loaded with COPY (not timed).
Then, timed:

- ``full_first``: the nightly refresh over every donor when every donor changes (first run);
- ``full_noop``: the same refresh again, nothing changed (the cost of the nightly comparison);
- ``incremental_1000``: the hourly refresh of 1,000 donors whose gifts changed.

Reported: wall times, this process's peak RSS and the Postgres backend's peak RSS (VmHWM, when the
server runs on this machine), as JSON in bench/results/aggregates.json. Run from the repository
root: ``.venv/bin/python bench/aggregates.py --size 1000000``.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_arguments, bench_url, headline, metric, random_uuids, write_result

TODAY = date(2026, 1, 15)


def _copy(conn: Any, table: tuple[str, str], columns: dict[str, Any]) -> None:
    """COPY columns (name → array) into ``schema.table`` as CSV."""
    from psycopg import sql

    arrow = pa.table({k: pa.array(v) for k, v in columns.items()})
    buffer = io.BytesIO()
    pa_csv.write_csv(arrow, buffer, pa_csv.WriteOptions(include_header=False))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(*table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(buffer.getvalue())


def synthesize(conn: Any, donors: int, seed: int = 11) -> dict[str, int]:
    """Load donors, gifts and plans (COPY, then set-based SQL); return what was loaded."""
    rng = np.random.default_rng(seed)
    ids = random_uuids(rng, donors)
    first = np.array(["Ann", "Bob", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo"], dtype=object)
    last = np.char.add("Surname", rng.integers(0, 50_000, donors).astype(str)).astype(object)
    _copy(
        conn,
        ("core", "donors"),
        {
            "donor_id": ids,
            "first_name": first[rng.integers(0, len(first), donors)],
            "last_name": last,
            "last_name_key": np.char.add("K", rng.integers(0, 20_000, donors).astype(str)).astype(object),
            "email": np.char.add(
                np.char.add("donor", np.arange(donors).astype(str)), "@bench.example.org"
            ).astype(object),
            "postal_code": rng.integers(10_000, 99_999, donors).astype(str).astype(object),
            "country_code": np.full(donors, "US", dtype=object),
        },
    )
    per_donor = np.minimum(rng.geometric(1 / 3, donors), 60)
    n = int(per_donor.sum())
    owner = np.repeat(np.arange(donors), per_donor)
    start = datetime(2019, 1, 1, tzinfo=UTC).timestamp()
    span = datetime(2026, 1, 14, tzinfo=UTC).timestamp() - start
    at = (start + rng.random(n) * span).astype("datetime64[s]")
    minor = (
        rng.choice([500, 1000, 2500, 5000, 10000, 25000, 100000], n, p=[0.1, 0.2, 0.3, 0.2, 0.12, 0.06, 0.02])
    ).astype(np.int64)
    currency = rng.choice(np.array(["USD", "EUR", "GBP", "CAD"], dtype=object), n, p=[0.95, 0.02, 0.02, 0.01])
    status = rng.choice(
        np.array(["succeeded", "refunded", "partially_refunded", "failed", "pending"], dtype=object),
        n,
        p=[0.9, 0.02, 0.02, 0.05, 0.01],
    )
    refunded = np.where(status == "refunded", minor, np.where(status == "partially_refunded", minor // 2, 0))
    _copy(
        conn,
        ("core", "gifts"),
        {
            "gift_key": np.char.add("stripe:ch_bench_", np.arange(n).astype(str)).astype(object),
            "donor_id": ids[owner],
            "source": np.full(n, "stripe", dtype=object),
            "amount": (minor / 100).astype(str).astype(object),
            "currency": currency,
            "currency_exponent": np.full(n, 2, dtype=np.int16),
            "amount_minor": minor,
            "gift_at": pa.array(at.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC")),
            "gift_date": at.astype("datetime64[D]"),
            "status": status,
            "refunded_amount": (refunded / 100).astype(str).astype(object),
            "is_test": rng.random(n) < 0.01,
        },
    )
    # 5% of donors give monthly: a plan each, their gifts its installments.
    conn.execute(
        "INSERT INTO core.recurring_plans (plan_key, donor_id, source, source_id, amount, currency,"
        "  currency_exponent, amount_minor, interval_unit, status, started_at)"
        " SELECT 'stripe:sub_' || d.donor_id, d.donor_id, 'stripe', 'sub_' || d.donor_id, 25, 'USD', 2, 2500,"
        "        'month', 'active', '2024-01-01'"
        " FROM core.donors d WHERE get_byte(uuid_send(d.donor_id), 0) < 13"
    )
    conn.execute(
        "UPDATE core.gifts g SET recurring_plan_id = p.recurring_plan_id"
        " FROM core.recurring_plans p WHERE p.donor_id = g.donor_id"
    )
    # 2% of donors merged into another (never chained: survivors are never merged themselves).
    conn.execute(
        "WITH losers AS (SELECT donor_id, row_number() OVER () AS k FROM core.donors"
        "                WHERE get_byte(uuid_send(donor_id), 1) < 5),"
        " survivors AS (SELECT donor_id, row_number() OVER () AS k FROM core.donors"
        "               WHERE get_byte(uuid_send(donor_id), 1) >= 5)"
        " UPDATE core.donors d SET merged_into = s.donor_id, merged_at = now()"
        " FROM losers l JOIN survivors s USING (k) WHERE d.donor_id = l.donor_id"
    )
    conn.execute("ANALYZE core.donors; ANALYZE core.gifts; ANALYZE core.recurring_plans")
    conn.commit()
    row = conn.execute(
        "SELECT (SELECT count(*) FROM core.donors), (SELECT count(*) FROM core.gifts),"
        " (SELECT count(*) FROM core.recurring_plans),"
        " (SELECT count(*) FROM core.donors WHERE merged_into IS NOT NULL)"
    ).fetchone()
    return {"donors": row[0], "gifts": row[1], "plans": row[2], "merged_donors": row[3]}


def _backend_peak_gib(conn: Any) -> float | None:
    """Return the Postgres backend's peak RSS (VmHWM) in GiB when it runs on this machine."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024 / 1024, 3)
    except OSError:
        return None
    return None


#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 2_000
#: The README table's row.
HEADLINES = [
    headline(
        "giving aggregates for {p.donors:,} donors / {p.gifts:,} gifts",
        "{refresh_all_first_run} s when every donor changes, {refresh_all_nothing_changed} s when none"
        " does, {refresh_1000_donors} s for 1,000 touched donors (the hourly case)",
    )
]


def main() -> None:
    """Run the benchmark and write bench/results/aggregates.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="golden donors (gifts: about 3x)")
    add_common_arguments(parser)
    args = parser.parse_args()

    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade
    from donor_sync.resolve.aggregates import refresh_aggregates
    from donor_sync.resolve.fiscal import load_giving_settings

    url = bench_url("ds_bench_aggregates")
    drop_database(url)
    ensure_database(url)
    upgrade(url)
    settings = load_giving_settings()
    results: list[dict[str, Any]] = []
    try:
        with connect(url) as conn:
            t = time.perf_counter()
            loaded = synthesize(conn, args.size)
            setup = time.perf_counter() - t
            print(f"loaded {loaded} in {setup:.1f} s", flush=True)
            timings: dict[str, float] = {}
            counts: dict[str, dict[str, int]] = {}
            for name in ("full_first", "full_noop"):
                t = time.perf_counter()
                c = refresh_aggregates(conn, None, today=TODAY, settings=settings)
                conn.commit()
                timings[name] = time.perf_counter() - t
                counts[name] = c.metrics()
                print(f"{name}: {timings[name]:.2f} s {c.metrics()}", flush=True)
            touched = [
                r[0] for r in conn.execute("SELECT donor_id FROM core.donors ORDER BY random() LIMIT 1000")
            ]
            # One gift of each refunded (what an hourly run brings).
            conn.execute(
                "UPDATE core.gifts SET status = 'refunded', refunded_amount = amount WHERE gift_id IN"
                " (SELECT DISTINCT ON (donor_id) gift_id FROM core.gifts WHERE donor_id = ANY(%s))",
                (touched,),
            )
            conn.commit()
            t = time.perf_counter()
            c = refresh_aggregates(conn, touched, today=TODAY, settings=settings)
            conn.commit()
            timings["incremental_1000"] = time.perf_counter() - t
            counts["incremental_1000"] = c.metrics()
            print(f"incremental_1000: {timings['incremental_1000']:.3f} s {c.metrics()}", flush=True)
            backend_peak = _backend_peak_gib(conn)
    finally:
        drop_database(url)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    results = [
        metric("refresh_all_first_run", round(timings["full_first"], 2), "s", counts=counts["full_first"]),
        metric(
            "refresh_all_nothing_changed", round(timings["full_noop"], 2), "s", counts=counts["full_noop"]
        ),
        metric(
            "refresh_1000_donors",
            round(timings["incremental_1000"], 3),
            "s",
            counts=counts["incremental_1000"],
        ),
        metric("setup_synthesize_and_copy", round(setup, 1), "s", note="not part of the refresh"),
        metric("peak_rss_process", round(peak, 3), "GiB", note="this process, synthesis included"),
    ]
    if backend_peak is not None:
        results.append(
            metric("peak_rss_postgres_backend", backend_peak, "GiB", note="VmHWM of the session's backend")
        )
    path = write_result(
        "aggregates",
        {"size": args.size, **loaded, "today": TODAY.isoformat()},
        results,
        headlines=HEADLINES,
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
