"""Crash safety of the pipeline: SIGKILL in extract, standardize, resolve and queue, then re-run (issue 10).

Stage workers are separate processes (``pipeline_worker.py``) doing what one task of a
donations_hourly run does, against a real Postgres and the HTTPS emulators seeded with generated
sample data (Stripe, Donorbox, Classy; Salesforce and HubSpot as destinations). Each test kills
workers with SIGKILL at chosen points, then re-runs the stage as Airflow would (a retried task
in the same run, or the next run once the killed one failed) and the rest of the pipeline:

* extract: inside a page fetch (the emulator holds the list call), with the landing COPY open
  and a stream committed before it; and inside the landing transaction, after the COPY, held
  by a lock on ``raw.records``;
* standardize: between chunks (some committed), and inside a chunk's write, held by a lock;
* resolve: inside its one transaction, held by a lock on ``core.gifts``; then in the next run
  at a random instant;
* queue: inside its transaction, held by a lock on ``sync.outbox``;
* the whole pipeline: steps drawn at random (seeded), push and close among them, each killed
  at a random instant and followed by a retry or by a new run; more of them at a larger size in
  the slow variant.

After every scenario the database and the destinations must equal what one uninterrupted run
over the same data produces (the baseline), and: each record a source serves is in raw exactly
once per (source, entity, source id, version); each raw record has one disposition (staged,
quarantined or skipped), every batch reconciling; core holds each gift key and each source
record's donor once; each destination holds each gift and each donor once (upserts on
donor-sync's keys), nothing created then removed; watermarks stay where they were while a run
is killed, are moved only by a completed run, and name a record that landed in raw.

Pushes killed in flight and inside the result transaction are covered in test_push_crash.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.delivery.contracts import HUBSPOT, SALESFORCE
from donor_sync.observability import runs
from donor_sync.sources.stripe.settings import STREAMS as STRIPE_STREAMS
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox
from sandbox.datagen import GenerationConfig, generate
from sandbox.load import load_sources
from tests.reliability.conftest import account, fresh_database
from tests.reliability.pipeline_worker import Endpoints, Stage, prepare
from tests.reliability.push_worker import build_connector
from tests.reliability.test_push_crash import EXT, WRITES, Vendor

WORKER = Path(__file__).with_name("pipeline_worker.py")
SOURCES = ("stripe", "donorbox", "classy")
DESTINATIONS = (SALESFORCE, HUBSPOT)
#: A run's tasks in the order the DAG runs them (one at a time here: each is killed alone).
STEPS: tuple[tuple[str, str | None], ...] = (
    *(("extract", s) for s in SOURCES),
    ("standardize", None),
    ("resolve", None),
    *((stage, d) for d in DESTINATIONS for stage in ("queue", "push")),
    ("close", None),
)
#: Donors of the sample the quick tests run on (about 1,000 raw records from the three sources).
DONORS = 150
SAMPLE_SEED = 11
#: Donors of the slow variant's sample: 400 at CI size, 1,500 in ``make bench``.
SCALE_DONORS = 400 if os.environ.get("DONOR_SYNC_SCALE") == "ci" else 1_500
#: Seeds of the slow variant: one at CI size, more in ``make bench``.
SCALE_SEEDS = [1] if os.environ.get("DONOR_SYNC_SCALE") == "ci" else [1, 2, 3]
#: Raw records per standardize chunk in the workers: many chunks, each committed on its own.
CHUNK = 60
#: List endpoints the extractors page through, per source.
PAGES = {
    "stripe": "^/v1/{stream}$",
    "donorbox": "^/api/v1/donations$",
    "classy": r"^/2\.0/organizations/\d+/transactions$",
}
#: The longest a random kill waits after releasing a worker, per stage: about what the stage takes
#: on a busy 2-core machine, so some kills land inside it and some after it (when the task did its
#: work but Airflow never heard: it is retried all the same).
KILL_WINDOW_S = {"extract": 1.5, "standardize": 5.0, "resolve": 2.5, "queue": 0.8, "push": 2.5, "close": 0.3}
WAIT_TIMEOUT_S = 60.0
#: The standardize writer's own session (``donor_sync.standardize.pipeline._sibling``).
WRITER = "donor-sync standardize writer"
DAG_ID = "donations_hourly"


# -- the world: sample data in the source emulators, and the baseline ------------------------------


@dataclass
class World:
    """Emulators seeded with one sample, what the sources serve, and an uninterrupted run's result."""

    box: Sandbox
    endpoints: Endpoints
    #: records each source serves (the emulators' stores, as loaded)
    served: dict[str, int]
    #: records each Stripe stream serves
    stripe_streams: dict[str, int]
    baseline: dict[str, Any] = field(default_factory=dict)

    def vendors(self) -> dict[str, Vendor]:
        """Both destinations empty, without faults (HubSpot with donor-sync's id properties)."""
        for name in (*SOURCES, *DESTINATIONS):
            self.box[name].emulator.faults.clear()
        for name in DESTINATIONS:
            self.box[name].emulator.reset()
        made = {d: Vendor(self.box[d], d, self.endpoints.ca_bundle) for d in DESTINATIONS}
        build_connector(HUBSPOT, made[HUBSPOT].running.base_url, made[HUBSPOT].ca_bundle)
        return made

    def slow_pages(
        self, delay_s: float, *, source: str | None = None, stream: str = ".*", count: int | None = None
    ) -> None:
        """Hold the list calls of ``source`` (every source when None) for ``delay_s``."""
        for name in (source,) if source else SOURCES:
            path = PAGES[name].format(stream=stream)
            self.box[name].emulator.faults.set(
                [FaultRule(kind="slow", path=path, delay_s=delay_s, count=count)]
            )

    def page_calls_held(self, source: str) -> int:
        """How many list calls of ``source`` the slow fault has held so far."""
        return sum(int(rule["fired"]) for rule in self.box[source].emulator.faults.describe())


