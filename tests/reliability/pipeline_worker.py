"""One stage of a sync run in its own process, for the crash tests to SIGKILL (``tests/reliability``).

It does what one task of a donations_hourly run does, without Airflow: open a database
connection, build what the stage talks to (a source's API client or a destination's connector,
pointed at an emulator over HTTPS), and call the library the task calls:

* ``extract SOURCE``: :func:`~donor_sync.sources.stripe.extract_stripe` (or Donorbox's, Classy's);
* ``standardize``: :func:`~donor_sync.standardize.run.standardize_run`, Stripe's expected mode
  read from the key as the task does; ``--chunk-size`` makes small chunks (each one committed);
* ``resolve``: :func:`~donor_sync.resolve.run.resolve_run`;
* ``queue DESTINATION``: :func:`donor_sync.delivery.run.queue`;
* ``push DESTINATION``: :func:`~donor_sync.delivery.push.push_destination`, with a short lease and
  dependency wait (as ``push_worker.py``) so a test can outwait a killed worker's lease;
* ``close``: what ``close_run`` does: advance the run's watermarks, mark the run successful.

The test process imports :func:`prepare` to re-run a stage in-process (a retried task, the next
run). The worker prints ``ready`` once the interpreter is up, the client built and the database
connected, then waits for ``go RUN_ID`` on stdin: start-up is slow on a busy machine, so workers
are started ahead and released at the instant the test chooses, and a worker started before a
run is opened learns its run id on release. Its database session is named after ``--worker-id``
(``application_name``). On success it prints one JSON line of counts (no payloads, no PII). Each
stage imports only what it needs (the extractors start without pandas), so a worker is quick to
start.

Usage::

    python tests/reliability/pipeline_worker.py DB_URL extract stripe --worker-id W1 \\
        --endpoint stripe=https://127.0.0.1:8443 --ca-bundle ca.pem
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

# Run as a script: the library lives in plugins/ (Airflow puts it on sys.path the same way).
_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(_ROOT / "plugins"), str(_ROOT)]

import psycopg  # noqa: E402

from donor_sync.db import connect  # noqa: E402
from donor_sync.observability import runs  # noqa: E402
from donor_sync.sources.watermarks import advance_from_run  # noqa: E402

if TYPE_CHECKING:
    from donor_sync.delivery.contracts import Connector
    from donor_sync.delivery.push import PushSettings
    from donor_sync.sources.extract import StreamResult

#: The source emulators' own test credentials (sandbox/emulators/*: default settings).
STRIPE_KEY = "sk_test_sandbox"
DONORBOX_LOGIN = ("api@sandbox.donor-sync.test", "sandbox-donorbox-key")
CLASSY_CLIENT = ("sandbox-classy-client", "sandbox-classy-secret")
CLASSY_ORGANIZATION = 1

STAGES = ("extract", "standardize", "resolve", "queue", "push", "close")
#: The shortest lease the push settings accept, and a dependency wait a test can outwait.
LEASE_SECONDS, DEPENDENCY_WAIT_SECONDS = 10, 1

#: One prepared stage: given a connection and the run, do the stage and return its counts.
Stage = Callable[[psycopg.Connection, UUID], dict[str, int]]


@dataclass(frozen=True)
class Endpoints:
    """Where the emulators listen (name -> base URL) and the CA bundle that trusts them."""

    urls: Mapping[str, str]
    ca_bundle: str


def _extracted(results: list[StreamResult]) -> dict[str, int]:
    return {
        "batches": len(results),
        "read": sum(r.read for r in results),
        "loaded": sum(r.loaded for r in results),
    }


def _extract(source: str, endpoints: Endpoints) -> Stage:
    """Build the source's client now (as the hook does); extract when called."""
    from donor_sync.sources.classy import ClassyApi, extract_classy
    from donor_sync.sources.donorbox import DonorboxApi, extract_donorbox
    from donor_sync.sources.stripe import extract_stripe
    from donor_sync.sources.stripe.helpers import StripeApi

    url, ca = endpoints.urls[source], endpoints.ca_bundle
    if source == "stripe":
        stripe = StripeApi(url, STRIPE_KEY, verify=ca)
        return lambda conn, run_id: _extracted(extract_stripe(conn, stripe, run_id=run_id))
    if source == "donorbox":
        donorbox = DonorboxApi(url, *DONORBOX_LOGIN, verify=ca)
        return lambda conn, run_id: _extracted(extract_donorbox(conn, donorbox, run_id=run_id))
    if source == "classy":
        classy = ClassyApi(url, *CLASSY_CLIENT, CLASSY_ORGANIZATION, verify=ca)
        return lambda conn, run_id: _extracted(extract_classy(conn, classy, run_id=run_id))
    raise SystemExit(f"pipeline_worker: no extractor for {source!r}")


