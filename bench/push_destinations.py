"""Benchmark the push stage: ``--size`` donors with their gifts to the HubSpot and Salesforce emulators.

A fresh database gets ``--size`` golden donors (1% organizations; 30% of the people paired into
two-member households), 1 to 3 gifts each (2.0 on average; 5% of donors give monthly through a
recurring plan) -- synthesized with numpy and loaded with COPY, not timed. Then, for each
destination in turn (sequentially: the emulators run in this process, on the same two cores):

- queue: :func:`donor_sync.delivery.run.queue` renders core with the shipped mapping
  (include/mappings/destinations/<destination>.yaml) into sync.outbox;
- push: :func:`donor_sync.delivery.run.push` drives the push engine through the connector, built
  from the library as the hooks build it, against the emulator over real HTTPS;
- re-run: queue again with nothing changed (the hourly incremental run, then the nightly full
  recompute) and push with a fresh connector: nothing may be queued and no write may reach the
  emulator.

HubSpot runs at the emulator's default limit, 100 requests per rolling 10 s per token (as a
private app), daily limit 250,000. The figure is throughput against that ceiling, computed over the
whole push (first claim to last result written): requests / (elapsed / 10 s) / 100, floor 0.95;
no record may be lost to a 429 (every queued record lands; no dead letter).

Salesforce runs at the emulator's defaults (100,000 API calls per rolling 24 h). Above 2,000 due
records per entity the connector uses Bulk API 2.0 jobs of up to 10,000 records. The figure is
API calls used (the emulator's api-usage counter, the one ``Sforce-Limit-Info`` reports) beside
the minimum possible: per entity, full jobs of the connector's job size times the calls no job
can do without -- create, upload, close (UploadComplete), one poll, successfulResults -- and, for
the remainder, the cheaper of one more job or Collections calls of 200. failedResults and
unprocessedrecords are not counted as irreducible: the poll that finds the job complete already
reports numberRecordsFailed and numberRecordsProcessed, so when those say "no failures, all
processed" the two reads return header-only CSVs (the minimum counting them is reported too). The
token call is an HTTP request but not an API call (it does not count against the allocation).

Reported as JSON in bench/results/push_destinations.json: wall times, requests by endpoint, 429s,
throughput, calls against the minimum, records landed against records queued (checked record by
record in the emulators' stores, associations included), dead letters, the re-run's queued
records and write requests, and this process's peak RSS (the emulators, with every record they
hold, included). Run from the repository root: ``.venv/bin/python bench/push_destinations.py``
(``--size 2000`` for a quick check; the full size takes about 15 minutes, most of it HubSpot's
rate limit).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import resource
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

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
    random_uuids,
    write_result,
)
from aggregates import _copy

DESTINATIONS = ("hubspot", "salesforce")
#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 300
SHOWN = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
HUBSPOT_TOKEN = "pat-na1-sandbox"  # the emulator's default private-app token
DB_NAME = "ds_bench_push_destinations"
#: HubSpot's floor: share of the rate-limit ceiling a long push must reach.
HUBSPOT_FLOOR = 0.95
#: Bulk API 2.0 calls no job can do without (see the module docstring), and those the connector
#: also makes on every job.
BULK_IRREDUCIBLE = ("job_create", "upload", "close", "poll", "successful_results")
BULK_RESULT_READS = ("failed_results", "unprocessed_records")
COLLECTIONS_MAX = 200
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: HubSpot answers reads of many records by POST: they write nothing.
_HUBSPOT_READ_BY_POST = re.compile(r"/batch/read$|/search$")
_SF_TOKEN = re.compile(r"^/services/oauth2/token/?$")

log = logging.getLogger("bench.push_destinations")


# -- synthetic core ---------------------------------------------------------------------------------


def _timestamps(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC"))


def synthesize(conn: Any, donors: int, seed: int = 23) -> dict[str, int]:
    """Load donors, households, plans and gifts (COPY, then set-based SQL); return the counts.

    Everything was last changed an hour ago, so an hourly run's window (watermark minus its
    overlap) holds only what changed since, as in production.
    """
    rng = np.random.default_rng(seed)
    loaded_at = np.datetime64(datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1), "s")
    ids = random_uuids(rng, donors)
    index = np.arange(donors)
    is_org = rng.random(donors) < 0.01
    first = np.array(["Ann", "Bob", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo"], dtype=object)
    cities = np.array(["Springfield", "Riverton", "Lakeside", "Fairview", "Madison"], dtype=object)
    regions = np.array(["IL", "OR", "MN", "TX", "WI"], dtype=object)
    place = rng.integers(0, len(cities), donors)
    last = np.char.add("Surname", rng.integers(0, 50_000, donors).astype(str)).astype(object)
    _copy(
        conn,
        ("core", "donors"),
        {
            "donor_id": ids,
            "first_name": np.where(is_org, None, first[rng.integers(0, len(first), donors)]),
            "last_name": np.where(is_org, None, last),
            "is_organization": is_org,
            "organization_name": np.where(is_org, np.char.add("Foundation ", index.astype(str)), None),
            "email": np.char.add(np.char.add("donor", index.astype(str)), "@bench.example.org").astype(
                object
            ),
            "phone": np.char.add("+1202555", np.char.zfill((index % 10_000).astype(str), 4)).astype(object),
            "address_line1": np.char.add(rng.integers(1, 9_999, donors).astype(str), " Main St").astype(
                object
            ),
            "city": cities[place],
            "region": regions[place],
            "postal_code": rng.integers(10_000, 99_999, donors).astype(str).astype(object),
            "country_code": np.full(donors, "US", dtype=object),
            "created_at": _timestamps(np.full(donors, loaded_at)),
            "updated_at": _timestamps(np.full(donors, loaded_at)),
        },
    )
    # Households: 30% of the people, in pairs (the first of each pair is the primary member).
    people = rng.permutation(index[~is_org])
    paired = people[: (int(len(people) * 0.3) // 2) * 2].reshape(-1, 2)
    households = len(paired)
    if households:
        household_ids = random_uuids(rng, households)
        _copy(
            conn,
            ("core", "households"),
            {
                "household_id": household_ids,
                "name": np.char.add(last[paired[:, 0]].astype(str), " Household").astype(object),
                "address_line1": np.char.add(
                    rng.integers(1, 9_999, households).astype(str), " Oak Ave"
                ).astype(object),
                "city": cities[place[paired[:, 0]]],
                "region": regions[place[paired[:, 0]]],
                "postal_code": rng.integers(10_000, 99_999, households).astype(str).astype(object),
                "country_code": np.full(households, "US", dtype=object),
                "created_at": _timestamps(np.full(households, loaded_at)),
                "updated_at": _timestamps(np.full(households, loaded_at)),
            },
        )
        _copy(
            conn,
            ("core", "household_members"),
            {
                "donor_id": ids[paired.reshape(-1)],
                "household_id": np.repeat(household_ids, 2),
                "role": np.tile(np.array(["primary", "member"], dtype=object), households),
                "linked_by": np.full(2 * households, "bench", dtype=object),
                "linked_at": _timestamps(np.full(2 * households, loaded_at)),
            },
        )
    # 5% of donors give monthly: one plan each, started on their first gift.
    recurring = rng.random(donors) < 0.05
    per_donor = rng.choice(np.array([1, 2, 3]), donors, p=[0.3, 0.4, 0.3])
    gifts = int(per_donor.sum())
    owner = np.repeat(index, per_donor)
    nth = np.arange(gifts) - np.repeat(np.cumsum(per_donor) - per_donor, per_donor)
    start = datetime(2023, 1, 1, tzinfo=UTC).timestamp()
    span = datetime(2026, 1, 1, tzinfo=UTC).timestamp() - start
    first_gift = start + rng.random(donors) * span * 0.9
    at_s = np.where(
        recurring[owner],
        first_gift[owner] + nth * 30.4 * 86_400,  # monthly installments
        start + rng.random(gifts) * span,
    )
    at = at_s.astype("datetime64[s]")
    minor = rng.choice(
        np.array([500, 1000, 2500, 5000, 10000, 25000, 100000]),
        gifts,
        p=[0.1, 0.2, 0.3, 0.2, 0.12, 0.06, 0.02],
    ).astype(np.int64)
    minor = np.where(recurring[owner], 2500, minor)
    status = rng.choice(
        np.array(["succeeded", "refunded", "failed", "pending"], dtype=object),
        gifts,
        p=[0.93, 0.02, 0.03, 0.02],
    )
    plan_keys = np.char.add("stripe:sub_bench_", index.astype(str)).astype(object)
    plan_rows = index[recurring]
    _copy(
        conn,
        ("core", "recurring_plans"),
        {
            "plan_key": plan_keys[plan_rows],
            "donor_id": ids[plan_rows],
            "source": np.full(len(plan_rows), "stripe", dtype=object),
            "source_id": np.char.add("sub_bench_", plan_rows.astype(str)).astype(object),
            "amount": np.full(len(plan_rows), "25", dtype=object),
            "currency": np.full(len(plan_rows), "USD", dtype=object),
            "currency_exponent": np.full(len(plan_rows), 2, dtype=np.int16),
            "amount_minor": np.full(len(plan_rows), 2500, dtype=np.int64),
            "interval_unit": np.full(len(plan_rows), "month", dtype=object),
            "status": np.full(len(plan_rows), "active", dtype=object),
            "started_at": _timestamps(first_gift[plan_rows].astype("datetime64[s]")),
            "created_at": _timestamps(np.full(len(plan_rows), loaded_at)),
            "updated_at": _timestamps(np.full(len(plan_rows), loaded_at)),
        },
    )
    _copy(
        conn,
        ("core", "gifts"),
        {
            "gift_key": np.char.add("stripe:ch_bench_", np.arange(gifts).astype(str)).astype(object),
            "donor_id": ids[owner],
            "source": np.full(gifts, "stripe", dtype=object),
            "amount": (minor / 100).astype(str).astype(object),
            "currency": np.full(gifts, "USD", dtype=object),
            "currency_exponent": np.full(gifts, 2, dtype=np.int16),
            "amount_minor": minor,
            "gift_at": _timestamps(at),
            "gift_date": at.astype("datetime64[D]"),
            "status": status,
            "refunded_amount": np.where(status == "refunded", (minor / 100).astype(str), "0").astype(object),
            "payment_method": np.full(gifts, "card", dtype=object),
            "created_at": _timestamps(np.full(gifts, loaded_at)),
            "updated_at": _timestamps(np.full(gifts, loaded_at)),
        },
    )
    # A plan's gifts are its installments (the UPDATE sets updated_at by trigger: put it back).
    conn.execute(
        "UPDATE core.gifts g SET recurring_plan_id = p.recurring_plan_id, updated_at = p.updated_at"
        " FROM core.recurring_plans p WHERE p.donor_id = g.donor_id"
    )
    conn.execute(
        "ANALYZE core.donors; ANALYZE core.households; ANALYZE core.household_members;"
        " ANALYZE core.recurring_plans; ANALYZE core.gifts"
    )
    conn.commit()
    return {
        "donors": donors,
        "organizations": int(is_org.sum()),
        "households": households,
        "recurring_plans": len(plan_rows),
        "gifts": gifts,
    }


# -- instruments ------------------------------------------------------------------------------------


@dataclass
class TimedConnector:
    """The connector, unchanged, with each :meth:`push` call timed (vendor time vs engine time)."""

    inner: Any
    calls: list[tuple[str, int, float, float]] = field(default_factory=list)

    @property
    def destination(self) -> str:
        return str(self.inner.destination)

    def entity_order(self) -> Sequence[str]:
        return list(self.inner.entity_order())

    def batch_size(self, entity: str, operation: Any, pending: int) -> int:
        return int(self.inner.batch_size(entity, operation, pending))

    def quota(self) -> Any:
        return self.inner.quota()

    def push(self, entity: str, operation: Any, records: Sequence[Any]) -> list[Any]:
        started = time.perf_counter()
        try:
            return list(self.inner.push(entity, operation, records))
        finally:
            self.calls.append((entity, len(records), started, time.perf_counter()))

    def split(self, elapsed_s: float) -> dict[str, float]:
        """Return seconds inside the connector (vendor calls, pacing) and outside it (engine, DB)."""
        inside = sum(end - start for _, _, start, end in self.calls)
        return {"in_connector_s": round(inside, 2), "in_engine_s": round(elapsed_s - inside, 2)}


def _request_window(emulator: Any, mark: int) -> list[dict[str, Any]]:
    """Return the emulator's requests logged since ``mark`` (the log is unbounded here)."""
    with emulator.lock:
        return list(emulator.request_log)[mark:]