def make_world(start_sandbox: Callable[..., Sandbox], out: Path, donors: int) -> World:
    generate(GenerationConfig(donors=donors, out=out, seed=SAMPLE_SEED, workers=1, bad_share=0.05))
    box = start_sandbox(
        *SOURCES,
        *DESTINATIONS,
        stripe={"read_requests_per_second": 10_000},
        hubspot={"rate_limit_max": 10_000},
    )
    loaded = load_sources(box, out)
    served = {s: sum(n for key, n in loaded.items() if key.startswith(f"{s}.")) for s in SOURCES}
    streams = {key.split(".", 1)[1]: n for key, n in loaded.items() if key.startswith("stripe.")}
    assert set(streams) == set(STRIPE_STREAMS)
    urls = {name: box[name].base_url for name in (*SOURCES, *DESTINATIONS)}
    return World(box, Endpoints(urls, str(box.tls.ca_cert)), served, streams)


def settle_baseline(world: World, server_url: str, template_url: str) -> None:
    """Run the pipeline once, uninterrupted, on a database of its own: what every crash must end as."""
    vendors = world.vendors()
    with fresh_database(server_url, template_url) as conn:
        pipeline = Pipeline(world, conn)
        pipeline.run_all(pipeline.open("baseline"))
        world.baseline = fingerprint(conn, vendors)
        assert_consistent(conn, world, vendors)
    world.vendors()


@pytest.fixture(scope="module")
def world(
    start_sandbox: Callable[..., Sandbox],
    tmp_path_factory: pytest.TempPathFactory,
    server_url: str,
    template_url: str,
) -> World:
    made = make_world(start_sandbox, tmp_path_factory.mktemp("crash-sample"), DONORS)
    settle_baseline(made, server_url, template_url)
    return made


@pytest.fixture
def vendors(world: World) -> Iterator[dict[str, Vendor]]:
    yield world.vendors()
    world.vendors()


# -- running stages: in this process (retries, next runs) and in workers (to be killed) -------------


class Pipeline:
    """The stages of runs, done in this process as a retried task or the next run does them."""

    def __init__(self, world: World, conn: psycopg.Connection) -> None:
        self.world = world
        self.conn = conn
        self._stages: dict[tuple[str, str | None], Stage] = {}

    def open(self, name: str) -> UUID:
        """Open a run of the DAG (as its open_run task)."""
        return runs.open_run(self.conn, dag_id=DAG_ID, airflow_run_id=name)

    def fail(self, name: str) -> None:
        """The run failed (its on_failure_callback): its retries are spent."""
        assert runs.fail_run(self.conn, dag_id=DAG_ID, airflow_run_id=name)

    def run(self, stage: str, target: str | None, run_id: UUID) -> dict[str, int]:
        """Do one step of the run (its client built once per test); return its counts."""
        key = (stage, target)
        if key not in self._stages:
            self._stages[key] = prepare(stage, target, endpoints=self.world.endpoints, worker_id="rerun")
        return self._stages[key](self.conn, run_id)

    def run_all(self, run_id: UUID, *, start: int = 0) -> dict[tuple[str, str | None], dict[str, int]]:
        """Do the run's steps from ``start`` to close; return each step's counts."""
        return {step: self.run(*step, run_id) for step in STEPS[start:]}


