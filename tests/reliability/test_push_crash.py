"""Crash safety of the push against the real emulators: SIGKILL mid-push, then re-run (issues 6, 10).

Push workers are separate processes (``push_worker.py``) talking HTTPS to the Salesforce and
HubSpot emulators and to a real Postgres. They are killed with SIGKILL at two points of a batch:

* (a) while the vendor call is in flight (the emulators hold write calls for ``SLOW_S``);
* (b) after the vendor answered, inside the transaction that writes the results: the test holds
  a lock on ``sync.push_log``, so the worker blocks there with the batch landed at the vendor
  and nothing recorded, and is killed while it waits.

A re-run started at once must leave the killed workers' records alone while their leases hold,
then reclaim them and land every record exactly once: none lost, none created twice (both
destinations upsert on donor-sync's keys, so a re-sent batch updates in place), every outbox row
succeeded with one successful attempt, the remote id of every record known, and a recurring
gift matched to its NPSP installment rather than inserted beside it. Two workers pushing one
destination at the same time must send each record once.

Both destinations are driven side by side, as the DAG pushes them, so the lease is waited out
once. The slow variant kills workers at random points, repeatedly, at a larger size; then two
workers at once finish the job.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.delivery import run as delivery_run
from donor_sync.delivery.contracts import HUBSPOT, SALESFORCE
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Running, Sandbox
from tests.delivery.outbox.support import add_donor, add_gift, add_household, add_plan
from tests.reliability.push_worker import build_connector

WORKER = Path(__file__).with_name("push_worker.py")
DESTINATIONS = (SALESFORCE, HUBSPOT)
#: Donors of the quick tests: their gifts fill several batches at each vendor (200 and 100).
DONORS = 300
#: How long the emulators hold each write call: long enough to kill a worker inside one.
SLOW_S = 0.6
#: The shortest lease the push settings accept; a killed worker's records wait this long.
LEASE_S = 10
WAIT_TIMEOUT_S = 60.0
#: The slow variant's size: above Salesforce's Bulk API threshold (2,000 due records) for gifts.
SCALE_DONORS = 1_200 if os.environ.get("DONOR_SYNC_SCALE") == "ci" else 3_000


# -- core data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Donors:
    """What was put in core."""

    households: list[str]
    donors: dict[str, str | None]  # donor id -> household id
    gifts: dict[str, str]  # gift key -> donor id
    plans: dict[str, str]  # plan key -> donor id
    recurring_gifts: dict[str, str]  # gift key -> plan key


def seed_core(db: psycopg.Connection, count: int, *, seed: int = 6) -> Donors:
    """Insert ``count`` donors: a third in two-person households, one in ten giving monthly.

    Every donor has one to three gifts. A monthly donor also has the plan's first payment, due
    on the day NPSP schedules the plan's first installment: the Salesforce connector must claim
    that installment for it, never insert the gift beside it.
    """
    rng = random.Random(seed)
    donors: dict[str, str | None] = {}
    households: list[str] = []
    gifts: dict[str, str] = {}
    plans: dict[str, str] = {}
    recurring: dict[str, str] = {}
    for i in range(count):
        donors[add_donor(db, "Donor", f"Number{i:05d}", email=f"donor{i:05d}@example.org")] = None
    ids = list(donors)
    for i in range(0, count // 3 // 2 * 2, 2):
        pair = ids[i : i + 2]
        household = add_household(db, f"Household {i // 2}", [(pair[0], "primary"), (pair[1], "member")])
        households.append(household)
        donors.update(dict.fromkeys(pair, household))
    for i, donor_id in enumerate(ids):
        for g in range(rng.randint(1, 3)):
            key = add_gift(db, donor_id, f"stripe:ch_{i:05d}_{g}", amount=f"{rng.randint(5, 500)}.00")
            gifts[key] = donor_id
        if i % 10 == 5:
            plan = add_plan(db, donor_id, f"stripe:sub_{i:05d}")
            plans[plan] = donor_id
            row = db.execute(
                "SELECT recurring_plan_id FROM core.recurring_plans WHERE plan_key = %s", (plan,)
            ).fetchone()
            assert row is not None
            key = add_gift(
                db, donor_id, f"stripe:ch_{i:05d}_monthly", amount="10.00", recurring_plan_id=row[0],
                installment_number=1,
            )  # fmt: skip
            gifts[key] = donor_id
            recurring[key] = plan
    db.commit()
    return Donors(households, donors, gifts, plans, recurring)


def queue(db: psycopg.Connection, destination: str) -> dict[str, set[str]]:
    """Queue ``destination``'s records as a run does; return the queued record keys per entity."""
    delivery_run.queue(db, destination, run_id=None, actor="test")
    queued: dict[str, set[str]] = {}
    for entity, key in db.execute(
        "SELECT entity, record_key FROM sync.outbox WHERE destination = %s AND state = 'pending'",
        (destination,),
    ).fetchall():
        queued.setdefault(str(entity), set()).add(str(key))
    db.commit()
    return queued