def _hubspot_endpoint(entry: dict[str, Any]) -> str:
    path = re.sub(r"/\d+(?=/|$)", "/{id}", str(entry["path"]))
    return f"{entry['method']} {path}"


_SF_ENDPOINTS: tuple[tuple[str, str | None, re.Pattern[str]], ...] = (
    ("token", "POST", _SF_TOKEN),
    ("versions", "GET", re.compile(r"^/services/data/?$")),
    ("job_create", "POST", re.compile(r"/jobs/ingest/?$")),
    ("upload", "PUT", re.compile(r"/jobs/ingest/[^/]+/batches/?$")),
    ("close", "PATCH", re.compile(r"/jobs/ingest/[^/]+/?$")),
    ("poll", "GET", re.compile(r"/jobs/ingest/[^/]+/?$")),
    ("successful_results", "GET", re.compile(r"/successfulResults/?$")),
    ("failed_results", "GET", re.compile(r"/failedResults/?$")),
    ("unprocessed_records", "GET", re.compile(r"/unprocessedrecords/?$")),
    ("soql_query", "GET", re.compile(r"/query(/[^/]+)?/?$")),
    ("collections", None, re.compile(r"/composite/sobjects")),
)


def _salesforce_endpoint(entry: dict[str, Any]) -> str:
    for name, method, pattern in _SF_ENDPOINTS:
        if (method is None or entry["method"] == method) and pattern.search(str(entry["path"])):
            return name
    return f"other {entry['method']} {entry['path']}"