@dataclass
class StageWorker:
    """A stage worker process (``pipeline_worker.py``), started ahead and released with :meth:`go`."""

    worker_id: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @classmethod
    def start(
        cls, db_url: str, endpoints: Endpoints, stage: str, target: str | None, worker_id: str, tmp_path: Path
    ) -> StageWorker:
        stdout, stderr = tmp_path / f"{worker_id}.out", tmp_path / f"{worker_id}.err"
        args = [sys.executable, str(WORKER), db_url, stage, *([target] if target else [])]
        args += ["--worker-id", worker_id, "--ca-bundle", endpoints.ca_bundle, "--chunk-size", str(CHUNK)]
        args += [f"--endpoint={name}={url}" for name, url in endpoints.urls.items()]
        # requests would let these override the CA bundle the clients are given.
        env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env)
        return cls(worker_id, process, stdout, stderr)

    def go(self, run_id: UUID) -> None:
        """Wait until the worker is ready (started, client built, connected), then release it."""
        wait_for(lambda: self.stdout.read_text().startswith("ready"), self)
        assert self.process.stdin is not None
        self.process.stdin.write(f"go {run_id}\n".encode())
        self.process.stdin.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: nothing in the worker runs after it (no rollback, no finally block)."""
        assert self.alive(), f"{self.worker_id} ended before it could be killed:\n{self.log()}"
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL

    def finish(self, timeout: float = WAIT_TIMEOUT_S) -> dict[str, Any]:
        code = self.process.wait(timeout=timeout)
        assert code == 0, f"{self.worker_id} exited {code}:\n{self.log()}"
        report: dict[str, Any] = json.loads(self.stdout.read_text().strip().splitlines()[-1])
        return report

    def log(self) -> str:
        return self.stderr.read_text()[-4000:]


def wait_for(condition: Callable[[], bool], *workers: StageWorker, timeout: float = WAIT_TIMEOUT_S) -> None:
    """Poll ``condition`` until it holds; fail when it does not in time or a worker ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            assert worker.alive(), f"{worker.worker_id} ended first:\n{worker.log()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def stage_workers(db_url: str, tmp_path: Path, world: World) -> Iterator[Callable[..., StageWorker]]:
    """Start stage workers on a database against ``world``'s emulators; kill any left at the end."""
    started: list[StageWorker] = []

    def start(stage: str, target: str | None, worker_id: str) -> StageWorker:
        worker = StageWorker.start(db_url, world.endpoints, stage, target, worker_id, tmp_path)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            if worker.alive():
                worker.process.kill()
                worker.process.wait(timeout=10)
            if worker.process.stdin is not None and not worker.process.stdin.closed:
                worker.process.stdin.close()


@pytest.fixture
def spawn(db_url: str, tmp_path: Path, world: World) -> Iterator[Callable[..., StageWorker]]:
    """Start stage workers on this test's database; any still running at the end are killed."""
    with stage_workers(db_url, tmp_path, world) as start:
        yield start