# -- the vendors, as the emulators hold them -------------------------------------------------------

EXT = "Donor_Sync_Id__c"
#: Salesforce entity -> sObject (households are Accounts; opportunities include installments).
SF_OBJECTS = {
    "household_account": "Account",
    "contact": "Contact",
    "recurring_donation": "npe03__Recurring_Donation__c",
    "opportunity": "Opportunity",
}
#: HubSpot entity -> (object type, the unique property holding the record key).
HS_OBJECTS = {"contact": ("contacts", "donor_sync_id"), "deal": ("deals", "donor_sync_gift_key")}
HS_DEALS, HS_CONTACTS = "0-3", "0-1"
#: The entity each destination holds gifts in: where a crash could lose or double-count money.
GIFTS = {SALESFORCE: "opportunity", HUBSPOT: "deal"}
#: Write endpoints (reads are not slowed): Collections and Bulk ingest; HubSpot batch writes.
WRITES = {SALESFORCE: r"/composite/sobjects|/jobs/ingest", HUBSPOT: r"/batch/(upsert|create|update)$"}


@dataclass
class Vendor:
    """One emulator as the test sees it: slow writes, calls in flight, the records it holds."""

    running: Running
    destination: str
    ca_bundle: str

    @property
    def emulator(self) -> Any:
        return self.running.emulator

    def slow_writes(self, delay_s: float) -> None:
        self.emulator.faults.set([FaultRule(kind="slow", path=WRITES[self.destination], delay_s=delay_s)])

    def clear_faults(self) -> None:
        self.emulator.faults.clear()

    def writes_in_flight(self) -> int:
        """Write calls received and not answered yet (faults fire on arrival, the log on answer)."""
        fired = sum(int(rule["fired"]) for rule in self.emulator.faults.describe())
        pattern = re.compile(WRITES[self.destination])
        answered = sum(1 for entry in list(self.emulator.request_log) if pattern.search(entry["path"]))
        return fired - answered

    def keys(self) -> dict[str, list[str]]:
        """Record keys of the live records per entity (a key listed twice is a duplicate)."""
        return {entity: [key for key, _ in pairs] for entity, pairs in self._keyed().items()}

    def remote_ids(self) -> dict[tuple[str, str], str]:
        """(entity, record key) -> the vendor's id of the record."""
        return {(entity, key): rid for entity, pairs in self._keyed().items() for key, rid in pairs}

    def _keyed(self) -> dict[str, list[tuple[str, str]]]:
        if self.destination == SALESFORCE:
            return {
                entity: [(str(r[EXT]), str(r["Id"])) for r in rows if r.get(EXT)]
                for entity, rows in self.sf_rows().items()
            }
        store = self.emulator.store
        with self.emulator.lock:
            return {
                entity: [
                    (str(r.properties.get(prop)), str(r.id))
                    for r in store.of(store.resolve(kind)).values()
                    if not r.archived
                ]
                for entity, (kind, prop) in HS_OBJECTS.items()
            }

    def sf_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Salesforce: the live records of each entity's sObject."""
        tables = self.emulator.store.tables
        with self.emulator.lock:
            return {entity: [dict(r) for r in tables[name].values()] for entity, name in SF_OBJECTS.items()}

    def removed(self) -> int:
        """Records deleted (Salesforce recycle bin) or archived (HubSpot): created, then gone."""
        store = self.emulator.store
        with self.emulator.lock:
            if self.destination == SALESFORCE:
                return sum(len(store.recycle_bin[name]) for name in set(SF_OBJECTS.values()))
            return sum(
                1
                for kind, _ in HS_OBJECTS.values()
                for r in store.of(store.resolve(kind)).values()
                if r.archived
            )

    def hs_deal_contacts(self) -> dict[str, set[str]]:
        """HubSpot: deal id -> ids of the contacts it is associated with."""
        with self.emulator.lock:
            return {
                left_id: set(targets)
                for (left, left_id, right), targets in self.emulator.associations.links.items()
                if left == HS_DEALS and right == HS_CONTACTS and targets
            }