def _endpoint(destination: str, entry: dict[str, Any]) -> str:
    return _hubspot_endpoint(entry) if destination == "hubspot" else _salesforce_endpoint(entry)


def _is_write(destination: str, entry: dict[str, Any]) -> bool:
    """Whether a logged request may change the destination (OAuth tokens and reads by POST excluded)."""
    if entry["method"] not in WRITE_METHODS:
        return False
    path = str(entry["path"])
    if destination == "hubspot":
        return not _HUBSPOT_READ_BY_POST.search(path)
    return not _SF_TOKEN.search(path)


def _steady_ratio(entries: list[dict[str, Any]], per_interval: int, interval_s: float) -> float | None:
    """Return the request rate after the first interval (the burst the empty window allows) vs the limit."""
    times = sorted(float(e["at"]) for e in entries)
    if len(times) < 2 or times[-1] - times[0] <= 2 * interval_s:
        return None
    after = [t for t in times if t >= times[0] + interval_s]
    rate = (len(after) - 1) / (after[-1] - after[0])
    return round(rate / (per_interval / interval_s), 4)


def _peak_window(entries: list[dict[str, Any]], interval_s: float) -> int:
    """Return the most requests any rolling window of ``interval_s`` held (at arrival times)."""
    times = sorted(float(e["at"]) for e in entries)
    best, low = 0, 0
    for high, t in enumerate(times):
        while t - times[low] >= interval_s:
            low += 1
        best = max(best, high - low + 1)
    return best


# -- database checks --------------------------------------------------------------------------------


def _outbox_states(conn: Any, destination: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT state::text, count(*) FROM sync.outbox WHERE destination = %s GROUP BY 1", (destination,)
    ).fetchall()
    return {str(state): int(n) for state, n in rows}


def _dead_letters(conn: Any, destination: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM sync.dead_letters WHERE destination = %s", (destination,)
    ).fetchone()
    return int(row[0])


