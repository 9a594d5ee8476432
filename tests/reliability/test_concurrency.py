"""Concurrency: runs that overlap never double-push, double-land or double-decide (issue 10).

What stops two runs of one DAG is Airflow: every DAG that writes shared state has
``max_active_runs=1`` (a manual run waits for the scheduled one). What stops two *different* runs
(donations_hourly and dlq_replay or privacy_requests pushing one destination, a CLI ``outbox
push`` during a run) is the library, tested here with real threads on separate connections against
the emulators and a real Postgres:

* queue runs of one destination are serialized by an advisory lock, and classify against what is
  pending or in flight, so two queue runs at once write one outbox row per record;
* pushes claim rows with ``FOR UPDATE SKIP LOCKED`` under a lease, so two pushes at once send each
  record once (the emulators hold each record once, push_log has one attempt per row);
* a run that queues while another is pushing queues nothing already in flight;
* two extractions of one source at once land each record once, and two standardize runs of the
  same batches leave one disposition per record.

Already covered elsewhere: two push worker processes at once and workers killed mid-push
(test_push_crash.py), two CSV loaders (tests/sources/test_csv_drop.py), concurrent webhook drains
(tests/sources/test_webhook_inbox.py), two journey decisions (tests/journeys).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.delivery import run as delivery_run
from donor_sync.delivery.contracts import HUBSPOT, SALESFORCE, Connector
from donor_sync.delivery.push import PushSettings, push_destination
from donor_sync.delivery.push.settings import PushOptions
from donor_sync.sources.donorbox import DonorboxApi, extract_donorbox
from donor_sync.standardize.pipeline import standardize_batches
from donor_sync.standardize.reconcile import reconcile
from donor_sync.standardize.sample_landing import land_sample
from sandbox.common.runner import Sandbox
from sandbox.common.tls import TlsFiles
from tests.conftest import REPO_ROOT
from tests.reliability.conftest import NO_WAIT, iso
from tests.reliability.push_worker import build_connector
from tests.reliability.test_push_crash import Donors, Vendor, assert_landed_exactly_once, seed_core
from tests.standardize.test_pipeline_support import NOW, donation, rules, sample

#: Donors seeded for the push tests: several batches of gifts at each vendor, quick to push.
DONORS = 90
SETTINGS = PushSettings(push=PushOptions(lease_seconds=10, dependency_wait_seconds=1))
TIME_LIMIT_S = 90.0


# -- Airflow: one run of a DAG at a time -----------------------------------------------------------


def test_every_dag_runs_one_at_a_time() -> None:
    """A manual run during a scheduled one (or a backfill) waits: no two runs of a DAG overlap."""
    from airflow.models import DagBag

    dagbag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert dagbag.import_errors == {}
    assert {dag_id: dag.max_active_runs for dag_id, dag in dagbag.dags.items()} == dict.fromkeys(
        dagbag.dags, 1
    )


# -- queue and push: the library's guarantee across runs -------------------------------------------


@pytest.fixture(scope="module")
def crms(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox(SALESFORCE, HUBSPOT, hubspot={"rate_limit_max": 10_000})


@pytest.fixture
def vendor(crms: Sandbox, request: pytest.FixtureRequest) -> Iterator[Vendor]:
    """The destination's emulator, empty; HubSpot's id properties exist (see test_push_crash.py)."""
    destination = request.param
    crms[destination].emulator.reset()
    made = Vendor(crms[destination], destination, str(crms.tls.ca_cert))
    build_connector(destination, made.running.base_url, made.ca_bundle)
    yield made
    crms[destination].emulator.reset()


def _open_rows(conn: psycopg.Connection, destination: str) -> tuple[int, float | None]:
    row = conn.execute(
        "SELECT count(*), extract(epoch FROM min(next_attempt_at) - now())::float FROM sync.outbox"
        " WHERE destination = %s AND state IN ('pending', 'in_flight')",
        (destination,),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), row[1]


def push_until_done(conn: psycopg.Connection, connector: Connector, worker_id: str) -> Counter[str]:
    """Push, and again while rows are due soon (a dependency's wait), as the next runs would."""
    totals: Counter[str] = Counter()
    deadline = time.monotonic() + TIME_LIMIT_S
    while True:
        report = push_destination(conn, connector, worker_id=worker_id, settings=SETTINGS)
        totals.update(report.totals())
        left, due_in = _open_rows(conn, connector.destination)
        if left == 0 or time.monotonic() > deadline:
            return totals
        time.sleep(min(max(due_in or 0.0, 0.05), 1.0))


def run_at_once(*jobs: Callable[[], Any]) -> list[Any]:
    """Run ``jobs`` in threads released together; return their results (re-raising any failure)."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIME_LIMIT_S + 60)
    assert not any(t.is_alive() for t in threads), "a job did not finish"
    if errors:
        raise errors[0]
    return results


def queued_keys(conn: psycopg.Connection, destination: str) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for entity, key in conn.execute(
        "SELECT entity, record_key FROM sync.outbox WHERE destination = %s", (destination,)
    ).fetchall():
        keys.setdefault(str(entity), set()).add(str(key))
    conn.commit()
    return keys


@pytest.mark.parametrize("vendor", [SALESFORCE, HUBSPOT], indirect=True)
def test_two_queue_and_push_cycles_at_once_land_each_record_once(
    db: psycopg.Connection, db_url: str, vendor: Vendor
) -> None:
    donors: Donors = seed_core(db, DONORS)
    destination = vendor.destination
    connectors = [build_connector(destination, vendor.running.base_url, vendor.ca_bundle) for _ in range(2)]

    def cycle(n: int) -> tuple[int, Counter[str]]:
        with connect(db_url, application_name=f"cycle-{n}") as conn:
            queued = delivery_run.queue(conn, destination, run_id=None, actor=f"test:cycle-{n}").queued
            return queued, push_until_done(conn, connectors[n], f"cycle-{n}")

    (queued_1, pushed_1), (queued_2, pushed_2) = run_at_once(lambda: cycle(0), lambda: cycle(1))
    keys = queued_keys(db, destination)
    total = sum(len(k) for k in keys.values())
    # One queue run wrote the records, the other found them queued: one outbox row per record.
    assert sorted([queued_1, queued_2]) == [0, total]
    # Between them the two pushes sent each record once, and nothing failed.
    assert pushed_1["pushed"] + pushed_2["pushed"] == total
    assert pushed_1["failed"] + pushed_2["failed"] == 0
    with connect(db_url) as watch:
        assert_landed_exactly_once(watch, vendor, keys, donors)


def _in_flight(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM sync.outbox WHERE destination = %s AND state = 'in_flight'", (HUBSPOT,)
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("vendor", [HUBSPOT], indirect=True)
def test_a_run_that_queues_while_another_pushes_queues_nothing_in_flight_again(
    db: psycopg.Connection, db_url: str, vendor: Vendor
) -> None:
    donors = seed_core(db, DONORS)
    vendor.slow_writes(0.3)
    pusher = build_connector(HUBSPOT, vendor.running.base_url, vendor.ca_bundle)
    late = build_connector(HUBSPOT, vendor.running.base_url, vendor.ca_bundle)
    delivery_run.queue(db, HUBSPOT, run_id=None, actor="test:scheduled")
    keys = queued_keys(db, HUBSPOT)
    total = sum(len(k) for k in keys.values())
    done = threading.Event()
    result: dict[str, Any] = {}

    def scheduled() -> None:
        with connect(db_url, application_name="scheduled") as conn:
            result["pushed"] = push_until_done(conn, pusher, "scheduled")["pushed"]
        done.set()

    thread = threading.Thread(target=scheduled)
    thread.start()
    try:
        with connect(db_url, application_name="manual", autocommit=True) as watch:
            deadline = time.monotonic() + 30
            while _in_flight(watch) == 0:
                assert time.monotonic() < deadline, "the scheduled push never took a batch"
                time.sleep(0.01)
        # The manual run queues now: what is in flight or pending is not queued a second time.
        with connect(db_url, application_name="manual") as conn:
            report = delivery_run.queue(conn, HUBSPOT, run_id=None, actor="test:manual")
            assert (report.queued, report.unchanged) == (0, total)
            twice = conn.execute(
                "SELECT count(*) FROM (SELECT entity, record_key FROM sync.outbox WHERE destination = %s"
                " GROUP BY 1, 2 HAVING count(*) > 1) d",
                (HUBSPOT,),
            ).fetchone()
            assert twice == (0,)
            # ... and its push, overlapping the scheduled one, takes only what is still free.
            manual_pushed = push_until_done(conn, late, "manual")["pushed"]
    finally:
        thread.join(timeout=TIME_LIMIT_S + 60)
    assert done.is_set()
    vendor.clear_faults()
    assert result["pushed"] + manual_pushed == total
    with connect(db_url) as watch:
        assert_landed_exactly_once(watch, vendor, keys, donors)


# -- extraction and standardization at once --------------------------------------------------------


@pytest.fixture(scope="module")
def donorbox_box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox("donorbox")


def test_two_extractions_of_a_source_at_once_land_each_record_once(
    db: psycopg.Connection, db_url: str, donorbox_box: Sandbox, sandbox_tls: TlsFiles
) -> None:
    running = donorbox_box["donorbox"]
    running.emulator.reset()
    dated = iso(datetime.now(UTC) - timedelta(days=2))
    running.emulator.seed("donations", [donation(700_000 + i, donation_date=dated) for i in range(240)])

    def extract(n: int) -> tuple[int, int]:
        api = DonorboxApi(
            running.base_url, "api@sandbox.donor-sync.test", "sandbox-donorbox-key",
            verify=str(sandbox_tls.ca_cert), retry=NO_WAIT,
        )  # fmt: skip
        with connect(db_url, application_name=f"extract-{n}") as conn:
            (result,) = extract_donorbox(
                conn, api, run_id=None, initial_start=datetime.now(UTC) - timedelta(days=30)
            )
            return result.read, result.loaded

    results = run_at_once(lambda: extract(0), lambda: extract(1))
    assert [read for read, _ in results] == [240, 240]
    assert sum(loaded for _, loaded in results) == 240, "each record landed by one of the two"
    assert db.execute("SELECT count(*), count(DISTINCT source_id) FROM raw.records").fetchone() == (240, 240)


def test_two_standardize_runs_of_the_same_batches_leave_one_disposition_per_record(
    db: psycopg.Connection, db_url: str
) -> None:
    batches = sorted(land_sample(db, sample(donors=120, seed=10)).values())

    def standardize(n: int) -> int:
        with connect(db_url, application_name=f"standardize-{n}") as conn:
            result = standardize_batches(conn, batches, settings=rules(), now=NOW)
            return result.staged + result.quarantined + result.skipped

    totals = run_at_once(lambda: standardize(0), lambda: standardize(1))
    records = db.execute("SELECT count(*) FROM raw.all_records(%s::bigint[])", (batches,)).fetchone()
    assert records is not None
    assert totals == [records[0], records[0]]
    assert reconcile(db, batches) == []
    assert db.execute(
        "SELECT count(*), count(DISTINCT raw_record_id) FROM staging.dispositions"
    ).fetchone() == (records[0], records[0])