def _standardize(chunk_size: int | None) -> Stage:
    from donor_sync.standardize.run import standardize_run
    from donor_sync.standardize.settings import livemode_from_api_key, load_settings

    settings = load_settings()
    live = livemode_from_api_key(STRIPE_KEY)  # as the task decides 'auto' from the connection's key
    if live is not None:
        settings = settings.with_expect_livemode("stripe", live)
    if chunk_size:
        settings = settings.model_copy(update={"chunk_size": chunk_size})

    def run(conn: psycopg.Connection, run_id: UUID) -> dict[str, int]:
        result = standardize_run(conn, run_id, settings=settings, now=datetime.now(UTC))
        return {"batches": len(result.batches), "staged": result.staged, "quarantined": result.quarantined}

    return run


def _resolve() -> Stage:
    from donor_sync.resolve import load_giving_settings, load_resolve_rules
    from donor_sync.resolve.run import resolve_run

    rules, giving = load_resolve_rules(), load_giving_settings()

    def run(conn: psycopg.Connection, run_id: UUID) -> dict[str, int]:
        result = resolve_run(conn, run_id, rules=rules, giving=giving, now=datetime.now(UTC))
        return {"new_donors": result.donors.new_donors, "gifts_resolved": result.gifts.resolved_rows}

    return run


def _queue(destination: str, worker_id: str) -> Stage:
    from donor_sync.delivery import run as delivery

    def run(conn: psycopg.Connection, run_id: UUID) -> dict[str, int]:
        report = delivery.queue(conn, destination, run_id=run_id, actor=f"test:{worker_id}")
        return {"queued": report.queued, "unchanged": report.unchanged}

    return run


def push_until_settled(
    conn: psycopg.Connection,
    connector: Connector,
    *,
    run_id: UUID | None,
    worker_id: str,
    time_limit_s: float,
) -> dict[str, int]:
    """Push, and again while rows are in flight or due soon, as the next runs would; sum the counts.

    Settled: nothing in flight (a killed worker's lease expired and its rows were taken again), and
    nothing pending due within a lease, except rows waiting on a parent that was dead-lettered
    (they wait for a person) or on a later rung of the retry ladder.
    """
    from donor_sync.delivery.push import push_destination

    settings = push_settings()
    totals: dict[str, int] = {}
    deadline = time.monotonic() + time_limit_s
    while True:
        report = push_destination(conn, connector, run_id=run_id, worker_id=worker_id, settings=settings)
        for name, value in report.totals().items():
            totals[name] = totals.get(name, 0) + value
        row = conn.execute(
            "SELECT count(*), extract(epoch FROM min(o.next_attempt_at) - now())::float FROM sync.outbox o"
            " WHERE o.destination = %(d)s AND (o.state = 'in_flight' OR (o.state = 'pending'"
            "   AND o.next_attempt_at < now() + make_interval(secs => %(soon)s)"
            "   AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(o.depends_on) dep JOIN sync.outbox p"
            "     ON p.destination = o.destination AND p.entity = dep ->> 'entity'"
            "    AND p.record_key = dep ->> 'record_key' AND p.state = 'dead')))",
            {"d": connector.destination, "soon": LEASE_SECONDS + 1},
        ).fetchone()
        conn.commit()
        assert row is not None
        open_rows, due_in = int(row[0]), row[1]
        if not open_rows or time.monotonic() > deadline:
            return totals
        time.sleep(min(max(due_in or 0.0, 0.05), 2.0))