def _queued_keys(conn: Any, destination: str) -> dict[str, list[tuple[str, Any]]]:
    """Return ``entity -> [(record_key, depends_on)]`` of every outbox row of ``destination``."""
    found: dict[str, list[tuple[str, Any]]] = {}
    for entity, key, depends_on in conn.execute(
        "SELECT entity, record_key, depends_on FROM sync.outbox WHERE destination = %s", (destination,)
    ):
        found.setdefault(str(entity), []).append((str(key), depends_on))
    return found


def _queued_statuses(conn: Any) -> list[list[dict[str, Any]]]:
    """Return the v4 inputs of every queued HubSpot subscription-status record (one list per donor)."""
    from donor_sync.delivery.connectors.hubspot.subscriptions_write import ENTITY, status_inputs

    return [
        status_inputs(payload)
        for (payload,) in conn.execute(
            "SELECT payload FROM sync.outbox WHERE destination = 'hubspot' AND entity = %s", (ENTITY,)
        )
    ]


def _remote_ids(conn: Any, destination: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT entity, count(*) FROM sync.destination_state WHERE destination = %s AND remote_id IS NOT NULL"
        " GROUP BY 1",
        (destination,),
    ).fetchall()
    return {str(entity): int(n) for entity, n in rows}


# -- emulator checks --------------------------------------------------------------------------------


def _hubspot_landed(
    emulator: Any, queued: dict[str, list[tuple[str, Any]]], statuses: list[list[dict[str, Any]]]
) -> dict[str, dict[str, int]]:
    """Check each queued HubSpot record in the emulator's store: contact, deal, deal-contact link,
    and each donor's subscription statuses (every type in its payload holds the pushed state)."""
    with emulator.lock:
        store, links = emulator.store, emulator.associations.links
        contacts_type, deals_type = store.resolve("contacts"), store.resolve("deals")
        contact_ids = {
            r.properties.get("donor_sync_id"): r.id
            for r in store.of(contacts_type).values()
            if not r.archived
        }
        deal_ids = {
            r.properties.get("donor_sync_gift_key"): r.id
            for r in store.of(deals_type).values()
            if not r.archived
        }
        linked = 0
        for _, depends_on in queued.get("deal_contact_association", []):
            refs = {ref["entity"]: ref["record_key"] for ref in depends_on or []}
            deal_id, contact_id = deal_ids.get(refs.get("deal")), contact_ids.get(refs.get("contact"))
            targets = links.get((deals_type.type_id, deal_id, contacts_type.type_id), {})
            linked += bool(deal_id and contact_id and targets.get(contact_id))
        held = emulator.subscriptions.statuses
        statuses_landed = sum(
            all(
                held.get(str(i["subscriberIdString"]).lower(), {})
                .get(str(i["subscriptionId"]), {})
                .get("status")
                == i["statusState"]
                for i in inputs
            )
            for inputs in statuses
        )
    keys = {e: {k for k, _ in rows} for e, rows in queued.items()}
    found = {
        "contact": {
            "queued": len(keys.get("contact", ())),
            "landed": len(keys.get("contact", set()) & set(contact_ids)),
        },
        "deal": {"queued": len(keys.get("deal", ())), "landed": len(keys.get("deal", set()) & set(deal_ids))},
        "deal_contact_association": {
            "queued": len(queued.get("deal_contact_association", ())),
            "landed": linked,
        },
    }
    if statuses:  # donors with an email choice (docs/connectors/hubspot.md)
        found["subscription_statuses"] = {"queued": len(statuses), "landed": statuses_landed}
    return found


def _salesforce_landed(
    emulator: Any, queued: dict[str, list[tuple[str, Any]]], entities: dict[str, tuple[str, str]]
) -> dict[str, dict[str, int]]:
    """Check each queued Salesforce record in the emulator's store by its external id."""
    out: dict[str, dict[str, int]] = {}
    with emulator.lock:
        held: dict[tuple[str, str], set[str]] = {}
        for sobject, ext in set(entities.values()):
            held[(sobject, ext)] = {
                str(r[ext]).lower() for r in emulator.store.tables.get(sobject, {}).values() if r.get(ext)
            }
    for entity, rows in queued.items():
        keys = {k.lower() for k, _ in rows}
        out[entity] = {"queued": len(keys), "landed": len(keys & held.get(entities[entity], set()))}
    return out


# -- the run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What one benchmark run does (defaults: the issue's figures)."""

    size: int = 100_000
    seed: int = 23
    destinations: tuple[str, ...] = DESTINATIONS
    #: HubSpot's rolling limit in the emulator (requests, interval ms): its default, 100 per 10 s.
    hubspot_limit: tuple[int, int] = (100, 10_000)
    #: Salesforce connector: due records above which Bulk jobs are used, and records per job.
    bulk_threshold: int | None = None
    bulk_job_size: int | None = None
    bulk_first_poll_wait_s: float | None = None
    db_name: str = DB_NAME


@dataclass
class Outcome:
    """What :func:`run` measured: the result file's parameters, metrics and comparisons."""

    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    compared: list[dict[str, Any]] = field(default_factory=list)

    def value(self, name: str) -> Any:
        """Return the metric ``name`` (its whole entry)."""
        return next(m for m in self.metrics if m["name"] == name)


