"""Shared by the fault-injection test and benchmark (issue 10), and by the end-to-end benchmark.

Builds the world donations_hourly runs in -- every source and destination emulator, sample data
in the sources, CSV exports in a drop folder, signed refund webhooks in the inbox, Airflow
connections to all of it -- and then does to it what the fault run needs:

* :class:`FaultMix` and :func:`arm`: a seeded mix of faults on every destination emulator
  (5xx on writes, a 429 storm with ``Retry-After`` at the start of each cycle, timeouts, connection
  resets, expired tokens, and responses lost after the vendor applied the call);
* :func:`advance_clock`: the retry ladder's and the circuit breakers' waits pass (rows due
  again, breakers ready to probe) by moving their timestamps into the past, never by sleeping;
* :func:`push_cycle`: what the next hourly run's delivery tasks do -- queue each destination's
  changes, push every due row through the connector the tasks build;
* :func:`account`: the ledger -- for every record the outbox was given, whether it landed, is a
  dead letter with its class, is still scheduled (the ladder, a dependency, a breaker, the next
  run), or is unaccounted for -- beside what each emulator holds, keyed by donor-sync's external
  ids (a key held twice is a duplicate); :func:`problems` says what breaks exactly-once.

The benchmarks also run donations_hourly here the way ``make demo`` does (:func:`airflow_env`,
:func:`run_dag`) and read back its task times and run figures.

No PII leaves these helpers: counts, classes and record keys (donor ids, gift keys) only.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from donor_sync.delivery.push.claim import DEPENDENCY_WAITING
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox

#: The CRMs and email platforms donations_hourly pushes to.
DESTINATIONS = ("salesforce", "hubspot", "mailchimp", "braze")
#: The outbound event subscriber of include/mappings/events.yaml (the sandbox receiver).
EVENTS = "webhook_sandbox_receiver"
#: Emulator of each destination.
EMULATOR_OF = {**{d: d for d in DESTINATIONS}, EVENTS: "receiver"}
SOURCES = ("stripe", "donorbox", "classy")
EMULATORS = (*SOURCES, *DESTINATIONS, "receiver")
#: Sample gifts per generated donor (sandbox.datagen's defaults: truth/gifts.csv over persons).
GIFTS_PER_DONOR = 2.43
#: Refunds delivered by signed webhook (each twice, as Stripe sometimes does).
REFUNDS = 5
#: Salesforce's, HubSpot's, Mailchimp's and Braze's client timeout in the fault runs (connection
#: extra ``timeout``), so a timeout fault costs seconds, not the default 30.
CLIENT_TIMEOUT_S = 2.0
#: The vendor API paths faults apply to: all but the token endpoints.
_API_PATHS = r"^/(?!services/oauth2/|oauth/|__admin)"
_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


# -- the world ------------------------------------------------------------------------------------


def donors_for(gifts: int) -> int:
    """Return how many donors to generate for about ``gifts`` sample gifts."""
    return max(1, math.ceil(gifts / GIFTS_PER_DONOR))


def generate_sample(out: Path, gifts: int, *, seed: int = 11, bad_share: float = 0.02) -> dict[str, int]:
    """Generate sample data with about ``gifts`` gifts into ``out``; return the manifest's counts."""
    from sandbox.datagen import GenerationConfig, generate

    result = generate(
        GenerationConfig(donors=donors_for(gifts), out=out, seed=seed, workers=1, bad_share=bad_share)
    )
    return dict(result.counts)