@pytest.fixture(scope="module")
def box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    # HubSpot's default 100 calls per 10 s would pace the workers; pacing is not what is tested.
    return start_sandbox(SALESFORCE, HUBSPOT, hubspot={"rate_limit_max": 10_000})


@pytest.fixture
def vendors(box: Sandbox) -> Iterator[dict[str, Vendor]]:
    """Both emulators, empty, with no faults; the HubSpot portal has donor-sync's id properties.

    Workers started together would otherwise race to create those properties: a race in the
    connector's setup, not in the push under test.
    """
    for name in DESTINATIONS:
        box[name].emulator.reset()
    made = {name: Vendor(box[name], name, str(box.tls.ca_cert)) for name in DESTINATIONS}
    build_connector(HUBSPOT, made[HUBSPOT].running.base_url, made[HUBSPOT].ca_bundle)
    yield made
    for name in DESTINATIONS:
        box[name].emulator.reset()


# -- workers ---------------------------------------------------------------------------------------


@dataclass
class Worker:
    """A push worker process (``push_worker.py``) on one destination, started ahead of its push.

    :meth:`start` launches the interpreter, which builds the connector and connects, then waits;
    :meth:`go` releases it.
    """

    worker_id: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        db_url: str,
        vendor: Vendor,
        worker_id: str,
        tmp_path: Path,
        *,
        until_done: bool = False,
        time_limit_s: float = WAIT_TIMEOUT_S,
    ) -> Worker:
        stdout, stderr = tmp_path / f"{worker_id}.out", tmp_path / f"{worker_id}.err"
        args = [
            sys.executable, str(WORKER), db_url, vendor.destination, vendor.running.base_url,
            vendor.ca_bundle, "--worker-id", worker_id, "--lease-seconds", str(LEASE_S),
        ]  # fmt: skip
        if until_done:
            args += ["--until-done", "--time-limit", str(time_limit_s)]
        args.append("--hold")
        # requests would let these override the CA bundle the connectors are given.
        env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env)
        return cls(worker_id, process, stdout, stderr)

    def go(self) -> None:
        """Wait until the worker is ready (started, connected), then let it push."""
        wait_for(lambda: self.stdout.read_text().startswith("ready"), self)
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: nothing in the worker runs after it (no rollback, no finally block)."""
        assert self.alive(), f"{self.worker_id} ended before it could be killed:\n{self.log()}"
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL

    def finish(self, timeout: float = WAIT_TIMEOUT_S) -> dict[str, Any]:
        """Wait for a clean exit; return the worker's counts."""
        code = self.process.wait(timeout=timeout)
        assert code == 0, f"{self.worker_id} exited {code}:\n{self.log()}"
        self.report = json.loads(self.stdout.read_text().strip().splitlines()[-1])
        return self.report

    def log(self) -> str:
        return self.stderr.read_text()[-4000:]