@contextmanager
def _sandbox(options: Options, tls_dir: Path) -> Iterator[Any]:
    from sandbox.registry import build_sandbox

    max_requests, interval_ms = options.hubspot_limit
    box = build_sandbox(
        options.destinations,
        tls_dir=tls_dir,
        fixed_ports=False,
        settings={"hubspot": {"rate_limit_max": max_requests, "rate_limit_interval_ms": interval_ms}},
    )
    for emulator in box.emulators:
        emulator.request_log = deque()  # unbounded: every request of the run is counted
    box.start()
    try:
        yield box
    finally:
        box.stop()


def _hubspot_connector(box: Any) -> Any:
    from donor_sync.delivery.connectors.hubspot.factory import connector_from_connection

    running = box["hubspot"]
    return connector_from_connection(
        running.base_url, None, HUBSPOT_TOKEN, {"ca_bundle": str(box.tls.ca_cert)}
    )


def salesforce_entities() -> dict[str, tuple[str, str]]:
    """Entity -> (sObject, external id field) of the shipped mapping (as the hook reads it)."""
    from donor_sync.delivery.mapping import load_destination, push_order

    return {
        o.entity: (o.object_name, o.external_id_field or "Id")
        for o in push_order(load_destination("salesforce"))
        if not o.is_association and o.object_name
    }


def _salesforce_connector(box: Any, options: Options) -> Any:
    from donor_sync.delivery.connectors.salesforce import (
        ClientCredentials,
        PollPolicy,
        SalesforceClient,
        SalesforceConnector,
    )
    from donor_sync.delivery.connectors.salesforce.connector import (
        DEFAULT_BULK_BATCH_SIZE,
        DEFAULT_BULK_THRESHOLD,
    )

    running = box["salesforce"]
    settings = running.emulator.settings
    client = SalesforceClient(
        ClientCredentials(settings["client_id"], settings["client_secret"], running.base_url),
        verify=str(box.tls.ca_cert),
    )
    poll = (
        PollPolicy() if options.bulk_first_poll_wait_s is None else PollPolicy(options.bulk_first_poll_wait_s)
    )
    return SalesforceConnector(
        client,
        entities=salesforce_entities(),
        bulk_threshold=options.bulk_threshold or DEFAULT_BULK_THRESHOLD,
        bulk_batch_size=options.bulk_job_size or DEFAULT_BULK_BATCH_SIZE,
        bulk_poll=poll,
    )


def _queue(conn: Any, destination: str, scope: Any = None) -> tuple[Any, float]:
    from donor_sync.delivery import run as delivery_run

    started = time.perf_counter()
    report = delivery_run.queue(conn, destination, run_id=None, actor="bench", scope=scope)
    return report, time.perf_counter() - started


def _push(conn: Any, connector: Any) -> tuple[Any, float]:
    from donor_sync.delivery import run as delivery_run

    started = time.perf_counter()
    report = delivery_run.push(conn, connector, run_id=None, worker_id="bench")
    return report, time.perf_counter() - started


def _queued_by_entity(report: Any) -> dict[str, int]:
    return {entity: counts.queued for entity, counts in report.entities.items()}


def _rerun(
    conn: Any, destination: str, emulator: Any, make_connector: Callable[[], Any], outcome: Outcome
) -> None:
    """Queue again with nothing changed (incremental, then full) and push: no write may go out."""
    from donor_sync.delivery.outbox import Scope

    mark = len(emulator.request_log)
    incremental, incremental_s = _queue(conn, destination)
    full, full_s = _queue(conn, destination, Scope.full())
    connector = make_connector()  # a new run builds its own connector
    pushed, push_s = _push(conn, connector)
    entries = _request_window(emulator, mark)
    writes = [e for e in entries if _is_write(destination, e)]
    print(
        f"{destination} re-run: queued {incremental.queued} (incremental) + {full.queued} (full), "
        f"pushed {pushed.total('pushed')}, {len(entries)} request(s), {len(writes)} write(s)",
        flush=True,
    )
    outcome.metrics += [
        metric(
            f"{destination}_rerun_queued",
            incremental.queued + full.queued,
            "records",
            incremental_queued=incremental.queued,
            incremental_unchanged=incremental.unchanged,
            incremental_queue_s=round(incremental_s, 2),
            full_queued=full.queued,
            full_unchanged=full.unchanged,
            full_queue_s=round(full_s, 2),
            pushed=pushed.total("pushed"),
            push_s=round(push_s, 2),
        ),
        metric(
            f"{destination}_rerun_write_requests",
            len(writes),
            "requests",
            requests_total=len(entries),
            requests_by_endpoint=dict(Counter(_endpoint(destination, e) for e in entries)),
            note="POST/PATCH/PUT/DELETE reaching the emulator, OAuth tokens and HubSpot reads by POST "
            "excluded",
        ),
    ]
    outcome.compared.append(
        {
            "name": f"{destination}_rerun_makes_no_write",
            "value": len(writes),
            "expected": 0,
            "queued": incremental.queued + full.queued,
            "ok": len(writes) == 0 and incremental.queued + full.queued == 0,
        }
    )