def push_settings() -> PushSettings:
    """The push settings of the workers: a short lease and dependency wait a test can outwait."""
    from donor_sync.delivery.push import PushSettings
    from donor_sync.delivery.push.settings import PushOptions

    return PushSettings(
        push=PushOptions(lease_seconds=LEASE_SECONDS, dependency_wait_seconds=DEPENDENCY_WAIT_SECONDS)
    )


def _push(destination: str, endpoints: Endpoints, worker_id: str, *, until_settled: bool) -> Stage:
    from donor_sync.delivery.push import push_destination
    from tests.reliability.push_worker import build_connector

    connector = build_connector(destination, endpoints.urls[destination], endpoints.ca_bundle)
    settings = push_settings()

    def run(conn: psycopg.Connection, run_id: UUID) -> dict[str, int]:
        if until_settled:
            return push_until_settled(conn, connector, run_id=run_id, worker_id=worker_id, time_limit_s=90)
        report = push_destination(conn, connector, run_id=run_id, worker_id=worker_id, settings=settings)
        return report.totals()

    return run


def _close(conn: psycopg.Connection, run_id: UUID) -> dict[str, int]:
    """What the close_run task does (``donor_sync.operators.run_tasks.close_run``), without Slack."""
    runs.load_summary(conn, run_id)
    moved = advance_from_run(conn, run_id, commit=False)  # only a successful run moves watermarks
    runs.close_run(conn, run_id, status="success")  # one commit for both
    return {"watermarks_moved": moved}


def prepare(
    stage: str,
    target: str | None = None,
    *,
    endpoints: Endpoints | None = None,
    worker_id: str = "test",
    chunk_size: int | None = None,
    until_settled: bool = True,
) -> Stage:
    """Return the stage ready to run: its clients built, its settings loaded.

    :param target: the source (extract) or destination (queue, push).
    :param until_settled: push: again until settled (:func:`push_until_settled`), else once.
    """
    if stage in ("extract", "queue", "push") and not target:
        raise SystemExit(f"pipeline_worker: {stage} needs a source or destination")
    if stage in ("extract", "push"):
        if endpoints is None:
            raise SystemExit(f"pipeline_worker: {stage} needs the emulators' endpoints")
        if stage == "extract":
            return _extract(str(target), endpoints)
        return _push(str(target), endpoints, worker_id, until_settled=until_settled)
    if stage == "standardize":
        return _standardize(chunk_size)
    if stage == "resolve":
        return _resolve()
    if stage == "queue":
        return _queue(str(target), worker_id)
    if stage == "close":
        return _close
    raise SystemExit(f"pipeline_worker: unknown stage {stage!r}")


def _released() -> UUID | None:
    """Say ``ready``; wait for ``go RUN_ID`` and return the run id (None when told anything else)."""
    print("ready", flush=True)
    words = sys.stdin.readline().split()
    return UUID(words[1]) if len(words) == 2 and words[0] == "go" else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("db_url")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("target", nargs="?", help="the source (extract) or destination (queue, push)")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--endpoint", action="append", default=[], help="NAME=BASE_URL of an emulator")
    parser.add_argument("--ca-bundle", default="")
    parser.add_argument("--chunk-size", type=int, default=None, help="standardize: raw records per chunk")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    endpoints = Endpoints(dict(e.split("=", 1) for e in args.endpoint), args.ca_bundle)
    stage = prepare(
        args.stage,
        args.target,
        endpoints=endpoints,
        worker_id=args.worker_id,
        chunk_size=args.chunk_size,
        until_settled=False,
    )
    with connect(args.db_url, application_name=args.worker_id) as conn:
        run_id = _released()
        if run_id is None:
            print(json.dumps({"worker_id": args.worker_id, "released": False}), flush=True)
            return 0
        counts = stage(conn, run_id)
    print(json.dumps({"worker_id": args.worker_id, **counts}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