def sample_gifts(sample: Path) -> int:
    """Return the gifts of a generated sample (one per real gift, however many platforms saw it)."""
    with (sample / "truth" / "gifts.csv").open(encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def build_box(tls_dir: Path, settings: Mapping[str, dict[str, Any]] | None = None) -> Sandbox:
    """Return every emulator, not started, at its default limits unless ``settings`` say otherwise.

    Their request logs keep every call (not the last 2,000), so a benchmark can count them all.
    """
    from sandbox.registry import build_sandbox

    box = build_sandbox(EMULATORS, tls_dir=tls_dir, fixed_ports=False, settings=dict(settings or {}))
    for emulator in box.emulators:
        emulator.request_log = deque()
    return box


@dataclass(frozen=True)
class Inputs:
    """What reached the sources before the run: records per emulator kind, CSVs, webhook deliveries."""

    loaded: dict[str, int]
    csv_files: int
    webhook_deliveries: dict[str, int]


def prepare_inputs(box: Sandbox, sample: Path, drop: Path, db_url: str, *, refunds: int = REFUNDS) -> Inputs:
    """Seed the source emulators, drop the CSV exports, and deliver signed refund webhooks."""
    from donor_sync.demo_inputs import deliver_refund_webhooks, drop_demo_csvs, webhook_receiver
    from sandbox.load import load_sources

    loaded = load_sources(box, sample)
    dropped = drop_demo_csvs(sample, drop)
    with webhook_receiver(db_url, box.tls.server_cert, box.tls.server_key) as url:
        deliveries = deliver_refund_webhooks(box, url, count=refunds)
    return Inputs(loaded, len(dropped), deliveries)


def connections(
    box: Sandbox, db_url: str, drop: Path, *, timeout_s: float | None = None
) -> dict[str, dict[str, Any]]:
    """Return the Airflow connections of donations_hourly, pointed at ``box`` and the staging database.

    :param timeout_s: the destinations' client timeout (connection extra ``timeout``); None keeps
        each connector's default.
    """
    from donor_sync.local_airflow import connection_json_from_url
    from tests.integration.source_connections import source_connections
    from tests.privacy.erasers.connections import privacy_connections

    found: dict[str, dict[str, Any]] = {
        "donor_sync_db": json.loads(connection_json_from_url(db_url)),
        **source_connections(box, drop),
        **privacy_connections(box),
    }
    if timeout_s is not None:
        for conn_id in ("salesforce_npsp", "hubspot", "mailchimp", "braze"):
            found[conn_id]["extra"] = {**found[conn_id]["extra"], "timeout": timeout_s}
    return found


def connection_env(found: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Return ``AIRFLOW_CONN_*`` variables for ``found`` connections."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in found.items()}


# -- donations_hourly in its own interpreter (the benchmarks) ---------------------------------------

DAG_ID = "donations_hourly"
REPO_ROOT = Path(__file__).resolve().parents[2]


def airflow_env(
    home: Path, found: Mapping[str, Mapping[str, Any]], db_url: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return the environment of ``airflow dags test`` in a throwaway home, as the demo runs it.

    The metadata database is SQLite in ``home``; the staging database and every emulator reach the
    tasks as ``AIRFLOW_CONN_*`` variables; a failing task fails the run at once
    (``DONOR_SYNC_FAIL_FAST``, as ``make demo`` sets it) instead of waiting on the retry ladder.
    """
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(("AIRFLOW_", "AIRFLOW__")) and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    python_path = os.pathsep.join(
        p for p in (str(REPO_ROOT), str(REPO_ROOT / "plugins"), env.get("PYTHONPATH")) if p
    )
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": python_path,
            "DONOR_SYNC_DB_URL": db_url,
            "DONOR_SYNC_FAIL_FAST": "1",
            **connection_env(found),
        }
    )
    home.mkdir(parents=True, exist_ok=True)
    return env


def migrate_airflow(env: Mapping[str, str]) -> None:
    """Create the metadata database of ``env``'s Airflow home."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=dict(env), check=True, capture_output=True, text=True)


def run_dag(env: Mapping[str, str], log_path: Path) -> tuple[float, int]:
    """Run ``airflow dags test donations_hourly`` (the demo's way, with the deadline-alert fix).

    Output goes to ``log_path``. Returns the wall time in seconds and the exit status.
    """
    started = time.perf_counter()
    with log_path.open("wb") as log:
        completed = subprocess.run(
            [sys.executable, "-m", "donor_sync.operators.dag_test_compat", DAG_ID],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return time.perf_counter() - started, completed.returncode


def task_times(home: Path) -> dict[str, dict[str, Any]]:
    """Return each task of the latest donations_hourly run in ``home``: state and seconds."""
    with sqlite3.connect(home / "airflow.db") as meta:
        rows = meta.execute(
            "SELECT task_id, state, duration FROM task_instance WHERE dag_id = ? AND run_id ="
            " (SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1) ORDER BY start_date",
            (DAG_ID, DAG_ID),
        ).fetchall()
    return {
        str(task): {"state": state, "seconds": None if seconds is None else round(float(seconds), 2)}
        for task, state, seconds in rows
    }


def run_summary(conn: psycopg.Connection) -> dict[str, Any]:
    """Return the latest donations_hourly run's status, start, span and recorded figures per stage.

    ``figures`` maps ``stage.metric`` to the value summed over scopes and parts, and
    ``by_scope`` maps ``stage.metric`` to ``{scope: value}`` (counts only, no PII).
    """
    row = conn.execute(
        "SELECT run_id, status, extract(epoch FROM finished_at - started_at), started_at FROM sync.runs"
        " WHERE dag_id = %s ORDER BY started_at DESC LIMIT 1",
        (DAG_ID,),
    ).fetchone()
    if row is None:
        conn.commit()
        return {"status": None}
    run_id, status, span, started_at = row
    figures: dict[str, float] = {}
    by_scope: dict[str, dict[str, float]] = {}
    for stage, scope, name, value in conn.execute(
        "SELECT stage, scope, metric, sum(value) FROM sync.run_metrics WHERE run_id = %s"
        " GROUP BY stage, scope, metric ORDER BY 1, 2, 3",
        (run_id,),
    ).fetchall():
        key = f"{stage}.{name}"
        figures[key] = figures.get(key, 0.0) + float(value)
        if scope:
            by_scope.setdefault(key, {})[str(scope)] = float(value)
    conn.commit()
    return {
        "status": status,
        "started_at": started_at,
        "seconds": None if span is None else round(float(span), 2),
        "figures": figures,
        "by_scope": by_scope,
    }


# -- faults ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultMix:
    """Faults per destination call, as probabilities (each rule is drawn in turn; the first fires).

    :param server_errors: 500, 502 and 503 (a third each) on write calls (POST, PUT, PATCH, DELETE).
    :param storm: 429s with ``Retry-After: 1`` answering the first write calls of each cycle (fewer
        than the clients' in-call attempts: a storm is waited out, not turned into a failed call).
    :param timeouts: held past the client's timeout, then 504; the call never reached the vendor.
    :param lost_responses: served after the client gave up: the vendor applied a call whose
        answer the client never read (the case that tests idempotency).
    :param resets: the TCP connection is reset before any answer.
    :param expired_tokens: the vendor's "session expired" 401.
    :param opening: besides the rates, make sure each kind happens at every destination that gets
        it: its first write call of each method times out, the next loses its response, the next
        has an expired token (a small run may otherwise draw none).
    """

    server_errors: float = 0.20
    storm: int = 3
    timeouts: float = 0.01
    lost_responses: float = 0.01
    resets: float = 0.02
    expired_tokens: float = 0.02
    client_timeout_s: float = CLIENT_TIMEOUT_S
    opening: bool = False

    def describe(self) -> dict[str, Any]:
        """Return the mix as JSON-ready values."""
        return {
            "server_errors_on_writes": self.server_errors,
            "storm_429_per_cycle": self.storm,
            "timeouts": self.timeouts,
            "lost_responses": self.lost_responses,
            "resets": self.resets,
            "expired_tokens": self.expired_tokens,
            "client_timeout_s": self.client_timeout_s,
            "opening_faults": self.opening,
        }


def rules_for(destination: str, mix: FaultMix) -> list[FaultRule]:
    """Return the fault rules of one destination's emulator (its token endpoints are spared).

    The webhook subscriber holds no token (its 401 means a refused signature: a dead letter at
    once), and its timeout is its events.yaml ``timeout_s`` (10 s): it gets no expired tokens,
    timeouts or lost responses.
    """
    api = _API_PATHS
    held = mix.client_timeout_s + 0.5
    rules: list[FaultRule] = []
    if mix.opening and destination != EVENTS:
        for kind in ("timeout", "slow", "expired_token"):
            delay = 0.0 if kind == "expired_token" else held
            rules += [
                FaultRule(kind=kind, path=api, method=m, count=1, delay_s=delay)
                for m in ("POST", "PUT", "PATCH")
            ]
    if mix.storm:
        rules += [
            FaultRule(
                kind="status", status=429, path=api, method=m, count=mix.storm, headers={"Retry-After": "1"}
            )
            for m in ("POST", "PUT", "PATCH")
        ]
    rules.append(FaultRule(kind="reset", path=api, rate=mix.resets))
    if destination != EVENTS:
        rules.append(FaultRule(kind="expired_token", path=api, rate=mix.expired_tokens))
        rules.append(FaultRule(kind="timeout", path=api, rate=mix.timeouts, delay_s=held))
        rules += [
            FaultRule(kind="slow", path=api, method=m, rate=mix.lost_responses, delay_s=held)
            for m in _WRITE_METHODS
        ]
    per_status = 1 - (1 - mix.server_errors) ** (1 / 3)  # three rules in turn: server_errors in all
    rules += [
        FaultRule(kind="status", status=status, path=api, method=m, rate=per_status)
        for status in (500, 502, 503)
        for m in _WRITE_METHODS
    ]
    return [r for r in rules if r.rate > 0]


def arm(box: Sandbox, mix: FaultMix, *, seed: int) -> None:
    """Install the fault mix on every destination emulator (reseeded, so a run is repeatable)."""
    for offset, destination in enumerate(EMULATOR_OF):
        box[EMULATOR_OF[destination]].emulator.faults.set(rules_for(destination, mix), seed=seed + offset)


def rearm_storms(box: Sandbox, mix: FaultMix) -> None:
    """Start a new 429 storm on every destination: the next ``mix.storm`` write calls of each method.

    The storm rules' caps are raised rather than their counts reset, so :func:`fired` keeps the total.
    """
    for destination in EMULATOR_OF:
        injector = box[EMULATOR_OF[destination]].emulator.faults
        with injector._lock:  # the sandbox's own injector (sandbox/common/faults.py)
            for active in injector._rules:
                if active.rule.count is not None and active.rule.status == 429:
                    active.rule = active.rule.model_copy(update={"count": active.fired + mix.storm})


def disarm(box: Sandbox) -> None:
    """Remove every fault rule from the destination emulators."""
    for name in set(EMULATOR_OF.values()):
        box[name].emulator.faults.clear()


def fired(box: Sandbox) -> dict[str, dict[str, int]]:
    """Return how often each kind of fault fired, per destination emulator (429 and 5xx by status)."""
    out: dict[str, dict[str, int]] = {}
    for name in sorted(set(EMULATOR_OF.values())):
        counts: Counter[str] = Counter()
        for rule in box[name].emulator.faults.describe():
            kind = rule["kind"]
            label = f"{kind}_{rule['status']}" if kind == "status" else kind
            if kind == "slow":
                label = "lost_response"
            counts[label] += int(rule["fired"])
        out[name] = dict(sorted(counts.items()))
    return out


# -- the clock and the push cycles -----------------------------------------------------------------


def advance_clock(conn: psycopg.Connection) -> dict[str, int]:
    """Let the retry ladder's and the breakers' waits pass; return how many rows were moved.

    Pending rows scheduled in the future become due; an open breaker may probe at once.
    """
    rows = conn.execute(
        "UPDATE sync.outbox SET next_attempt_at = now() - interval '1 second'"
        " WHERE state = 'pending' AND next_attempt_at > now()"
    ).rowcount
    breakers = conn.execute(
        "UPDATE sync.circuit_breakers SET next_probe_at = now() - interval '1 second'"
        " WHERE state = 'open' AND next_probe_at > now()"
    ).rowcount
    conn.commit()
    return {"rows": rows, "breakers": breakers}


@dataclass
class CycleReport:
    """What one push cycle did per destination: queued, push counts, why a push stopped."""

    queued: dict[str, int] = field(default_factory=dict)
    pushed: dict[str, dict[str, int]] = field(default_factory=dict)
    stopped: dict[str, str | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def push_cycle(
    conn: psycopg.Connection,
    *,
    connector_for: Callable[[str], Any],
    destinations: Iterable[str] = (*DESTINATIONS, EVENTS),
    worker: str = "fault-cycle",
) -> CycleReport:
    """Queue each destination's changes and push every due row, as an hourly run's tasks do.

    A connector that cannot be built or raises (not a DeliveryError) is recorded by class name and
    the cycle goes on with the next destination, as the run's other push tasks would.
    """
    from donor_sync.delivery import run as delivery

    report = CycleReport()
    started = time.perf_counter()
    for destination in destinations:
        try:
            if destination != EVENTS:
                queued = delivery.queue(conn, destination, run_id=None, actor=f"test:{worker}")
                report.queued[destination] = queued.queued
            if not delivery.has_due_work(conn, destination):
                continue
            pushed = delivery.push(conn, connector_for(destination), run_id=None, worker_id=worker)
        except Exception as exc:
            conn.rollback()
            report.errors[destination] = type(exc).__name__
            continue
        report.pushed[destination] = pushed.totals()
        report.stopped[destination] = pushed.stopped
    report.seconds = time.perf_counter() - started
    return report


def run_cycles(
    conn: psycopg.Connection,
    *,
    connector_for: Callable[[str], Any],
    box: Sandbox | None = None,
    mix: FaultMix | None = None,
    max_cycles: int = 12,
) -> list[CycleReport]:
    """Push cycles until one lands nothing: what is left waits for a dependency, or for a breaker
    whose probe keeps failing (at most ``max_cycles``).

    Before each cycle the clock passes (:func:`advance_clock`) and, with ``box`` and ``mix``, a
    new 429 storm starts.
    """
    reports: list[CycleReport] = []
    for _ in range(max_cycles):
        advance_clock(conn)
        if box is not None and mix is not None:
            rearm_storms(box, mix)
        report = push_cycle(conn, connector_for=connector_for)
        reports.append(report)
        if not report.errors and not sum(p["succeeded"] for p in report.pushed.values()):
            break
    return reports


def coverage(conn: psycopg.Connection, since: Any = None) -> dict[str, dict[str, int]]:
    """Core's live donors and gifts against what each CRM's outbox was given.

    Returns ``{"salesforce.contact": {"core": n, "queued": n, "not_queued": n}, ...}``: a live
    donor or gift never queued for a CRM is lost before the push could lose it.

    :param since: only rows changed from then on (a run's start: what that run had to deliver).
    """
    donors = {
        str(r[0])
        for r in conn.execute(
            "SELECT donor_id FROM core.donors WHERE merged_into IS NULL"
            " AND (%(t)s::timestamptz IS NULL OR updated_at >= %(t)s)",
            {"t": since},
        )
    }
    gifts = {
        str(r[0])
        for r in conn.execute(
            "SELECT gift_key FROM core.gifts WHERE NOT is_test"
            " AND (%(t)s::timestamptz IS NULL OR updated_at >= %(t)s)",
            {"t": since},
        )
    }
    out: dict[str, dict[str, int]] = {}
    for destination in ("salesforce", "hubspot"):
        for entity, wanted in ((DONOR_ENTITY[destination], donors), (GIFT_ENTITY[destination], gifts)):
            queued = {
                str(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT record_key FROM sync.outbox WHERE destination = %s AND entity = %s",
                    (destination, entity),
                )
            }
            out[f"{destination}.{entity}"] = {
                "core": len(wanted),
                "queued": len(queued & wanted),
                "not_queued": len(wanted - queued),
            }
    conn.commit()
    return out


_READS_BY_POST = r"/batch/read$|/search$|/export/|/oauth2?/|/token$"


def clear_request_logs(box: Sandbox) -> None:
    """Empty the destination emulators' request logs (before a run whose writes are counted)."""
    for name in set(EMULATOR_OF.values()):
        box[name].emulator.request_log.clear()


def writes(box: Sandbox) -> dict[str, int]:
    """Return the write requests (POST, PUT, PATCH, DELETE; tokens and reads by POST excepted)
    each destination emulator logged since :func:`clear_request_logs`."""
    import re

    reads = re.compile(_READS_BY_POST)
    return {
        name: sum(
            1
            for r in list(box[name].emulator.request_log)
            if r["method"] in _WRITE_METHODS and not reads.search(r["path"])
        )
        for name in sorted(set(EMULATOR_OF.values()))
    }


# -- the ledger -----------------------------------------------------------------------------------

#: Where each destination keeps the records of an outbox entity: (object, key property).
SALESFORCE_EXTERNAL_ID = "Donor_Sync_Id__c"
HUBSPOT_OBJECTS = {"contact": ("contacts", "donor_sync_id"), "deal": ("deals", "donor_sync_gift_key")}
#: The entity of each destination that holds donors and the one that holds gifts.
DONOR_ENTITY = {"salesforce": "contact", "hubspot": "contact", "mailchimp": "member", "braze": "user"}
GIFT_ENTITY = {
    "salesforce": "opportunity",
    "hubspot": "deal",
    "braze": "donation_event",
    EVENTS: "donation_created",
}


def salesforce_objects() -> dict[str, str]:
    """Return the sObject of each Salesforce entity of the shipped mapping."""
    from donor_sync.delivery.mapping import load_destination, push_order

    return {
        o.entity: str(o.object_name)
        for o in push_order(load_destination("salesforce"))
        if not o.is_association and o.object_name
    }


def held(box: Sandbox, destination: str) -> dict[str, list[str]]:
    """Return the record keys the destination's emulator holds, per outbox entity.

    Keys come as a list: one held twice is a duplicate. Salesforce entities sharing an sObject
    (household and organization accounts) are listed under each of them. Braze's custom events
    are listed under ``donation_event`` by their ``gift_key`` property, the subscriber's deliveries
    under their event type (``donation_created``) by event id.
    """
    emulator = box[EMULATOR_OF[destination]].emulator
    with emulator.lock:
        if destination == "salesforce":
            tables = emulator.store.tables
            return {
                entity: [
                    str(r[SALESFORCE_EXTERNAL_ID])
                    for r in tables[sobject].values()
                    if r.get(SALESFORCE_EXTERNAL_ID)
                ]
                for entity, sobject in salesforce_objects().items()
            }
        if destination == "hubspot":
            store = emulator.store
            return {
                entity: [
                    str(r.properties[prop])
                    for r in store.of(store.resolve(kind)).values()
                    if not r.archived and r.properties.get(prop)
                ]
                for entity, (kind, prop) in HUBSPOT_OBJECTS.items()
            }
        if destination == "mailchimp":
            from sandbox.emulators.mailchimp import DEFAULT_LIST_ID

            members = emulator.lists[DEFAULT_LIST_ID].members.values()
            return {
                "member": [
                    str(m["merge_fields"]["DONORID"]) for m in members if m["merge_fields"].get("DONORID")
                ]
            }
        if destination == "braze":
            users = list(emulator.users.values())
            return {
                "user": [str(u["external_id"]) for u in users if u.get("external_id")],
                "donation_event": [
                    str(e["properties"]["gift_key"])
                    for u in users
                    for e in u["events"]
                    if isinstance(e.get("properties"), dict) and e["properties"].get("gift_key")
                ],
            }
        events: dict[str, list[str]] = {}
        for delivery in emulator.deliveries:
            if delivery["hook"] == "events" and "text" in delivery:
                body = json.loads(delivery["text"])
                events.setdefault(str(body["type"]).replace(".", "_"), []).append(str(body["id"]))
        return events


@dataclass
class EntityLedger:
    """One destination entity: what became of every record the outbox was given.

    :param landed: keys whose latest outbox row succeeded.
    :param dead: keys whose latest row is dead, with the class of their open dead letter (None:
        no open dead letter -- a record lost from the accounting).
    :param scheduled: keys pending with their next attempt in the future (the retry ladder, a
        rate-limit window, a dependency's wait).
    :param due: keys pending and due now: left for the next run by a push that stopped (a
        rate-limit window, the breaker, the deadline).
    :param waiting_dependency: the pending keys (scheduled or due) that wait for a record they
        depend on to land (not a retry: no attempt was made).
    :param behind_breaker: keys pending and due whose destination's breaker is open until a probe
        in the future: scheduled, by the breaker rather than the ladder.
    :param in_flight: keys claimed and not answered (after every push has returned: a leak).
    :param withdrawn: keys whose every row was canceled (superseded, blocked by the gate).
    :param held: keys the emulator holds (None: the emulator is not read for this entity).
    :param one_record_per_email: landed keys the destination keeps as another donor's record
        because it keys records by email (Mailchimp: two donors sharing an address are one
        member, holding the donor id pushed last).
    """

    destination: str
    entity: str
    landed: set[str] = field(default_factory=set)
    dead: dict[str, str | None] = field(default_factory=dict)
    scheduled: set[str] = field(default_factory=set)
    due: set[str] = field(default_factory=set)
    behind_breaker: set[str] = field(default_factory=set)
    waiting_dependency: set[str] = field(default_factory=set)
    in_flight: set[str] = field(default_factory=set)
    withdrawn: set[str] = field(default_factory=set)
    held: list[str] | None = None
    one_record_per_email: set[str] = field(default_factory=set)

    def keys(self) -> set[str]:
        """Every key the outbox was given."""
        return (
            self.landed
            | set(self.dead)
            | self.scheduled
            | self.due
            | self.behind_breaker
            | self.in_flight
            | self.withdrawn
        )

    @property
    def records(self) -> int:
        """Distinct record keys the outbox was given."""
        return len(self.keys())

    @property
    def duplicates(self) -> int:
        """Keys held more than once (each extra copy counted)."""
        return 0 if self.held is None else len(self.held) - len(set(self.held))

    @property
    def missing(self) -> set[str]:
        """Landed keys the emulator does not hold."""
        return set() if self.held is None else self.landed - set(self.held) - self.one_record_per_email

    @property
    def strays(self) -> set[str]:
        """Keys the emulator holds that did not land according to the outbox."""
        return set() if self.held is None else set(self.held) - self.landed

    def counts(self) -> dict[str, Any]:
        """Return the ledger as counts (JSON-ready, no keys)."""
        return {
            "records": self.records,
            "landed": len(self.landed),
            "dead_letters": len(self.dead),
            "dead_letters_by_class": dict(Counter(str(c) for c in self.dead.values())),
            "scheduled": len(self.scheduled),
            "waiting_dependency": len(self.waiting_dependency),
            "due": len(self.due),
            "behind_breaker": len(self.behind_breaker),
            "in_flight": len(self.in_flight),
            "withdrawn": len(self.withdrawn),
            "held": None if self.held is None else len(self.held),
            "duplicates": self.duplicates,
            "missing": len(self.missing),
            "one_record_per_email": len(self.one_record_per_email),
            "strays": len(self.strays),
        }


@dataclass
class Ledger:
    """Every destination entity's :class:`EntityLedger`, and the push log's duplicate successes."""

    entities: dict[tuple[str, str], EntityLedger]
    #: outbox rows with more than one successful push attempt
    double_successes: int
    #: record keys with more than one succeeded outbox row of the same payload
    repeated_payloads: int

    def entity(self, destination: str, entity: str) -> EntityLedger:
        """Return one entity's ledger (an empty one when the outbox never had it)."""
        return self.entities.get((destination, entity)) or EntityLedger(destination, entity)

    def total(self, name: str) -> int:
        """Sum one count (``landed``, ``duplicates``...) over entities."""
        return sum(int(e.counts()[name] or 0) for e in self.entities.values())

    def as_json(self) -> dict[str, dict[str, Any]]:
        """Return ``{"destination.entity": counts}``."""
        return {f"{d}.{e}": ledger.counts() for (d, e), ledger in sorted(self.entities.items())}


_LATEST = """
SELECT DISTINCT ON (o.destination, o.entity, o.record_key)
       o.destination, o.entity, o.record_key, o.state, o.next_attempt_at > now() AS future, o.error_code,
       (SELECT dl.error_class FROM sync.dead_letters dl WHERE dl.outbox_id = o.outbox_id
         AND dl.status = 'open' ORDER BY dl.dead_letter_id DESC LIMIT 1) AS dead_class
FROM sync.outbox o
ORDER BY o.destination, o.entity, o.record_key, (o.state = 'canceled'), o.outbox_id DESC
"""


def account(conn: psycopg.Connection, box: Sandbox | None = None) -> Ledger:
    """Return the ledger of every outbox record, with what the emulators hold when ``box`` is given.

    A key's fate is its latest row that was not canceled (canceled rows were replaced by a newer
    version, or withdrawn); a key with only canceled rows is ``withdrawn``.
    """
    entities: dict[tuple[str, str], EntityLedger] = {}
    blocked = {
        str(r[0])
        for r in conn.execute(
            "SELECT destination FROM sync.circuit_breakers WHERE state <> 'closed' AND next_probe_at > now()"
        )
    }
    for destination, entity, key, state, future, code, dead_class in conn.execute(_LATEST).fetchall():
        ledger = entities.setdefault((destination, entity), EntityLedger(destination, entity))
        if state == "succeeded":
            ledger.landed.add(key)
        elif state == "dead":
            ledger.dead[key] = dead_class
        elif state == "canceled":
            ledger.withdrawn.add(key)
        elif state == "pending" and future:
            ledger.scheduled.add(key)
        elif state == "pending":
            (ledger.behind_breaker if destination in blocked else ledger.due).add(key)
        else:
            ledger.in_flight.add(key)
        if state == "pending" and code == DEPENDENCY_WAITING:
            ledger.waiting_dependency.add(key)
    doubles = conn.execute(
        "SELECT count(*) FROM (SELECT outbox_id FROM sync.push_log WHERE outcome = 'succeeded'"
        " GROUP BY outbox_id HAVING count(*) > 1) x"
    ).fetchone()
    repeated = conn.execute(
        "SELECT count(*) FROM (SELECT destination, entity, record_key, payload_sha256 FROM sync.outbox"
        " WHERE state = 'succeeded' GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) x"
    ).fetchone()
    conn.commit()
    if box is not None:
        for destination in EMULATOR_OF:
            for entity, keys in _split_shared(destination, held(box, destination), entities).items():
                entities.setdefault((destination, entity), EntityLedger(destination, entity)).held = keys
        members = entities.get(("mailchimp", "member"))
        if members is not None:
            members.one_record_per_email = _sharing_an_email(conn, box, members)
    return Ledger(entities, int(doubles[0]) if doubles else 0, int(repeated[0]) if repeated else 0)


def _sharing_an_email(conn: psycopg.Connection, box: Sandbox, members: EntityLedger) -> set[str]:
    """Return the landed Mailchimp keys not held because a member with the donor's email holds
    another donor's id (emails are compared in the database and the emulator, never returned)."""
    from sandbox.emulators.mailchimp import DEFAULT_LIST_ID

    absent = sorted(members.landed - set(members.held or []))
    if not absent:
        return set()
    emulator = box["mailchimp"].emulator
    with emulator.lock:
        addresses = [
            str(m["email_address"]).lower() for m in emulator.lists[DEFAULT_LIST_ID].members.values()
        ]
    rows = conn.execute(
        "SELECT donor_id::text FROM core.donors WHERE donor_id = ANY(%s::uuid[]) AND lower(email) = ANY(%s)",
        (absent, addresses),
    ).fetchall()
    conn.commit()
    return {str(r[0]) for r in rows}


def _split_shared(
    destination: str, found: dict[str, list[str]], entities: Mapping[tuple[str, str], EntityLedger]
) -> dict[str, list[str]]:
    """Give each held key of an sObject several entities share (accounts) to the entity that has it.

    A key none of them has stays with the first entity, where it counts as a stray.
    """
    if destination != "salesforce":
        return found
    by_object: dict[str, list[str]] = {}
    for entity, sobject in salesforce_objects().items():
        by_object.setdefault(sobject, []).append(entity)
    out = dict(found)
    for sharing in (names for names in by_object.values() if len(names) > 1):
        owned = {e: entities[(destination, e)].keys() for e in sharing if (destination, e) in entities}
        for entity in sharing:
            out[entity] = []
        for key in found[sharing[0]]:
            out[next((e for e, keys in owned.items() if key in keys), sharing[0])].append(key)
    return out


def problems(ledger: Ledger) -> list[str]:
    """Return what breaks exactly-once and no-loss (empty when all is well).

    Every key held is held once; every landed key is held; nothing is held that did not land;
    every dead key has an open dead letter with a class; nothing is left in flight; no push
    succeeded twice. A record pending and due is not a problem: the push that left it stopped
    (rate-limit window, breaker, deadline) and the next run takes it.
    """
    found: list[str] = []
    for (destination, entity), e in sorted(ledger.entities.items()):
        where = f"{destination}.{entity}"
        if e.duplicates:
            found.append(f"{where}: {e.duplicates} duplicate record(s) at the destination")
        if e.missing:
            found.append(f"{where}: {len(e.missing)} landed record(s) the destination does not hold")
        if e.strays and e.records:
            found.append(f"{where}: {len(e.strays)} record(s) held that did not land")
        no_class = sum(1 for c in e.dead.values() if not c)
        if no_class:
            found.append(f"{where}: {no_class} dead record(s) without an open dead letter and its class")
        if e.in_flight:
            found.append(f"{where}: {len(e.in_flight)} record(s) left in flight")
    if ledger.double_successes:
        found.append(f"{ledger.double_successes} outbox row(s) pushed successfully twice")
    if ledger.repeated_payloads:
        found.append(f"{ledger.repeated_payloads} record(s) landed twice with the same payload")
    return found