def bench_hubspot(conn: Any, box: Any, options: Options, outcome: Outcome) -> None:
    """Queue and push to HubSpot; measure throughput against the rate-limit ceiling; re-run."""
    emulator = box["hubspot"].emulator
    max_requests, interval_ms = options.hubspot_limit
    interval_s = interval_ms / 1000.0
    report, queue_s = _queue(conn, "hubspot")
    queued = _queued_by_entity(report)
    print(f"hubspot: queued {queued} in {queue_s:.1f} s", flush=True)
    connector = _hubspot_connector(box)
    setup_mark = len(emulator.request_log)
    connector.ensure_properties()
    setup_calls = len(emulator.request_log) - setup_mark
    daily_before = emulator.limiter.daily_used
    calls_before, limited_before = connector.usage.calls, connector.usage.rate_limited
    timed = TimedConnector(connector)
    mark = len(emulator.request_log)
    pushed, push_s = _push(conn, timed)
    entries = _request_window(emulator, mark)
    statuses = Counter(e["status"] for e in entries)
    usage = connector.usage
    calls = usage.calls - calls_before
    ceiling = max_requests / interval_s  # requests per second
    per_interval = calls / (push_s / interval_s)
    ratio = per_interval / max_requests
    steady = _steady_ratio(entries, max_requests, interval_s)
    states = _outbox_states(conn, "hubspot")
    dead = _dead_letters(conn, "hubspot")
    landed = _hubspot_landed(emulator, _queued_keys(conn, "hubspot"), _queued_statuses(conn))
    records = sum(queued.values())
    minimum = sum(math.ceil(n / 100) for n in queued.values())
    print(
        f"hubspot: pushed {pushed.total('pushed')} in {push_s:.1f} s, {calls} calls "
        f"({per_interval:.1f} per {interval_s:g} s, {ratio:.3f} of the ceiling), "
        f"429s {statuses.get(429, 0)}, landed {landed}, dead letters {dead}",
        flush=True,
    )
    outcome.parameters["hubspot"] = {
        "rate_limit": f"{max_requests} requests per {interval_ms} ms (emulator default)",
        "daily_limit": emulator.settings["daily_limit"],
        "batch_size": connector.settings.batch_size,
        "queued": queued,
    }
    outcome.metrics += [
        metric("hubspot_queue", round(queue_s, 2), "s", records=records, by_entity=queued),
        metric(
            "hubspot_push_wall_time",
            round(push_s, 2),
            "s",
            records=pushed.total("pushed"),
            records_per_second=round(pushed.total("pushed") / push_s, 1),
            **timed.split(push_s),
            note="first claim to last result written; ensure_properties (setup) not included",
        ),
        metric(
            "hubspot_requests",
            calls,
            "requests",
            emulator_logged=len(entries),
            emulator_counted=emulator.limiter.daily_used - daily_before,
            by_endpoint=dict(Counter(_hubspot_endpoint(e) for e in entries)),
            by_status={str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))},
            minimum_writes=minimum,
            setup_requests=setup_calls,
            note="connector.usage.calls during the push; minimum_writes = sum of ceil(records / 100) per "
            "entity; the contacts' extra batch/read fetches set_if_empty fields (lifecyclestage) before "
            "upserting",
        ),
        metric(
            "hubspot_429s",
            statuses.get(429, 0),
            "responses",
            connector_rate_limited=usage.rate_limited - limited_before,
            retries=usage.retries,
            throttled_s=round(usage.throttled_s, 1),
            peak_requests_in_any_window=_peak_window(entries, interval_s),
        ),
        metric(
            "hubspot_throughput",
            round(per_interval, 2),
            f"requests per {interval_s:g} s",
            ceiling=max_requests,
            ratio_to_ceiling=round(ratio, 4),
            steady_state_ratio=steady,
            note="over the whole push (calls / (wall time / interval)); steady_state_ratio: the "
            "emulator's arrival times after the first interval, whose empty window allows a burst",
        ),
        metric(
            "hubspot_records_landed",
            sum(v["landed"] for v in landed.values()),
            "records",
            queued=records,
            by_entity=landed,
            remote_ids=_remote_ids(conn, "hubspot"),
            outbox_states=states,
        ),
        metric("hubspot_dead_letters", dead, "records"),
    ]
    outcome.compared.append(
        {
            "name": "hubspot_throughput_vs_rate_limit_ceiling",
            "value": round(per_interval, 2),
            "unit": f"requests per {interval_s:g} s",
            "ceiling": max_requests,
            "ceiling_requests_per_second": ceiling,
            "ratio": round(ratio, 4),
            "floor": HUBSPOT_FLOOR,
            "meets_floor": ratio >= HUBSPOT_FLOOR,
            "no_record_lost": all(v["landed"] == v["queued"] for v in landed.values()) and dead == 0,
        }
    )
    _rerun(conn, "hubspot", emulator, lambda: _ensured(_hubspot_connector(box)), outcome)


def _ensured(connector: Any) -> Any:
    connector.ensure_properties()
    return connector


def _salesforce_minimum(queued: dict[str, int], threshold: int, job_size: int) -> dict[str, dict[str, int]]:
    """Return the fewest API calls per entity: full jobs, then the cheaper way for the remainder."""
    out: dict[str, dict[str, int]] = {}
    for entity, n in queued.items():
        if n <= threshold:
            jobs, rest = 0, n
        else:
            jobs, rest = divmod(n, job_size)
        strict = jobs * len(BULK_IRREDUCIBLE) + min(len(BULK_IRREDUCIBLE), math.ceil(rest / COLLECTIONS_MAX))
        reading = jobs * (len(BULK_IRREDUCIBLE) + len(BULK_RESULT_READS)) + min(
            len(BULK_IRREDUCIBLE) + len(BULK_RESULT_READS), math.ceil(rest / COLLECTIONS_MAX)
        )
        out[entity] = {
            "records": n,
            "full_jobs": jobs,
            "minimum": strict,
            "minimum_reading_all_results": reading,
        }
    return out


