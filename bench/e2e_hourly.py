"""Benchmark donations_hourly end to end: --size new gifts from every source into every destination.

The sample generator (``sandbox.datagen``) writes about ``--size`` gifts (and their donors, 2.4
gifts each), which reach the pipeline every way they do in production: the Stripe, Donorbox and
Classy emulators serve them through their APIs, the bank-cheque and event-platform CSV exports
sit in the drop folder, and the Stripe emulator delivers signed refund webhooks to the real
receiver. Every emulator -- sources, Salesforce, HubSpot, Mailchimp, Braze and the event
subscriber -- runs at its **default limits** (Stripe 25 reads/s, Classy 1,800 requests/min,
HubSpot 100 requests per 10 s, Braze's per-endpoint windows, Salesforce's daily allocation), in
this process, over HTTPS.

One run of donations_hourly is then timed the way ``make demo`` runs it: ``airflow dags test``
in its own interpreter (a throwaway Airflow home, SQLite metadata, tasks one after another), with
the connections pointed at the emulators. Reported: the wall time of that command, the peak
memory of the whole process tree (this process, which holds the emulators and everything they
store, plus the Airflow process; RSS and PSS sampled every 0.25 s), each task's time from
Airflow's metadata and each stage's figures from ``sync.run_metrics``, every vendor's calls, and
what landed where -- each destination's records against what the data says should be there
(every live donor and every gift in both CRMs; the consented donors in Mailchimp and Braze), each
held exactly once.

The same run is then repeated on a fresh database holding ``--core-donors`` golden donors already
(by default 100 per new gift: 1,000,000 at the default size): COPYed with their blocking keys
(``bench/match_one.py``'s seeding), a source id each and 1-3 gifts each (``core.donor_sources``,
``core.gifts``), dated two hours ago, with every destination's outbox watermarks and the journeys
watermark an hour ago -- as if the previous hourly run had synced them all. Not timed.

Compared: the vendor rate-limit ceiling -- for the calls the run made, the least time each
vendor's default limits allow (HubSpot: one window per 100 calls beyond the first; Stripe: one
second per 25 reads beyond the first; Classy likewise per minute; Braze per endpoint window;
Salesforce's daily allocation; Mailchimp and Donorbox limit concurrency, not rate) summed over
the vendors (dag.test runs one task at a time), against the run's wall time.

Run from the repository root: ``.venv/bin/python bench/e2e_hourly.py`` (``--size 10000``, and
``--core-donors`` 100 times the size: 1,000,000); ``--core-donors 0`` skips the second run.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    AutoVacuum,
    add_common_arguments,
    bench_url,
    check,
    comparison,
    headline,
    metric,
    write_result,
)

from tests.reliability import fault_support as fs

CI_SIZE = 300
#: Golden donors already in core for the second run, per new gift (unless --core-donors says).
CORE_PER_GIFT = 100
DB_NAME = "ds_bench_e2e_hourly"
#: Outbox watermark kinds (donor_sync.delivery.contracts.SOURCE_FIELDS) and the merges stream.
OUTBOX_STREAMS = ("outbox_donor", "outbox_household", "outbox_gift", "outbox_recurring_plan", "outbox_merges")
#: Methods HubSpot's and Salesforce's limits count, and those Stripe's read limit counts.
_READS = ("GET", "HEAD")


# -- memory of the process tree ---------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """Return ``pid`` and its descendants (from /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        todo.extend(int(child) for child in children.split())
    return found


def _kib(pid: int, path: str, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeMemory(threading.Thread):
    """Sample this process and its children every ``interval`` s: peak RSS and PSS of their sum.

    RSS summed over processes counts pages they share once per process (an upper bound); PSS
    splits shared pages between them (what the tree really holds).
    """

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.peak_processes = 0
        self.first_rss_kib: int | None = None
        self.done = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self.done.is_set():
            pids = _tree(os.getpid())
            rss = sum(_kib(p, "status", "VmRSS:") for p in pids)
            if self.first_rss_kib is None:
                self.first_rss_kib = rss
            self.peak_rss_kib = max(self.peak_rss_kib, rss)
            self.peak_pss_kib = max(self.peak_pss_kib, sum(_kib(p, "smaps_rollup", "Pss:") for p in pids))
            self.peak_processes = max(self.peak_processes, len(pids))
            self.done.wait(self.interval)

    def stop(self) -> dict[str, float]:
        """Stop sampling; return the peaks in GiB."""
        self.done.set()
        self.join()
        return {
            "rss_gib": round(self.peak_rss_kib / 1024 / 1024, 3),
            "pss_gib": round(self.peak_pss_kib / 1024 / 1024, 3),
            "processes": self.peak_processes,
            "rss_at_start_gib": round((self.first_rss_kib or 0) / 1024 / 1024, 3),
        }


# -- core donors already there ----------------------------------------------------------------------


def seed_core(conn: Any, donors: int, seed: int) -> dict[str, Any]:
    """Load ``donors`` golden donors (blocking keys too), a source id and 1-3 gifts each, dated two
    hours ago, and set every outbox watermark an hour ago; return the counts and timings."""
    import numpy as np
    import pyarrow as pa
    from aggregates import _copy
    from match_one import seed as seed_golden
    from match_one import synthesize as golden_records

    from donor_sync.resolve.donors import load_resolve_rules

    started = time.perf_counter()
    synced = datetime.now(UTC) - timedelta(hours=2)
    stamp = synced.isoformat()
    golden = golden_records(donors, seed).assign(created_at=stamp, updated_at=stamp)
    timings, ids = seed_golden(conn, golden, load_resolve_rules(), 200_000)

    def stamps(n: int) -> Any:
        return pa.array(
            np.full(n, np.datetime64(synced.replace(tzinfo=None), "us")), type=pa.timestamp("us", tz="UTC")
        )

    at = stamps(donors)
    index = np.arange(donors)
    _copy(
        conn,
        ("core", "donor_sources"),
        {
            "donor_id": ids,
            "system": np.full(donors, "stripe", dtype=object),
            "external_id": np.char.add("cus_core_", index.astype(str)).astype(object),
            "role": np.full(donors, "source", dtype=object),
            "id_kind": np.full(donors, "customer", dtype=object),
            "first_seen_at": at,
            "last_seen_at": at,
            "created_at": at,
            "updated_at": at,
        },
    )
    rng = np.random.default_rng(seed)
    per_donor = rng.integers(1, 4, donors)
    gifts = int(per_donor.sum())
    owner = np.repeat(index, per_donor)
    start = datetime(2019, 1, 1, tzinfo=UTC).timestamp()
    gift_s = (start + rng.random(gifts) * (synced.timestamp() - 86_400 - start)).astype("datetime64[s]")
    minor = rng.choice(np.array([500, 1000, 2500, 5000, 10000, 25000]), gifts).astype(np.int64)
    _copy(
        conn,
        ("core", "gifts"),
        {
            "gift_key": np.char.add("stripe:ch_core_", np.arange(gifts).astype(str)).astype(object),
            "donor_id": ids[owner],
            "source": np.full(gifts, "stripe", dtype=object),
            "amount": (minor / 100).astype(str).astype(object),
            "currency": np.full(gifts, "USD", dtype=object),
            "currency_exponent": np.full(gifts, 2, dtype=np.int16),
            "amount_minor": minor,
            "gift_at": pa.array(gift_s.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC")),
            "gift_date": gift_s.astype("datetime64[D]"),
            "status": np.full(gifts, "succeeded", dtype=object),
            "created_at": stamps(gifts),
            "updated_at": stamps(gifts),
        },
    )
    streams = [(d, s) for d in fs.DESTINATIONS for s in OUTBOX_STREAMS] + [("journeys", "gifts")]
    conn.execute(
        "INSERT INTO sync.watermarks (source, stream, cursor_ts)"
        " SELECT s, t, now() - interval '1 hour' FROM unnest(%s::text[], %s::text[]) AS x(s, t)",
        ([s for s, _ in streams], [t for _, t in streams]),
    )
    conn.execute("DROP TABLE IF EXISTS bench_order")  # match_one's probe order: not needed here
    conn.commit()
    conn.autocommit = True
    for table in ("core.donors", "core.donor_match_keys", "core.donor_sources", "core.gifts"):
        conn.execute(f"VACUUM ANALYZE {table}")
    conn.autocommit = False
    return {
        "donors": donors,
        "donor_sources": donors,
        "gifts": gifts,
        "seconds": round(time.perf_counter() - started, 1),
        **{k: v for k, v in timings.items() if k != "reused_seeded_database"},
    }


def _seed_in_child(url: str, donors: int, seed: int) -> dict[str, Any]:
    from donor_sync.db import connect

    with connect(url) as conn:
        return seed_core(conn, donors, seed)


# -- the vendors' limits ----------------------------------------------------------------------------


def _windows(calls: int, limit: int, window_s: float) -> float:
    """The least time ``calls`` take under ``limit`` calls per rolling ``window_s`` (first window free)."""
    return 0.0 if calls <= limit or limit <= 0 else (math.ceil(calls / limit) - 1) * window_s


_BRAZE_GROUPS = {
    "/users/track": "users_track",
    "/users/delete": "users_delete",
    "/users/export/ids": "users_export",
    "/subscription/status/set": "subscription",
    "/v2/subscription/status/set": "subscription",
    "/subscription/status/get": "subscription_get",
    "/canvas/trigger/send": "messaging",
    "/campaigns/trigger/send": "messaging",
}


def vendor_floor(box: Any) -> dict[str, dict[str, Any]]:
    """Return per vendor the calls the run made and the least time its default limits allow them."""
    out: dict[str, dict[str, Any]] = {}
    for name in fs.EMULATORS:
        emulator = box[name].emulator
        log = [r for r in emulator.request_log if not r["path"].startswith("/__admin")]
        settings = emulator.settings
        floor, basis = 0.0, "no rate limit (concurrency or none)"
        if name == "hubspot":
            floor = _windows(len(log), settings["rate_limit_max"], settings["rate_limit_interval_ms"] / 1000)
            basis = f"{settings['rate_limit_max']} calls per {settings['rate_limit_interval_ms']} ms"
        elif name == "stripe":
            reads = sum(1 for r in log if r["method"] in _READS)
            floor = _windows(reads, settings["read_requests_per_second"], settings["rate_limit_window_s"])
            basis = f"{settings['read_requests_per_second']} reads per {settings['rate_limit_window_s']} s"
        elif name in ("classy", "donorbox") and settings["requests_per_window"]:
            floor = _windows(len(log), settings["requests_per_window"], settings["rate_limit_window_s"])
            basis = f"{settings['requests_per_window']} calls per {settings['rate_limit_window_s']} s"
        elif name == "braze":
            groups = Counter(_BRAZE_GROUPS.get(r["path"], "") for r in log)
            limits = settings["rate_limits"]
            floor = max(
                (
                    _windows(n, limits[g]["limit"], limits[g]["window_s"])
                    for g, n in groups.items()
                    if g in limits
                ),
                default=0.0,
            )
            basis = "per endpoint: " + ", ".join(
                f"{g} {limits[g]['limit']}/{limits[g]['window_s']:g} s" for g in sorted(limits)
            )
        elif name == "salesforce":
            api = sum(1 for r in log if "/oauth2/" not in r["path"])
            floor = _windows(api, settings["daily_api_requests"], settings["api_window_s"])
            basis = f"{settings['daily_api_requests']} API calls per {settings['api_window_s']:g} s"
        out[name] = {
            "calls": len(log),
            "by_status": dict(sorted(Counter(str(r.get("status")) for r in log).items())),
            "floor_s": round(floor, 2),
            "limit": basis,
        }
    return out


# -- one run ----------------------------------------------------------------------------------------


@dataclass
class Case:
    """What one end-to-end run measured."""

    core_donors: int
    seconds: float
    exit_status: int
    memory: dict[str, float]
    tasks: dict[str, dict[str, Any]]
    summary: dict[str, Any]
    ledger: dict[str, dict[str, Any]]
    problems: list[str]
    coverage: dict[str, dict[str, int]]
    expected: dict[str, dict[str, int]]
    vendors: dict[str, dict[str, Any]]
    seeding: dict[str, Any] = field(default_factory=dict)
    autovacuum: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def floor_s(self) -> float:
        """The vendors' least times, summed (dag.test runs one task at a time)."""
        return round(sum(v["floor_s"] for v in self.vendors.values()), 2)

    @property
    def landed_as_expected(self) -> bool:
        """Every expected record landed or is a dead letter with its class, each held once, and the
        ledger found nothing wrong."""
        return not self.problems and all(
            e["landed"] + e["dead_letters"] == e["expected"]
            and e["held"] + e["one_record_per_email"] == e["landed"]
            for e in self.expected.values()
        )


def _expected(conn: Any, ledger: fs.Ledger, since: Any) -> dict[str, dict[str, int]]:
    """Each destination's donors and gifts: what the data says should be there against what landed.

    Both CRMs take every live donor and every gift the run created or changed (``since`` its
    start: donors already in core and untouched are not resent); Mailchimp and Braze take the
    donors the consent gate lets through, and the event subscriber an event per new gift (the
    outbox is their verdict; Braze events of donors who are no Braze users are skipped at queue
    time, and a record still waiting for a dependency is left out). Mailchimp keeps one member
    per email: donors sharing one are counted as ``one_record_per_email``, not held.
    """
    donors = conn.execute(
        "SELECT count(*) FROM core.donors WHERE merged_into IS NULL AND updated_at >= %s", (since,)
    ).fetchone()[0]
    gifts = conn.execute(
        "SELECT count(*) FROM core.gifts WHERE NOT is_test AND updated_at >= %s", (since,)
    ).fetchone()[0]
    conn.commit()
    out: dict[str, dict[str, int]] = {}
    for destination, entity in (*fs.DONOR_ENTITY.items(), *fs.GIFT_ENTITY.items()):
        e = ledger.entity(destination, entity)
        if destination in ("salesforce", "hubspot"):
            expected = donors if entity == fs.DONOR_ENTITY[destination] else gifts
        else:
            expected = e.records - len(e.waiting_dependency)
        out[f"{destination}.{entity}"] = {
            "expected": int(expected),
            "landed": len(e.landed),
            "dead_letters": len(e.dead),
            "held": len(e.held or []),
            "duplicates": e.duplicates,
            "one_record_per_email": len(e.one_record_per_email),
            "waiting_dependency": len(e.waiting_dependency),
        }
    return out


def run_case(options: Options, sample: Path, scratch: Path, core_donors: int) -> Case:
    """Run donations_hourly once on a fresh database (with ``core_donors`` already in core)."""
    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade

    url = bench_url(options.db_name)
    drop_database(url)
    ensure_database(url)
    upgrade(url)
    home = scratch / f"airflow-{core_donors}"
    box = fs.build_box(scratch / "tls")
    box.start()
    try:
        seeding: dict[str, Any] = {}
        if core_donors:
            print(f"seeding {core_donors:,} core donors", flush=True)
            # In a child process: the million-row frames must not count in the run's memory.
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                seeding = pool.submit(_seed_in_child, url, core_donors, options.seed).result()
            print(f"seeded {seeding}", flush=True)
        drop = scratch / f"drop-{core_donors}"
        inputs = fs.prepare_inputs(box, sample, drop, url)
        env = fs.airflow_env(home, fs.connections(box, url, drop), url)
        fs.migrate_airflow(env)
        with AutoVacuum(url) as vacuum:
            memory = TreeMemory()
            memory.start()
            seconds, status = fs.run_dag(env, home / "dags_test.log")
            peaks = memory.stop()
        print(
            f"{fs.DAG_ID} with {core_donors:,} core donors: {seconds:.1f} s, exit {status}, {peaks}",
            flush=True,
        )
        if status != 0:
            print((home / "dags_test.log").read_text()[-4000:], file=sys.stderr)
        with connect(url) as conn:
            ledger = fs.account(conn, box)
            summary = fs.run_summary(conn)
            since = summary.get("started_at")
            case = Case(
                core_donors=core_donors,
                seconds=round(seconds, 2),
                exit_status=status,
                memory=peaks,
                tasks=fs.task_times(home),
                summary={k: v for k, v in summary.items() if k != "started_at"},
                ledger=ledger.as_json(),
                problems=fs.problems(ledger),
                coverage=fs.coverage(conn, since),
                expected=_expected(conn, ledger, since),
                vendors=vendor_floor(box),
                seeding=seeding,
                autovacuum=vacuum.parameters(),
                inputs={
                    "loaded": inputs.loaded,
                    "csv_files": inputs.csv_files,
                    "webhooks": inputs.webhook_deliveries,
                },
            )
    finally:
        box.stop()
        if not options.keep_database:
            drop_database(url)
    return case


@dataclass(frozen=True)
class Options:
    """What to run."""

    size: int = 10_000
    core_donors: int = 1_000_000
    seed: int = 11
    db_name: str = DB_NAME
    keep_database: bool = False


@dataclass
class Outcome:
    """Parameters, metrics, comparisons and checks of the whole benchmark."""

    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    compared: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)

    def value(self, name: str) -> dict[str, Any]:
        """Return the metric called ``name``."""
        return next(m for m in self.metrics if m["name"] == name)


def _stage_times(case: Case) -> dict[str, float | None]:
    return {task: t["seconds"] for task, t in case.tasks.items()}


def _describe(outcome: Outcome, case: Case) -> None:
    suffix = f"_core_{case.core_donors}" if case.core_donors else ""
    words = f", {case.core_donors:,} donors already in core" if case.core_donors else ""
    figures = case.summary.get("figures", {})
    by_scope = case.summary.get("by_scope", {})
    outcome.metrics += [
        metric(
            f"wall_time{suffix}",
            case.seconds,
            "s",
            label=f"donations_hourly end to end{words}",
            exit_status=case.exit_status,
            run_status=case.summary.get("status"),
            run_seconds=case.summary.get("seconds"),
            stages=_stage_times(case),
            autovacuum=case.autovacuum,
            note="`airflow dags test` in its own interpreter, Airflow start-up and parsing included; "
            "run_seconds: sync.runs' own span (open_run to close_run)",
        ),
        metric(
            f"peak_rss_tree{suffix}",
            case.memory["rss_gib"],
            "GiB",
            pss_gib=case.memory["pss_gib"],
            processes=case.memory["processes"],
            rss_at_start_gib=case.memory["rss_at_start_gib"],
            note="this process (the emulators and all they hold) plus the Airflow process, sampled "
            "every 0.25 s; RSS summed (upper bound) and PSS; rss_at_start: this process when the run "
            "began (the emulators loaded with the sample)",
        ),
        metric(
            f"records{suffix}",
            int(figures.get("extract.read", 0) or 0),
            "records",
            read_by_source=by_scope.get("extract.read", {}),
            staged=figures.get("standardize.staged"),
            quarantined=figures.get("standardize.quarantined"),
            skipped=figures.get("standardize.skipped"),
            merged=figures.get("resolve.merged"),
            new_donors=figures.get("resolve.new_donors"),
            queued=by_scope.get("queue.records_queued", {}),
            pushed=by_scope.get("push.pushed", {}),
            dead_lettered=by_scope.get("push.dead_lettered", {}),
            note="sync.run_metrics of the run",
        ),
        metric(
            f"landed{suffix}",
            sum(e["landed"] for e in case.expected.values()),
            "records",
            by_destination=case.expected,
            ledger=case.ledger,
            coverage=case.coverage,
            problems=case.problems,
            note="donors and gifts per destination: expected from core (CRMs) or the consent gate's "
            "outbox (Mailchimp, Braze, events), landed per the outbox, held per the emulator",
        ),
        metric(
            f"vendor_calls{suffix}",
            sum(v["calls"] for v in case.vendors.values()),
            "requests",
            by_vendor=case.vendors,
        ),
    ]
    if case.seeding:
        outcome.metrics.append(
            metric(f"setup_core{suffix}", case.seeding["seconds"], "s", **case.seeding, note="not timed")
        )
    outcome.compared.append(
        comparison(
            "the vendors' default rate limits: the least time they allow the calls this run made" + words,
            label=f"rate-limit floor{words}",
            metric=f"wall_time{suffix}",
            ours=case.seconds,
            theirs=case.floor_s,
            unit="s",
            better="lower",
            ratio=round(case.seconds / case.floor_s, 2) if case.floor_s else None,
            by_vendor={k: v["floor_s"] for k, v in case.vendors.items()},
            share_of_wall_time=round(case.floor_s / case.seconds, 3) if case.seconds else None,
        )
    )
    outcome.checks += [
        check(f"run_succeeded{suffix}", case.exit_status == 0 and case.summary.get("status") == "success"),
        check(
            f"everything_landed_once{suffix}",
            case.landed_as_expected,
            problems=case.problems,
            short=[k for k, e in case.expected.items() if e["landed"] + e["dead_letters"] != e["expected"]],
        ),
    ]


def run(options: Options) -> Outcome:
    """Generate the sample, run the case without and (unless 0) with core donors; return the figures."""
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-hourly-") as tmp:
        scratch = Path(tmp)
        sample = scratch / "sample"
        counts = fs.generate_sample(sample, options.size, seed=options.seed)
        gifts = fs.sample_gifts(sample)
        outcome.parameters = {
            "size": options.size,
            "sample_gifts": gifts,
            "sample_donors": fs.donors_for(options.size),
            "sample_files": counts,
            "core_donors": [0, options.core_donors] if options.core_donors else [0],
            "seed": options.seed,
            "emulator_limits": "defaults",
            "how": "airflow dags test in its own interpreter (tasks one at a time), as make demo",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        for core in dict.fromkeys([0, options.core_donors]):
            case = run_case(options, sample, scratch, core)
            outcome.cases.append(case)
            _describe(outcome, case)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    outcome.metrics.append(
        metric("peak_rss_process", round(peak, 3), "GiB", note="this process alone (ru_maxrss)")
    )
    return outcome


def main() -> int:
    """Run the benchmark and write e2e_hourly.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, default=Options.size, help="new gifts in the sample (default 10,000)"
    )
    parser.add_argument(
        "--core-donors",
        type=int,
        default=None,
        help="golden donors already in core for the second run (default 100 x --size: 1,000,000 at the "
        "default size; 0: no second run)",
    )
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--db-name", default=DB_NAME, help="the benchmark's own database (dropped after)")
    add_common_arguments(parser)
    args = parser.parse_args()
    core_donors = CORE_PER_GIFT * args.size if args.core_donors is None else args.core_donors
    outcome = run(Options(size=args.size, core_donors=core_donors, seed=args.seed, db_name=args.db_name))
    core = f"_core_{core_donors}" if core_donors else ""
    headlines = [
        headline(
            "donations_hourly end to end, {p.sample_gifts:,} new gifts, every source to every destination",
            "{wall_time} s, peak {peak_rss_tree} GiB",
            ["wall_time", "peak_rss_tree", "everything_landed_once"],
        )
    ]
    if core:
        headlines.append(
            headline(
                f"... with {core_donors:,} donors already in core",
                f"{{wall_time{core}}} s, peak {{peak_rss_tree{core}}} GiB",
                [f"wall_time{core}", f"peak_rss_tree{core}", f"everything_landed_once{core}"],
            )
        )
    path = write_result(
        "e2e_hourly",
        outcome.parameters,
        outcome.metrics,
        outcome.compared,
        headlines=headlines,
        checks=outcome.checks,
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")
    return 0 if all(c["ok"] for c in outcome.checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