def wait_for(condition: Callable[[], bool], *workers: Worker, timeout: float = WAIT_TIMEOUT_S) -> None:
    """Poll ``condition`` until it holds; fail when it does not in time or a worker ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            assert worker.alive(), f"{worker.worker_id} ended first:\n{worker.log()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def spawn(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers on this test's database; any still running at the end are killed."""
    started: list[Worker] = []

    def start(vendor: Vendor, worker_id: str, **options: Any) -> Worker:
        worker = Worker.start(db_url, vendor, worker_id, tmp_path, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.alive():
            worker.process.kill()
            worker.process.wait(timeout=10)
        if worker.process.stdin is not None:
            worker.process.stdin.close()


# -- database views --------------------------------------------------------------------------------


def outbox_states(conn: psycopg.Connection, destination: str) -> Counter[str]:
    rows = conn.execute(
        "SELECT state, count(*) FROM sync.outbox WHERE destination = %s GROUP BY state", (destination,)
    ).fetchall()
    return Counter({str(state): int(n) for state, n in rows})


def in_flight(conn: psycopg.Connection, destination: str) -> dict[int, str]:
    """Outbox id -> lease holder, of the rows in flight."""
    rows = conn.execute(
        "SELECT outbox_id, claimed_by FROM sync.outbox WHERE destination = %s AND state = 'in_flight'",
        (destination,),
    ).fetchall()
    return {int(i): str(c) for i, c in rows}


def in_flight_entities(conn: psycopg.Connection, destination: str) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT entity FROM sync.outbox WHERE destination = %s AND state = 'in_flight'",
        (destination,),
    ).fetchall()
    return {str(e) for (e,) in rows}


def succeeded_keys(conn: psycopg.Connection, destination: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT entity, record_key FROM sync.outbox WHERE destination = %s AND state = 'succeeded'",
        (destination,),
    ).fetchall()
    return {(str(e), str(k)) for e, k in rows}


def record_keys(conn: psycopg.Connection, outbox_ids: set[int]) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT entity, record_key FROM sync.outbox WHERE outbox_id = ANY(%s)", (sorted(outbox_ids),)
    ).fetchall()
    return {(str(e), str(k)) for e, k in rows}


def waiting_on_lock(conn: psycopg.Connection, worker_id: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        (worker_id,),
    ).fetchone()
    return bool(row and row[0])


def terminate_backend(conn: psycopg.Connection, worker_id: str) -> None:
    """End the server session of a killed worker, as the server does once it sees the socket closed.

    A session blocked on a lock notices its client is gone only when the lock is granted; it
    then fails to answer and rolls back. Terminating it does the same, sooner.
    """
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (worker_id,)
    )

    def gone() -> bool:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (worker_id,))
        return row.fetchone() == (0,)

    wait_for(gone, timeout=10)


def lease_expiries(conn: psycopg.Connection) -> dict[int, Any]:
    """Outbox id -> lease expiry, of the rows in flight."""
    rows = conn.execute("SELECT outbox_id, next_attempt_at FROM sync.outbox WHERE state = 'in_flight'")
    return {int(i): at for i, at in rows.fetchall()}


def sent_under_lease(conn: psycopg.Connection, leases: dict[int, Any]) -> int:
    """Attempts recorded for rows before the lease they were held under expired."""
    row = conn.execute(
        "SELECT count(*) FROM sync.push_log p"
        " JOIN unnest(%s::bigint[], %s::timestamptz[]) AS l(outbox_id, expires) USING (outbox_id)"
        " WHERE p.pushed_at < l.expires",
        (list(leases), list(leases.values())),
    ).fetchone()
    assert row is not None
    return int(row[0])


def wait_past_leases(conn: psycopg.Connection) -> None:
    """Sleep until no outbox row is held under a lease any more."""
    expiries = lease_expiries(conn)
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    if expiries:
        time.sleep(max(0.0, (max(expiries.values()) - row[0]).total_seconds()) + 0.2)