def bench_salesforce(conn: Any, box: Any, options: Options, outcome: Outcome) -> None:
    """Queue and push to Salesforce (Bulk API 2.0 above the threshold); calls against the minimum."""
    emulator = box["salesforce"].emulator
    report, queue_s = _queue(conn, "salesforce")
    queued = _queued_by_entity(report)
    print(f"salesforce: queued {queued} in {queue_s:.1f} s", flush=True)
    connector = _salesforce_connector(box, options)
    with emulator.lock:
        usage_before = emulator.api_usage()
    timed = TimedConnector(connector)
    mark = len(emulator.request_log)
    pushed, push_s = _push(conn, timed)
    entries = _request_window(emulator, mark)
    with emulator.lock:
        api_calls = emulator.api_usage() - usage_before
        jobs = len(emulator.jobs)
    quota = connector.quota()
    header_used = (
        quota.limit - quota.remaining
        if quota and quota.limit is not None and quota.remaining is not None
        else None
    )
    by_endpoint = Counter(_salesforce_endpoint(e) for e in entries)
    statuses = Counter(e["status"] for e in entries)
    minimum = _salesforce_minimum(queued, connector.bulk_threshold, connector.bulk_batch_size)
    least = sum(m["minimum"] for m in minimum.values())
    least_reading = sum(m["minimum_reading_all_results"] for m in minimum.values())
    states = _outbox_states(conn, "salesforce")
    dead = _dead_letters(conn, "salesforce")
    landed = _salesforce_landed(emulator, _queued_keys(conn, "salesforce"), connector.entities)
    records = sum(queued.values())
    bulk_calls = sum(by_endpoint.get(name, 0) for name in (*BULK_IRREDUCIBLE, *BULK_RESULT_READS))
    print(
        f"salesforce: pushed {pushed.total('pushed')} in {push_s:.1f} s, {api_calls} API calls "
        f"(minimum {least}), {jobs} bulk jobs, endpoints {dict(by_endpoint)}, landed {landed}, "
        f"dead letters {dead}",
        flush=True,
    )
    outcome.parameters["salesforce"] = {
        "daily_api_requests": emulator.settings["daily_api_requests"],
        "bulk_threshold": connector.bulk_threshold,
        "bulk_job_size": connector.bulk_batch_size,
        "queued": queued,
    }
    outcome.metrics += [
        metric("salesforce_queue", round(queue_s, 2), "s", records=records, by_entity=queued),
        metric(
            "salesforce_push_wall_time",
            round(push_s, 2),
            "s",
            records=pushed.total("pushed"),
            records_per_second=round(pushed.total("pushed") / push_s, 1),
            bulk_jobs=jobs,
            **timed.split(push_s),
        ),
        metric(
            "salesforce_api_calls",
            api_calls,
            "calls",
            sforce_limit_info_used=header_used,
            http_requests=len(entries),
            by_endpoint=dict(by_endpoint),
            bulk_job_calls=bulk_calls,
            by_status={str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))},
            note="the emulator's api-usage delta (what Sforce-Limit-Info reports); the token and the "
            "versions list are HTTP requests outside the allocation",
        ),
        metric(
            "salesforce_api_calls_minimum",
            least,
            "calls",
            minimum_reading_all_results=least_reading,
            by_entity=minimum,
            irreducible_per_job=list(BULK_IRREDUCIBLE),
            plus_token_requests=1,
        ),
        metric(
            "salesforce_records_landed",
            sum(v["landed"] for v in landed.values()),
            "records",
            queued=records,
            by_entity=landed,
            remote_ids=_remote_ids(conn, "salesforce"),
            outbox_states=states,
        ),
        metric("salesforce_dead_letters", dead, "records"),
    ]
    outcome.compared.append(
        {
            "name": "salesforce_api_calls_vs_minimum",
            "value": api_calls,
            "minimum": least,
            "ratio": round(api_calls / least, 3) if least else None,
            "minimum_reading_all_results": least_reading,
            "ratio_to_minimum_reading_all_results": round(api_calls / least_reading, 3)
            if least_reading
            else None,
            "bulk_job_calls": bulk_calls,
            "no_record_lost": all(v["landed"] == v["queued"] for v in landed.values()) and dead == 0,
        }
    )
    _rerun(conn, "salesforce", emulator, lambda: _salesforce_connector(box, options), outcome)


def run(options: Options, tls_dir: Path | None = None) -> Outcome:
    """Run the benchmark in a fresh database (dropped afterwards); return what it measured."""
    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade

    outcome = Outcome()
    url = bench_url(options.db_name)
    drop_database(url)
    ensure_database(url)
    upgrade(url)
    with tempfile.TemporaryDirectory(prefix="bench-push-tls-") as scratch:
        try:
            with (
                connect(url) as conn,
                AutoVacuum(url) as vacuum,
                _sandbox(options, tls_dir or Path(scratch)) as box,
            ):
                started = time.perf_counter()
                loaded = synthesize(conn, options.size, options.seed)
                setup_s = time.perf_counter() - started
                print(f"loaded {loaded} in {setup_s:.1f} s", flush=True)
                outcome.parameters.update({"size": options.size, "seed": options.seed, **loaded})
                for destination in options.destinations:
                    if destination == "hubspot":
                        bench_hubspot(conn, box, options, outcome)
                    else:
                        bench_salesforce(conn, box, options, outcome)
            outcome.parameters["autovacuum_stand_in"] = {
                "active": vacuum.active,
                "runs": dict(vacuum.runs),
                "note": "the server runs with autovacuum off; tables are vacuumed and analyzed as "
                "autovacuum's defaults would (every 60 s, by its thresholds)",
            }
        finally:
            drop_database(url)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    outcome.metrics += [
        metric("setup_synthesize_and_copy", round(setup_s, 1), "s", note="not part of any figure"),
        metric(
            "peak_rss_process",
            round(peak, 3),
            "GiB",
            note="this process: the pipeline and the in-process emulators holding every record pushed",
        ),
    ]
    return outcome


