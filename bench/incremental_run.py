"""Benchmark an hourly run: new Stripe charges extracted from the emulator, landed and standardized,
with nothing staged and with 1,000,000 gifts already staged.

The cost of an hourly run must follow what arrived, not what is staged. For each number of new
charges (1,000 and 10,000) and each staging size (0 and ``--size`` gifts, their donors and their
dispositions, written straight into staging beforehand, not timed), a fresh database gets a run
that extracts the new charges from the sandbox's Stripe emulator (seeded through its admin API)
into raw and standardizes them. Reported: extraction and standardization times of each case,
and the ratios that show what the time follows. Run from the repository root:
``.venv/bin/python bench/incremental_run.py --size 1000000``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_arguments, headline, metric, write_result
from standardize import bench_url, sample_dir

#: The size ``donor-sync bench --ci`` runs it at (gifts already staged).
CI_SIZE = 2_000
NEW_CHARGES = (1_000, 10_000)
#: Synthetic staged rows get raw_record_ids far above any real one in the benchmark database.
OFFSET = 10**12


def stage_existing(conn: Any, gifts: int) -> None:
    """Write ``gifts`` staged gifts, a donor for each, and their dispositions (set-based, not timed)."""
    if not gifts:
        return
    conn.execute(
        "INSERT INTO raw.batches (source, stream, channel, status)"
        " VALUES ('stripe', 'history', 'api', 'standardized')"
    )
    conn.execute(
        """
        INSERT INTO staging.donors (raw_record_id, batch_id, source, source_id, first_name, last_name,
                                    last_name_key, email, country_code, consent_signals, review_flags)
        SELECT %(offset)s + g, 1, 'stripe', 'cus_hist_' || g, 'First' || (g %% 5000), 'Last' || (g %% 20000),
               'LST' || (g %% 20000), 'donor' || g || '@history.example.org', 'US', '[]', '[]'
        FROM generate_series(1, %(n)s) AS g
        """,
        {"offset": OFFSET, "n": gifts},
    )
    conn.execute(
        """
        INSERT INTO staging.gifts (raw_record_id, batch_id, source, entity, source_id, source_donor_id,
                                   gift_key, amount, currency, currency_exponent, amount_minor, gift_at,
                                   status)
        SELECT %(offset)s + %(n)s + g, 1, 'stripe', 'charge', 'ch_hist_' || g, 'cus_hist_' || g,
               'stripe:ch_hist_' || g, (g %% 500 + 1)::numeric, 'USD', 2, (g %% 500 + 1) * 100,
               timestamptz '2019-01-01' + g * interval '1 minute', 'succeeded'
        FROM generate_series(1, %(n)s) AS g
        """,
        {"offset": OFFSET, "n": gifts},
    )
    conn.execute(
        """
        INSERT INTO staging.dispositions (raw_record_id, batch_id, disposition)
        SELECT %(offset)s + g, 1, 'staged' FROM generate_series(1, 2 * %(n)s) AS g
        """,
        {"offset": OFFSET, "n": gifts},
    )
    conn.commit()
    conn.execute("ANALYZE staging.donors")
    conn.execute("ANALYZE staging.gifts")
    conn.execute("ANALYZE staging.dispositions")
    conn.commit()


def new_charges(data: Path, count: int, now: datetime, repeat: int) -> list[dict[str, Any]]:
    """Return ``count`` charges shaped like Stripe's, made in the last hour (new ids, sample contents)."""
    rng = random.Random(count * 100 + repeat)
    templates = [json.loads(line) for line in (data / "stripe" / "charges.jsonl").open(encoding="utf-8")]
    charges = []
    for i in range(count):
        charge = dict(templates[(i + repeat * count) % len(templates)])
        charge["id"] = f"ch_hourly_{count}_{repeat}_{i:06d}"
        charge["created"] = int((now - timedelta(seconds=rng.randint(60, 3500))).timestamp())
        charges.append(charge)
    return charges