def open_rows(conn: psycopg.Connection, destination: str) -> int:
    """Rows still to push: pending, or in flight under a (possibly expired) lease."""
    states = outbox_states(conn, destination)
    return states["pending"] + states["in_flight"]


# -- what must hold once the push finished ---------------------------------------------------------


def assert_landed_exactly_once(
    conn: psycopg.Connection, vendor: Vendor, queued: dict[str, set[str]], donors: Donors
) -> None:
    """Every queued record is at the vendor once, recorded once, with its remote id known."""
    destination = vendor.destination
    held = vendor.keys()
    for entity, keys in queued.items():
        if entity not in held:  # associations: checked per deal below
            continue
        counts = Counter(held[entity])
        assert [k for k, n in counts.items() if n > 1] == [], f"{destination} {entity}: duplicates"
        assert set(counts) == keys, (
            f"{destination} {entity}: {len(keys - set(counts))} lost, {len(set(counts) - keys)} unexpected"
        )
    assert vendor.removed() == 0, f"{destination}: nothing was created and then removed"
    total = sum(len(keys) for keys in queued.values())
    assert outbox_states(conn, destination) == Counter({"succeeded": total})
    # One successful attempt per outbox row: no row was recorded as pushed twice.
    attempts = conn.execute(
        "SELECT count(*), count(DISTINCT outbox_id) FROM sync.push_log"
        " WHERE destination = %s AND outcome = 'succeeded'",
        (destination,),
    ).fetchone()
    assert attempts == (total, total)
    assert conn.execute(
        "SELECT count(*) FROM sync.dead_letters WHERE destination = %s", (destination,)
    ).fetchone() == (0,)
    # Destination state holds each record's remote id: the id the vendor has for that key.
    state = {
        (str(e), str(k)): r
        for e, k, r in conn.execute(
            "SELECT entity, record_key, remote_id FROM sync.destination_state WHERE destination = %s",
            (destination,),
        ).fetchall()
    }
    vendor_ids = vendor.remote_ids()
    for entity, keys in queued.items():
        found = {k: state.get((entity, k)) for k in keys}
        if entity in held:
            expected = {k: vendor_ids[(entity, k)] for k in keys}
            assert found == expected, f"{destination} {entity}: remote ids missing or wrong"
        else:  # an association's remote id names the link, not a record
            assert all(found.values()), f"{destination} {entity}: remote ids missing"
    if destination == SALESFORCE:
        assert_salesforce_links(vendor, donors)
    else:
        assert_hubspot_links(vendor, donors)


def assert_salesforce_links(vendor: Vendor, donors: Donors) -> None:
    """Contacts in their household, gifts on their contact, recurring gifts on an installment."""
    rows = vendor.sf_rows()
    assert len(rows["household_account"]) == len(donors.households), "one Account per household"
    accounts = {str(r[EXT]): r["Id"] for r in rows["household_account"]}
    contacts = {str(r[EXT]): r for r in rows["contact"]}
    assert {d: contacts[d]["AccountId"] for d, h in donors.donors.items() if h} == {
        d: accounts[h] for d, h in donors.donors.items() if h
    }
    gifts = {str(r[EXT]): r for r in rows["opportunity"] if r.get(EXT)}
    assert {k: r["npsp__Primary_Contact__c"] for k, r in gifts.items()} == {
        k: contacts[d]["Id"] for k, d in donors.gifts.items()
    }
    # Each monthly gift claimed its plan's installment, which closed and scheduled the next: one
    # open installment per plan. A gift inserted beside its installment (counted twice) leaves two.
    plans = {str(r[EXT]): r["Id"] for r in rows["recurring_donation"]}
    assert {k: gifts[k]["npe03__Recurring_Donation__c"] for k in donors.recurring_gifts} == {
        k: plans[p] for k, p in donors.recurring_gifts.items()
    }
    open_installments = Counter(
        str(r["npe03__Recurring_Donation__c"]) for r in rows["opportunity"] if not r.get(EXT)
    )
    assert open_installments == Counter(dict.fromkeys(plans.values(), 1))