def sections(metrics: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the result's comparisons (the rate-limit ceiling, the fewest API calls), checks and
    README rows from the metrics and :attr:`Outcome.compared`."""
    compared, checks = [], []
    for entry in verdicts:
        rest = {k: v for k, v in entry.items() if k not in ("name", "value", "unit", "ratio")}
        if entry["name"] == "hubspot_throughput_vs_rate_limit_ceiling":
            compared.append(
                comparison(
                    f"HubSpot's rate limit, {entry['ceiling']} {entry['unit']} per token (the emulator's"
                    " default, as for a private app)",
                    label="the rate-limit ceiling",
                    metric="hubspot_throughput",
                    ours=entry["value"],
                    theirs=entry["ceiling"],
                    unit=entry["unit"],
                    better="higher",
                    goal=f">= {entry['floor']}",
                    **{k: v for k, v in rest.items() if k not in ("ceiling", "floor", "meets_floor")},
                )
            )
        elif entry["name"] == "salesforce_api_calls_vs_minimum":
            compared.append(
                comparison(
                    "the fewest API calls the same Bulk jobs and Collections calls allow (create, upload,"
                    " close, one poll and the successful results per job)",
                    label="the minimum",
                    metric="salesforce_api_calls",
                    ours=entry["value"],
                    theirs=entry["minimum"],
                    unit="calls",
                    better="lower",
                    **{k: v for k, v in rest.items() if k != "minimum"},
                )
            )
        else:
            extra = {k: v for k, v in entry.items() if k not in ("name", "ok")}
            checks.append(check(entry["name"], entry["ok"], **extra))
    names = {m["name"] for m in metrics}
    rows = []
    if "hubspot_push_wall_time" in names:
        rows.append(
            headline(
                "pushing {p.donors:,} donors with {p.gifts:,} gifts to the HubSpot emulator at"
                " {p.hubspot.rate_limit} ({hubspot_records_landed.queued:,} records: contacts, deals,"
                " deal-contact associations)",
                "{hubspot_push_wall_time:.0f} s, {hubspot_requests:,} requests: {hubspot_throughput}"
                " {hubspot_throughput.unit}; {hubspot_429s} responses 429, {hubspot_records_landed:,} of"
                " {hubspot_records_landed.queued:,} landed (each checked in the emulator),"
                " {hubspot_dead_letters} dead letters",
                ["hubspot_throughput"],
            )
        )
    if "salesforce_push_wall_time" in names:
        rows.append(
            headline(
                "pushing the same to the Salesforce emulator through Bulk API 2.0"
                " ({salesforce_records_landed.queued:,} records: contacts, household and organization"
                " accounts, recurring donations, opportunities)",
                "{salesforce_push_wall_time:.0f} s, {salesforce_push_wall_time.bulk_jobs} Bulk jobs;"
                " {salesforce_api_calls:,} API calls: {salesforce_api_calls.bulk_job_calls} job calls,"
                " {salesforce_api_calls.by_endpoint.collections} sObject Collections calls,"
                " {salesforce_api_calls.by_endpoint.soql_query:,} SOQL reads of set-only-if-empty fields"
                " (the known excess); the minimum reading every result set"
                " {salesforce_api_calls_minimum.minimum_reading_all_results}; {salesforce_records_landed:,}"
                " landed, {salesforce_dead_letters} dead letters",
                ["salesforce_api_calls"],
            )
        )
    reruns = [c["name"] for c in checks if c["name"].endswith("_rerun_makes_no_write")]
    if reruns:
        rows.append(
            headline(
                "re-running the push with nothing changed ("
                + " and ".join(SHOWN[n.removesuffix("_rerun_makes_no_write")] for n in reruns)
                + "; through the DAG too: tests/integration/test_donations_hourly_e2e.py)",
                " and ".join(f"{{{n.removesuffix('_makes_no_write')}_queued}}" for n in reruns)
                + " records queued (hourly and nightly full recompute); "
                + " and ".join(f"{{{n.removesuffix('_makes_no_write')}_write_requests}}" for n in reruns)
                + " write requests reaching the emulator",
                reruns,
                goal="nothing queued, no write",
            )
        )
    return {"metrics": metrics, "compared": compared, "checks": checks, "headlines": rows}


def main() -> None:
    """Run the benchmark and write bench/results/push_destinations.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="golden donors (gifts: about 2x)")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--only", choices=DESTINATIONS, action="append", help="one destination (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="log the pipeline at INFO")
    add_common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    options = Options(
        size=args.size,
        seed=args.seed,
        destinations=tuple(args.only or DESTINATIONS),
    )
    outcome = run(options)
    path = write_result(
        "push_destinations",
        outcome.parameters,
        **sections(outcome.metrics, outcome.compared),
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