@pytest.fixture
def watch(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection that watches the workers (autocommit: every read sees what is committed)."""
    with connect(db_url, autocommit=True) as conn:
        yield conn


# -- what the database shows of a worker -------------------------------------------------------------


def sessions(conn: psycopg.Connection, *names: str) -> list[tuple[str, str, str | None]]:
    """(state, query, wait event type) of the sessions named ``names`` on this database."""
    rows = conn.execute(
        "SELECT state, query, wait_event_type FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = ANY(%s)",
        (list(names),),
    ).fetchall()
    return [(str(s), str(q), w) for s, q, w in rows]


def waiting_on_lock(conn: psycopg.Connection, *names: str) -> str | None:
    """The statement a session named ``names`` is blocked in on a lock, if one is."""
    return next((q for _, q, wait in sessions(conn, *names) if wait == "Lock"), None)


def terminate(conn: psycopg.Connection, *names: str) -> None:
    """End the server sessions of a killed worker, as the server does once it sees the socket closed.

    A session blocked on a lock notices its client is gone only when the lock is granted;
    terminating it rolls its transaction back now.
    """
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = ANY(%s)",
        (list(names),),
    )
    wait_for(lambda: not sessions(conn, *names), timeout=10)


def kill(conn: psycopg.Connection, worker: StageWorker) -> None:
    worker.kill()
    terminate(conn, worker.worker_id, WRITER)


def count(conn: psycopg.Connection, query: str, *params: object) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def source_watermarks(conn: psycopg.Connection) -> dict[tuple[str, str], tuple[Any, Any]]:
    """(source, stream) -> (cursor time, cursor id) of the source streams a completed run has read."""
    rows = conn.execute(
        "SELECT source::text, stream, cursor_ts, cursor_id FROM sync.watermarks"
        " WHERE source::text = ANY(%s) AND cursor_ts IS NOT NULL",
        (list(SOURCES),),
    ).fetchall()
    return {(str(s), str(st)): (ts, cid) for s, st, ts, cid in rows}


def batches(conn: psycopg.Connection) -> list[tuple[str, str, str, int]]:
    """(source, stream, status, records loaded) of every batch, in order."""
    rows = conn.execute(
        "SELECT source::text, stream, status, records_loaded FROM raw.batches ORDER BY batch_id"
    ).fetchall()
    return [(str(s), str(st), str(status), int(n)) for s, st, status, n in rows]


def raw_per_source(conn: psycopg.Connection) -> Counter[str]:
    rows = conn.execute("SELECT source::text, count(*) FROM raw.records GROUP BY 1").fetchall()
    return Counter({str(s): int(n) for s, n in rows})


# -- what must hold once the pipeline finished -------------------------------------------------------


def fingerprint(conn: psycopg.Connection, vendors: dict[str, Vendor]) -> dict[str, Any]:
    """What the pipeline produced, in terms two databases fed the same data can compare.

    Generated ids (raw record ids, donor and household uuids) differ between databases: donors
    are named by the source records resolved to them, raw records by their source identity.
    """
    identity = {
        str(donor): tuple(keys or ())
        for donor, keys in conn.execute(
            "SELECT d.donor_id,"
            " array_agg(ds.system || ':' || ds.external_id ORDER BY ds.system, ds.external_id)"
            " FILTER (WHERE ds.role = 'source')"
            " FROM core.donors d LEFT JOIN core.donor_sources ds USING (donor_id)"
            " WHERE d.merged_into IS NULL GROUP BY d.donor_id"
        ).fetchall()
    }

    def rows(query: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(str(v) for v in row) for row in conn.execute(query).fetchall())

    out: dict[str, Any] = {
        "raw": rows("SELECT source, entity, source_id, encode(payload_sha256, 'hex') FROM raw.records"),
        "dispositions": rows(
            "SELECT r.source, r.entity, r.source_id, d.disposition, coalesce(d.reason, '')"
            " FROM staging.dispositions d JOIN raw.records r USING (raw_record_id)"
        ),
        "quarantine": rows(
            "SELECT source, entity, source_id,"
            " (SELECT string_agg(x ->> 'code', ',' ORDER BY x ->> 'code')"
            "  FROM jsonb_array_elements(reasons) x)"
            " FROM staging.quarantine WHERE released_at IS NULL"
        ),
        "staged_donors": rows("SELECT source, source_id, resolved_at IS NOT NULL FROM staging.donors"),
        "staged_gifts": rows(
            "SELECT source, entity, source_id, gift_key, resolved_at IS NOT NULL FROM staging.gifts"
        ),
        "donors": sorted(identity.values()),
        "gifts": sorted(
            (str(key), identity.get(str(donor), ("merged",)), str(amount), str(currency), str(status))
            for key, donor, amount, currency, status in conn.execute(
                "SELECT g.gift_key, coalesce(d.merged_into, g.donor_id), g.amount, g.currency, g.status"
                " FROM core.gifts g JOIN core.donors d USING (donor_id)"
            ).fetchall()
        ),
        "gift_sources": rows(
            "SELECT s.source, s.entity, s.source_id, g.gift_key"
            " FROM core.gift_sources s JOIN core.gifts g USING (gift_id)"
        ),
        # Rows per destination record kind (each record queued once) and how many were dead-lettered.
        # Which of two donors sharing an email HubSpot refuses (duplicate_rule) follows the push
        # order, that is generated ids: compared as "landed or dead-lettered", with the counts.
        "outbox": Counter(
            (str(d), str(e))
            for d, e in conn.execute("SELECT destination, entity FROM sync.outbox").fetchall()
        ),
        "outbox_dead": Counter(
            (str(d), str(e))
            for d, e in conn.execute(
                "SELECT destination, entity FROM sync.outbox WHERE state = 'dead'"
            ).fetchall()
        ),
        "dead_letters": Counter(
            (str(d), str(e), str(c))
            for d, e, c in conn.execute(
                "SELECT destination, entity, error_class FROM sync.dead_letters"
            ).fetchall()
        ),
        "watermarks": source_watermarks(conn),
    }
    refused = [
        (str(d), str(e), str(k))
        for d, e, k in conn.execute(
            "SELECT destination, entity, record_key FROM sync.outbox WHERE state = 'dead'"
        ).fetchall()
    ]
    for destination, vendor in vendors.items():
        held = vendor.keys()
        for entity, keys in held.items():
            # Donors (contacts) by who they are; gifts and plans by their stable keys; the rest counted.
            if entity == "contact":
                dead = [k for d, e, k in refused if (d, e) == (destination, entity)]
                out[f"{destination}.{entity}"] = sorted(identity.get(k, ("unknown", k)) for k in keys + dead)
                out[f"{destination}.{entity}.landed"] = len(keys)
            elif entity in ("opportunity", "deal", "recurring_donation"):
                out[f"{destination}.{entity}"] = sorted(keys)
            else:
                out[f"{destination}.{entity}"] = len(keys)
        out[f"{destination}.removed"] = vendor.removed()
        if destination == SALESFORCE:  # NPSP's open installments: a gift inserted beside one leaves two
            out[f"{destination}.open_installments"] = sum(
                1 for r in vendor.sf_rows()["opportunity"] if not r.get(EXT)
            )
    return out


def assert_consistent(conn: psycopg.Connection, world: World, vendors: dict[str, Vendor]) -> None:
    """The exactly-once rules, read from one database and its destinations (no baseline needed)."""
    # Raw: each record a source serves once (one version each: the sample does not change).
    per_source = conn.execute(
        "SELECT source::text, count(*), count(DISTINCT (entity, source_id)) FROM raw.records GROUP BY 1"
    ).fetchall()
    assert {str(s): (int(n), int(d)) for s, n, d in per_source} == {
        s: (n, n) for s, n in world.served.items()
    }, "each served record in raw exactly once"
    # Each landing counted once, by the batch that committed it; no record in an unfinished batch.
    assert count(conn, "SELECT coalesce(sum(records_loaded), 0) FROM raw.batches") == sum(
        world.served.values()
    )
    assert (
        count(
            conn,
            "SELECT count(*) FROM raw.records r JOIN raw.batches b USING (batch_id)"
            " WHERE b.status <> 'standardized'",
        )
        == 0
    )
    # Every raw record accounted for once: staged, quarantined or skipped, with a reason.
    standardized = [
        int(b)
        for (b,) in conn.execute("SELECT batch_id FROM raw.batches WHERE status = 'standardized'").fetchall()
    ]
    outcome = account(conn, standardized)
    assert outcome.records == sum(world.served.values())
    # Core: every staged row resolved, each gift key once, each source record with one donor.
    assert count(conn, "SELECT count(*) FROM staging.donors WHERE resolved_at IS NULL") == 0
    assert count(conn, "SELECT count(*) FROM staging.gifts WHERE resolved_at IS NULL") == 0
    assert count(conn, "SELECT count(*) - count(DISTINCT gift_key) FROM core.gifts") == 0
    assert count(conn, "SELECT count(DISTINCT gift_key) FROM staging.gifts") == count(
        conn, "SELECT count(*) FROM core.gifts"
    )
    # Destinations: each record once at the vendor, and the one destination_state records.
    for destination, vendor in vendors.items():
        state = {
            (str(e), str(k))
            for e, k in conn.execute(
                "SELECT entity, record_key FROM sync.destination_state WHERE destination = %s"
                " AND remote_id IS NOT NULL",
                (destination,),
            ).fetchall()
        }
        for entity, keys in vendor.keys().items():
            twice = [k for k, n in Counter(keys).items() if n > 1]
            assert twice == [], f"{destination} {entity}: {len(twice)} held twice"
            if entity in ("contact", "opportunity", "deal", "recurring_donation"):
                assert set(keys) == {k for e, k in state if e == entity}, f"{destination} {entity}"
        assert vendor.removed() == 0, f"{destination}: nothing was created and then removed"
    # Every outbox row of the destinations settled: landed, dead-lettered, or waiting on a record
    # that was dead-lettered (a HubSpot association to a refused contact); none left in flight.
    unsettled = conn.execute(
        "SELECT o.destination, o.entity, o.state, o.error_class, count(*) FROM sync.outbox o"
        " WHERE o.destination = ANY(%s) AND o.state NOT IN ('succeeded', 'dead')"
        " AND NOT (o.state = 'pending' AND EXISTS (SELECT 1 FROM jsonb_array_elements(o.depends_on) dep"
        "   JOIN sync.outbox p ON p.destination = o.destination AND p.entity = dep ->> 'entity'"
        "    AND p.record_key = dep ->> 'record_key' AND p.state = 'dead'))"
        " GROUP BY 1, 2, 3, 4",
        (list(vendors),),
    ).fetchall()
    assert unsettled == [], "outbox rows neither landed nor dead-lettered"
    # One successful attempt per outbox row: no record recorded as pushed twice.
    assert (
        count(
            conn,
            "SELECT count(*) - count(DISTINCT outbox_id) FROM sync.push_log WHERE outcome = 'succeeded'",
        )
        == 0
    )
    # Watermarks: moved by a run that completed, to a record that landed.
    marks = conn.execute(
        "SELECT w.source::text, w.stream, r.status,"
        " EXISTS (SELECT 1 FROM raw.records x WHERE x.source = w.source AND x.source_updated_at = w.cursor_ts"
        "         AND x.source_id = w.cursor_id)"
        " FROM sync.watermarks w LEFT JOIN sync.runs r USING (run_id) WHERE w.source::text = ANY(%s)",
        (list(SOURCES),),
    ).fetchall()
    assert marks, "the sources' watermarks moved"
    for source, stream, status, landed in marks:
        assert (status, landed) == ("success", True), (
            f"{source}/{stream}: moved by a {status} run, landed {landed}"
        )
    assert count(conn, "SELECT count(*) FROM sync.runs WHERE status = 'running'") == 0


def assert_matches_baseline(conn: psycopg.Connection, world: World, vendors: dict[str, Vendor]) -> None:
    """The crashed and re-run pipeline ended exactly as the uninterrupted one did."""
    assert_consistent(conn, world, vendors)
    found = fingerprint(conn, vendors)
    differing = sorted(k for k in world.baseline if found.get(k) != world.baseline[k])
    assert differing == [], {k: difference(found.get(k), world.baseline[k]) for k in differing}


def difference(found: Any, expected: Any) -> str:
    """What differs (source ids and counts only, never a payload)."""
    if isinstance(expected, Counter):
        keys = sorted(set(found) | set(expected))
        return str({k: (found[k], expected[k]) for k in keys if found[k] != expected[k]})
    if isinstance(expected, list):
        extra, missing = Counter(found) - Counter(expected), Counter(expected) - Counter(found)
        shown = {"extra": extra, "missing": missing}
        return ", ".join(f"{name} {sorted(c)[:3]} ({sum(c.values())})" for name, c in shown.items())
    return f"{found} != {expected}"


# -- tests ---------------------------------------------------------------------------------------------


def test_extract_killed_in_a_page_fetch_and_in_its_transaction_lands_each_version_once(
    db: psycopg.Connection,
    watch: psycopg.Connection,
    world: World,
    vendors: dict[str, Vendor],
    spawn: Callable[..., StageWorker],
) -> None:
    rng = random.Random(10)
    pipeline = Pipeline(world, db)
    in_page = {s: spawn("extract", s, f"extract-{s}-in-page") for s in SOURCES}
    landing = rng.choice(SOURCES)  # the landing code is shared: one source's worker is enough
    in_landing = spawn("extract", landing, f"extract-{landing}-in-landing")
    run = pipeline.open("run-1")

    # (a) Each source's worker is killed inside a page fetch, its landing COPY open. Stripe's is
    # inside a later stream: the streams before it were landed and committed as batches.
    slowed = rng.choice(STRIPE_STREAMS[1:])
    for source in SOURCES:
        world.slow_pages(10.0, source=source, stream=slowed, count=1)
    for worker in in_page.values():
        worker.go(run)
    for source, worker in in_page.items():

        def in_copy(source: str = source, worker: StageWorker = worker) -> bool:
            copying = any(
                (state, q[:4]) == ("active", "COPY") for state, q, _ in sessions(watch, worker.worker_id)
            )
            return world.page_calls_held(source) == 1 and copying

        wait_for(in_copy, worker)
        kill(watch, worker)
    before = STRIPE_STREAMS[: STRIPE_STREAMS.index(slowed)]
    assert raw_per_source(watch) == Counter({"stripe": sum(world.stripe_streams[s] for s in before)})
    assert sorted((src, st, status) for src, st, status, _ in batches(watch)) == sorted(
        [
            *(("stripe", s, "loaded") for s in before),
            ("stripe", slowed, "extracting"),  # left as it was when killed, with nothing landed
            ("donorbox", "donations", "extracting"),
            ("classy", "transactions", "extracting"),
        ]
    )
    assert source_watermarks(watch) == {}, "no watermark moved"

    # (b) The next worker is killed inside the landing transaction: the window read and copied,
    # the insert into raw.records held by a lock.
    for source in SOURCES:
        world.box[source].emulator.faults.clear()
    with connect(watch.info.dsn) as locker:
        locker.execute("LOCK TABLE raw.records IN EXCLUSIVE MODE")
        in_landing.go(run)
        wait_for(lambda: bool(waiting_on_lock(watch, in_landing.worker_id)), in_landing)
        blocked = str(waiting_on_lock(watch, in_landing.worker_id)).lstrip()
        assert blocked.startswith("INSERT INTO raw.records"), blocked[:40]
        kill(watch, in_landing)
        locker.rollback()
    assert raw_per_source(watch) == Counter({"stripe": sum(world.stripe_streams[s] for s in before)})
    assert source_watermarks(watch) == {}, "no watermark moved"

    # Airflow retries the extract tasks: each lands what the killed attempts did not commit.
    landed = raw_per_source(watch)
    counts = pipeline.run_all(run)
    assert {s: counts[("extract", s)]["loaded"] for s in SOURCES} == {
        s: n - landed[s] for s, n in world.served.items()
    }
    assert_matches_baseline(db, world, vendors)

    # The next run reads each window again (the overlap) and lands nothing twice, queues nothing,
    # and writes nothing to a destination; the watermarks stay where the completed run left them.
    marks = source_watermarks(watch)
    for vendor in vendors.values():
        vendor.emulator.request_log.clear()
    again = pipeline.run_all(pipeline.open("run-2"))
    assert all(again[("extract", s)]["read"] > 0 for s in SOURCES), "the overlap is read again"
    assert {s: again[("extract", s)]["loaded"] for s in SOURCES} == dict.fromkeys(SOURCES, 0)
    assert {d: again[("queue", d)]["queued"] for d in DESTINATIONS} == dict.fromkeys(DESTINATIONS, 0)
    for vendor in vendors.values():
        writes = [r for r in vendor.emulator.request_log if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]
        assert [r for r in writes if "/oauth2/" not in r["path"]] == [], vendor.destination
    assert source_watermarks(watch) == marks
    assert_matches_baseline(db, world, vendors)


def test_standardize_killed_between_chunks_and_inside_one_is_finished_by_the_next_run(
    db: psycopg.Connection,
    watch: psycopg.Connection,
    world: World,
    vendors: dict[str, Vendor],
    spawn: Callable[..., StageWorker],
) -> None:
    pipeline = Pipeline(world, db)
    between = spawn("standardize", None, "standardize-between-chunks")
    inside = spawn("standardize", None, "standardize-inside-a-chunk")
    run = pipeline.open("run-1")
    for source in SOURCES:
        pipeline.run("extract", source, run)
    records = sum(world.served.values())

    # (a) Killed as soon as a chunk of staged records was committed: the rest never written.
    between.go(run)
    staged = "SELECT count(*) FROM staging.dispositions WHERE disposition = 'staged'"
    wait_for(lambda: count(watch, staged) > 0, between)
    kill(watch, between)
    assert 0 < count(watch, "SELECT count(*) FROM staging.dispositions") < records
    assert {status for _, _, status, _ in batches(watch)} == {"loaded"}, "no batch marked standardized"

    # (b) Killed inside a chunk's write transaction (its gifts held by a lock), chunks before it
    # committed again.
    with connect(watch.info.dsn) as locker:
        locker.execute("LOCK TABLE staging.gifts IN EXCLUSIVE MODE")
        inside.go(run)
        wait_for(lambda: bool(waiting_on_lock(watch, inside.worker_id, WRITER)), inside)
        kill(watch, inside)
        locker.rollback()
    assert {status for _, _, status, _ in batches(watch)} == {"loaded"}
    assert count(watch, "SELECT count(*) FROM core.gifts") == 0
    assert source_watermarks(watch) == {}, "no watermark moved"

    # The run failed; the next run standardizes the batches it left loaded and goes on to the end.
    pipeline.fail("run-1")
    pipeline.run_all(pipeline.open("run-2"))
    assert_matches_baseline(db, world, vendors)


def test_resolve_killed_in_its_transaction_is_finished_by_a_retry_of_the_next_run(
    db: psycopg.Connection,
    watch: psycopg.Connection,
    world: World,
    vendors: dict[str, Vendor],
    spawn: Callable[..., StageWorker],
) -> None:
    rng = random.Random(11)
    pipeline = Pipeline(world, db)
    held = spawn("resolve", None, "resolve-held")
    later = spawn("resolve", None, "resolve-next-run")
    run = pipeline.open("run-1")
    for step in STEPS[: STEPS.index(("resolve", None))]:
        pipeline.run(*step, run)
    staged_donors = count(watch, "SELECT count(*) FROM staging.donors")

    # (a) Killed inside its one transaction: donors matched, the gifts' upsert held by a lock.
    with connect(watch.info.dsn) as locker:
        locker.execute("LOCK TABLE core.gifts IN EXCLUSIVE MODE")
        held.go(run)
        wait_for(lambda: bool(waiting_on_lock(watch, held.worker_id)), held)
        kill(watch, held)
        locker.rollback()
    assert count(watch, "SELECT count(*) FROM core.donors") == 0, "nothing of the killed resolve stays"
    assert count(watch, "SELECT count(*) FROM staging.donors WHERE resolved_at IS NULL") == staged_donors

    # The run failed after standardize. The next run lands nothing new, so its own batches are
    # empty: its resolve must still take up the staged records the failed run left unresolved.
    pipeline.fail("run-1")
    run = pipeline.open("run-2")
    for step in STEPS[: STEPS.index(("resolve", None))]:
        pipeline.run(*step, run)
    # (b) Its resolve is killed at a random instant, then retried.
    later.go(run)
    time.sleep(rng.uniform(0.2, KILL_WINDOW_S["resolve"]))
    if later.alive():
        kill(watch, later)
    else:
        later.finish()
    pipeline.run_all(run, start=STEPS.index(("resolve", None)))
    assert_matches_baseline(db, world, vendors)


def test_queue_killed_in_its_transaction_queues_each_record_once_on_the_retry(
    db: psycopg.Connection,
    watch: psycopg.Connection,
    world: World,
    vendors: dict[str, Vendor],
    spawn: Callable[..., StageWorker],
) -> None:
    pipeline = Pipeline(world, db)
    workers = {d: spawn("queue", d, f"queue-{d}") for d in DESTINATIONS}
    run = pipeline.open("run-1")
    for step in STEPS[: STEPS.index(("queue", SALESFORCE))]:
        pipeline.run(*step, run)
    with connect(watch.info.dsn) as locker:
        locker.execute("LOCK TABLE sync.outbox IN EXCLUSIVE MODE")
        for worker in workers.values():
            worker.go(run)
        for worker in workers.values():
            wait_for(lambda w=worker: bool(waiting_on_lock(watch, w.worker_id)), worker)
            kill(watch, worker)
        locker.rollback()
    assert (
        count(watch, "SELECT count(*) FROM sync.outbox WHERE destination = ANY(%s)", list(DESTINATIONS)) == 0
    )
    # The queue's change cursors move with the outbox rows they queued, or not at all.
    assert (
        count(watch, "SELECT count(*) FROM sync.watermarks WHERE source = ANY(%s)", list(DESTINATIONS)) == 0
    )
    pipeline.run_all(run, start=STEPS.index(("queue", SALESFORCE)))
    assert_matches_baseline(db, world, vendors)


# -- the whole pipeline, killed at random points ------------------------------------------------------


def crash_pipeline(
    pipeline: Pipeline,
    watch: psycopg.Connection,
    spawn: Callable[..., StageWorker],
    rng: random.Random,
    *,
    kill_share: float,
    new_run_share: float,
) -> list[str]:
    """Run the DAG to a successful end, each step's first attempt killed with ``kill_share``.

    A killed step is retried in its run, or (``new_run_share``) the run fails and a new run starts
    from the top; a killed ``close`` is always retried (Airflow retries it; it is idempotent).
    While a run is open the source watermarks stay where the last completed run left them.
    Returns what happened, for failure messages.
    """
    plan = [i for i in range(len(STEPS)) if rng.random() < kill_share]
    workers = {i: spawn(*STEPS[i], f"{STEPS[i][0]}-{STEPS[i][1] or 'all'}-{i}") for i in plan}
    story: list[str] = []
    number = 1
    run = pipeline.open(f"run-{number}")
    marks = source_watermarks(watch)
    i = 0
    while i < len(STEPS):
        stage, target = STEPS[i]
        worker = workers.pop(i, None)
        if worker is not None:
            worker.go(run)
            time.sleep(rng.uniform(0.0, KILL_WINDOW_S[stage]))
            if worker.alive():
                kill(watch, worker)
                story.append(f"run {number}: {stage} {target or ''} killed")
            else:
                worker.finish()
                story.append(f"run {number}: {stage} {target or ''} done before the kill")
            if stage != "close":
                assert source_watermarks(watch) == marks, f"a killed run moved a watermark: {story}"
                if rng.random() < new_run_share:
                    pipeline.fail(f"run-{number}")
                    number += 1
                    run = pipeline.open(f"run-{number}")
                    story.append(f"run {number} opened")
                    i = 0
                    continue
        pipeline.run(stage, target, run)
        i += 1
    return story


def test_the_pipeline_killed_at_random_points_ends_as_an_uninterrupted_run(
    db: psycopg.Connection,
    watch: psycopg.Connection,
    world: World,
    vendors: dict[str, Vendor],
    spawn: Callable[..., StageWorker],
) -> None:
    world.slow_pages(0.1)  # every page fetch, so kills land inside extraction too
    for vendor in vendors.values():
        vendor.emulator.faults.set([FaultRule(kind="slow", path=WRITES[vendor.destination], delay_s=0.2)])
    story = crash_pipeline(
        Pipeline(world, db),
        watch,
        spawn,
        random.Random(13),
        kill_share=0.5,
        new_run_share=0.4,
    )
    assert any("killed" in line for line in story), story
    assert_matches_baseline(db, world, vendors)


@pytest.fixture(scope="module")
def big_world(
    start_sandbox: Callable[..., Sandbox],
    tmp_path_factory: pytest.TempPathFactory,
    server_url: str,
    template_url: str,
) -> Iterator[World]:
    made = make_world(start_sandbox, tmp_path_factory.mktemp("crash-sample-big"), SCALE_DONORS)
    settle_baseline(made, server_url, template_url)
    yield made
    made.box.stop()


@pytest.mark.slow
@pytest.mark.parametrize("seed", SCALE_SEEDS)
def test_the_pipeline_killed_at_most_steps_ends_as_an_uninterrupted_run_at_scale(
    seed: int, db: psycopg.Connection, db_url: str, tmp_path: Path, big_world: World
) -> None:
    """Most steps killed at a random instant (seeded), retried or followed by a new run, at scale."""
    vendors = big_world.vendors()
    big_world.slow_pages(0.05)
    with connect(db_url, autocommit=True) as watch, stage_workers(db_url, tmp_path, big_world) as spawn:
        story = crash_pipeline(
            Pipeline(big_world, db), watch, spawn, random.Random(seed), kill_share=0.8, new_run_share=0.3
        )
    assert sum("killed" in line for line in story) >= 3, story
    assert_matches_baseline(db, big_world, vendors)
    big_world.vendors()