def assert_hubspot_links(vendor: Vendor, donors: Donors) -> None:
    """Every deal is associated with its donor's contact and no other."""
    ids = vendor.remote_ids()
    links = vendor.hs_deal_contacts()
    assert {k: links.get(ids[("deal", k)]) for k in donors.gifts} == {
        k: {ids[("contact", d)]} for k, d in donors.gifts.items()
    }


# -- tests -----------------------------------------------------------------------------------------


def test_workers_killed_mid_push_lose_nothing_and_duplicate_nothing(
    db: psycopg.Connection, db_url: str, vendors: dict[str, Vendor], spawn: Callable[..., Worker]
) -> None:
    donors = seed_core(db, DONORS)
    queued = {d: queue(db, d) for d in DESTINATIONS}
    for vendor in vendors.values():
        vendor.slow_writes(SLOW_S)
    first = {d: spawn(vendors[d], f"{d}-killed-in-call") for d in DESTINATIONS}
    second = {d: spawn(vendors[d], f"{d}-killed-in-write") for d in DESTINATIONS}
    with connect(db_url, autocommit=True) as watch, connect(db_url) as locker:
        # (a) Each destination's worker is killed inside a write call of gifts, once the donors landed.
        for worker in first.values():
            worker.go()
        held_by_first: dict[str, dict[int, str]] = {}

        def killed_in_call() -> bool:
            for d, worker in first.items():
                if d in held_by_first:
                    continue
                assert worker.alive(), f"{worker.worker_id} ended first:\n{worker.log()}"
                if GIFTS[d] in in_flight_entities(watch, d) and vendors[d].writes_in_flight():
                    worker.kill()
                    held_by_first[d] = in_flight(watch, d)
            return len(held_by_first) == len(first)

        wait_for(killed_in_call)

        # (b) The next workers are killed after the vendor answered, while writing the results.
        locker.execute("LOCK TABLE sync.push_log IN EXCLUSIVE MODE")
        for worker in second.values():
            worker.go()
        wait_for(lambda: all(waiting_on_lock(watch, w.worker_id) for w in second.values()), *second.values())
        for worker in second.values():
            worker.kill()
            terminate_backend(watch, worker.worker_id)
        locker.rollback()
        recovery = {d: spawn(vendors[d], f"{d}-rerun", until_done=True) for d in DESTINATIONS}
        wait_for(lambda: not any(v.writes_in_flight() for v in vendors.values()), timeout=10)

        unrecorded: dict[str, set[tuple[str, str]]] = {}
        ids_before: dict[str, dict[tuple[str, str], str]] = {}
        for d, vendor in vendors.items():
            held = in_flight(watch, d)
            assert held_by_first[d], f"{d}: the first worker held a batch when killed"
            # The first worker's records are still held under its lease.
            assert {i: held.get(i) for i in held_by_first[d]} == held_by_first[d]
            second_batch = record_keys(watch, set(held) - set(held_by_first[d]))
            assert second_batch, f"{d}: the second worker held a batch of its own"
            # The batch whose answer was never recorded is at the vendor; the one whose call was
            # cut may be (the emulators drop a request whose client is gone). Nothing else is
            # there unrecorded.
            at_vendor = {
                (e, k) for e, keys in vendor.keys().items() for k in keys if k in queued[d].get(e, ())
            }
            unrecorded[d] = at_vendor - succeeded_keys(watch, d)
            assert second_batch <= unrecorded[d] <= record_keys(watch, set(held)), d
            ids_before[d] = vendor.remote_ids()

        # The re-run starts at once (an Airflow retry). It pushes what is free, leaves the killed
        # workers' records alone while their leases hold, then reclaims and finishes them.
        leases = lease_expiries(watch)
        for vendor in vendors.values():
            vendor.clear_faults()
        for worker in recovery.values():
            worker.go()
        for d, worker in recovery.items():
            report = worker.finish()
            assert (report["left"], report["stale"], report["failed"]) == (0, 0, 0), report
            # What had landed unrecorded was updated in place, not created again.
            after = vendors[d].remote_ids()
            assert {r: after[r] for r in unrecorded[d]} == {r: ids_before[d][r] for r in unrecorded[d]}
            assert_landed_exactly_once(watch, vendors[d], queued[d], donors)
        assert sent_under_lease(watch, leases) == 0, "a record was re-sent while a lease held it"