def hourly_run(
    url: str, running: Any, ca: str, charges: list[dict[str, Any]], now: datetime, name: str
) -> dict[str, float]:
    """Seed the emulator, then time one run's extraction and standardization."""
    import requests

    from donor_sync.db import connect
    from donor_sync.observability import runs
    from donor_sync.sources.stripe import extract_stripe
    from donor_sync.sources.stripe.helpers import StripeApi
    from donor_sync.standardize.run import standardize_run
    from donor_sync.standardize.settings import load_settings

    with requests.Session() as http:
        http.trust_env = False
        http.post(f"{running.admin_url}/reset", verify=ca, timeout=30).raise_for_status()
        http.patch(
            f"{running.admin_url}/settings", json={"read_requests_per_second": 100_000}, verify=ca, timeout=30
        ).raise_for_status()
        http.post(
            f"{running.admin_url}/seed/charges", json=charges, verify=ca, timeout=300
        ).raise_for_status()
    api = StripeApi(running.base_url, "rk_test_sandbox", verify=ca)
    settings = load_settings().with_expect_livemode("stripe", False)
    with connect(url) as conn:
        run_id = runs.open_run(conn, dag_id="donations_hourly", airflow_run_id=name, run_type="cli")
        began = time.perf_counter()
        results = extract_stripe(
            conn, api, run_id=run_id, streams=("charges",), initial_start=now - timedelta(days=1)
        )
        extracted = time.perf_counter()
        result = standardize_run(conn, run_id, settings=settings, now=now)
        done = time.perf_counter()
    assert sum(r.loaded for r in results) == len(charges), "not every new charge was landed"
    assert result.staged + result.quarantined == len(charges), "not every new charge was standardized"
    return {"extract": extracted - began, "standardize": done - extracted, "total": done - began}


def headlines(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the README table's row for a run over ``parameters`` (its metric names hold the sizes)."""
    none, staged = parameters["staged_gifts"]
    small, large = parameters["new_charges"]

    def total(gifts: int, new: int) -> str:
        return f"{{total_time_{gifts}_staged_{new}_new}}"

    return [
        headline(
            f"hourly run over {small:,} new charges (Stripe emulator → raw → staging)",
            f"{total(none, small)} s with nothing staged, {total(staged, small)} s with {staged:,} gifts"
            f" already staged; {large:,} new: {total(none, large)} s / {total(staged, large)} s (time"
            " follows what arrived)",
        )
    ]


def main() -> int:
    """Run every (staged, new) case and write bench/results/incremental_run.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="gifts already staged in the large case")
    parser.add_argument("--repeat", type=int, default=3, help="hourly runs per case (the median is reported)")
    add_common_arguments(parser)
    args = parser.parse_args()

    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade
    from sandbox.common.tls import ensure_tls
    from sandbox.registry import build_sandbox

    data = sample_dir(8_000, 5)
    now = datetime.now(UTC)
    tls_dir = Path(tempfile.mkdtemp(prefix="bench-incremental-tls-"))
    ca = str(ensure_tls(tls_dir).ca_cert)
    box = build_sandbox(["stripe"], tls_dir=tls_dir, fixed_ports=False).start()
    timings: dict[tuple[int, int], dict[str, float]] = {}
    try:
        for staged in (0, args.size):
            for count in NEW_CHARGES:
                url = bench_url("donor_sync_bench_incremental")
                drop_database(url)
                ensure_database(url)
                upgrade(url)
                with connect(url) as conn:
                    stage_existing(conn, staged)
                runs_of_case = [
                    hourly_run(
                        url, box["stripe"], ca, new_charges(data, count, now, r), now, f"bench-{count}-{r}"
                    )
                    for r in range(args.repeat)
                ]
                timings[(staged, count)] = {
                    part: statistics.median(t[part] for t in runs_of_case)
                    for part in ("extract", "standardize", "total")
                }
                print(f"{staged:>9,} staged, {count:>6,} new: {timings[(staged, count)]}")
    finally:
        box.stop()
    small, large = NEW_CHARGES
    base = timings[(0, small)]["standardize"]
    metrics = [
        metric(f"{part}_time_{staged}_staged_{count}_new", round(t[part], 3), "s")
        for (staged, count), t in sorted(timings.items())
        for part in ("extract", "standardize", "total")
    ]
    metrics += [
        metric(
            "standardize_ratio_staged",
            round(timings[(args.size, small)]["standardize"] / base, 2),
            "ratio",
            note=f"{small:,} new: with {args.size:,} gifts staged / with none (flat: ~1)",
        ),
        metric(
            "standardize_ratio_new",
            round(timings[(0, large)]["standardize"] / base, 2),
            "ratio",
            note=f"none staged: {large:,} new / {small:,} new (follows what arrived: up to {large // small})",
        ),
        metric(
            "standardize_ratio_staged_large",
            round(timings[(args.size, large)]["standardize"] / timings[(0, large)]["standardize"], 2),
            "ratio",
            note=f"{large:,} new: with {args.size:,} gifts staged / with none",
        ),
    ]
    parameters = {
        "size": args.size,
        "staged_gifts": [0, args.size],
        "new_charges": list(NEW_CHARGES),
        "repeat": args.repeat,
        "statistic": "median of the repeated hourly runs",
        "source": "stripe emulator, charges",
    }
    path = write_result(
        "incremental_run",
        parameters,
        metrics,
        headlines=headlines(parameters),
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