def test_two_workers_at_once_send_each_record_once(
    db: psycopg.Connection, db_url: str, vendors: dict[str, Vendor], spawn: Callable[..., Worker]
) -> None:
    donors = seed_core(db, DONORS)
    queued = {d: queue(db, d) for d in DESTINATIONS}
    for vendor in vendors.values():
        vendor.slow_writes(0.2)
    # A scheduled run and a manual run of the same DAG, each pushing both destinations at once.
    workers = {d: [spawn(vendors[d], f"{d}-{n}", until_done=True) for n in (1, 2)] for d in DESTINATIONS}
    for pair in workers.values():
        for worker in pair:
            worker.go()
    with connect(db_url, autocommit=True) as watch:
        for d, pair in workers.items():
            reports = [worker.finish() for worker in pair]
            total = sum(len(keys) for keys in queued[d].values())
            # Each record was sent once: the two workers' sends add up to the records, no more.
            assert sum(r["pushed"] for r in reports) == total
            assert all(r["pushed"] > 0 for r in reports), f"{d}: both workers pushed"
            assert [(r["failed"], r["stale"], r["left"]) for r in reports] == [(0, 0, 0)] * 2
            assert_landed_exactly_once(watch, vendors[d], queued[d], donors)
            attempts = watch.execute(
                "SELECT count(*) FROM sync.push_log WHERE destination = %s", (d,)
            ).fetchone()
            assert attempts == (total,), f"{d}: one attempt per record, none failed"


@pytest.mark.slow
def test_workers_killed_at_random_points_lose_nothing_at_scale(
    db: psycopg.Connection, db_url: str, vendors: dict[str, Vendor], spawn: Callable[..., Worker]
) -> None:
    """Rounds of workers killed at random instants (seeded), then two workers at once finish."""
    rng = random.Random(10)
    donors = seed_core(db, SCALE_DONORS)
    queued = {d: queue(db, d) for d in DESTINATIONS}
    for vendor in vendors.values():
        vendor.slow_writes(0.3)
    with connect(db_url, autocommit=True) as watch:
        for round_ in range(4):
            doomed = [spawn(vendors[d], f"{d}-doomed-{round_}") for d in DESTINATIONS]
            for worker in doomed:
                worker.go()
            time.sleep(rng.uniform(0.2, 4.0))
            for worker in doomed:
                if worker.alive():
                    worker.kill()
                    terminate_backend(watch, worker.worker_id)
        left = {d: open_rows(watch, d) for d in DESTINATIONS}
        assert all(left.values()), "the killed workers left work behind"
        for vendor in vendors.values():
            vendor.clear_faults()
        workers = {
            d: [spawn(vendors[d], f"{d}-finisher-{n}", until_done=True, time_limit_s=240) for n in (1, 2)]
            for d in DESTINATIONS
        }
        wait_past_leases(watch)
        for pair in workers.values():
            for worker in pair:
                worker.go()
        for d, pair in workers.items():
            reports = [worker.finish(timeout=300) for worker in pair]
            assert sum(r["pushed"] for r in reports) == left[d], f"{d}: each record left was sent once"
            assert [(r["failed"], r["stale"], r["left"]) for r in reports] == [(0, 0, 0)] * 2
            assert_landed_exactly_once(watch, vendors[d], queued[d], donors)
