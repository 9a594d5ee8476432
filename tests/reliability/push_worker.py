"""A push worker in its own process, for the crash tests to SIGKILL (``tests/reliability``).

It does what the push task of a DAG run does for one destination: open a database connection,
build the destination's connector against an emulator over HTTPS, and call
:func:`donor_sync.delivery.push.push_destination`. The only differences are a short lease and
dependency wait (so a test can outwait them), ``--until-done``, which pushes again while records
are due soon (a dependency's wait, an expired lease) as the next scheduled runs would, and
``--hold``, which readies the worker and waits for ``go`` on stdin before pushing (interpreter
start-up is slow on a busy machine; this way the test chooses the instant each push begins).

Its database session is named after ``--worker-id`` (``application_name``), so a test can find
the server side of a worker it killed. On success it prints one JSON line: the push reports'
summed counts (no payloads, no PII).

Usage::

    python tests/reliability/push_worker.py DB_URL DESTINATION BASE_URL CA_BUNDLE --worker-id W1
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

# Run as a script: the library lives in plugins/ (Airflow puts it on sys.path the same way).
_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(_ROOT / "plugins"), str(_ROOT)]

import psycopg  # noqa: E402

from donor_sync.db import connect  # noqa: E402
from donor_sync.delivery.connectors.hubspot.factory import connector_from_connection  # noqa: E402
from donor_sync.delivery.connectors.salesforce import (  # noqa: E402
    ClientCredentials,
    SalesforceClient,
    SalesforceConnector,
)
from donor_sync.delivery.contracts import HUBSPOT, SALESFORCE, Connector  # noqa: E402
from donor_sync.delivery.mapping import load_destination, push_order  # noqa: E402
from donor_sync.delivery.push import PushSettings, push_destination  # noqa: E402
from donor_sync.delivery.push.settings import PushOptions  # noqa: E402

#: The emulators' own test credentials (sandbox/emulators/*: default settings).
SALESFORCE_CLIENT_ID = "donor-sync-consumer-key"
SALESFORCE_CLIENT_SECRET = "donor-sync-consumer-secret"
HUBSPOT_TOKEN = "pat-na1-sandbox"


def build_connector(destination: str, base_url: str, ca_bundle: str) -> Connector:
    """Return the shipped mapping's connector for ``destination``, pointed at an emulator.

    Built the way the hooks build it (``donor_sync.hooks``), without Airflow: the Salesforce
    entities come from the shipped mapping, HubSpot's unique id properties are ensured.
    """
    if destination == SALESFORCE:
        client = SalesforceClient(
            ClientCredentials(SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET, base_url), verify=ca_bundle
        )
        entities = {
            o.entity: (o.object_name, o.external_id_field or "Id")
            for o in push_order(load_destination(SALESFORCE))
            if not o.is_association and o.object_name
        }
        return SalesforceConnector(client, entities=entities)
    if destination == HUBSPOT:
        connector = connector_from_connection(base_url, None, HUBSPOT_TOKEN, {"ca_bundle": ca_bundle})
        connector.ensure_properties()
        return connector
    raise SystemExit(f"push_worker: unknown destination {destination!r}")


def _open_rows(conn: psycopg.Connection, destination: str) -> tuple[int, float | None]:
    """Return the rows still queued or in flight, and the seconds until the first is due."""
    row = conn.execute(
        "SELECT count(*), extract(epoch FROM min(next_attempt_at) - now())::float FROM sync.outbox"
        " WHERE destination = %s AND state IN ('pending', 'in_flight')",
        (destination,),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), row[1]


def _go() -> bool:
    """Say ``ready`` (interpreter up, connector built, database connected); wait for ``go``.

    Lets a test start workers ahead of time and release them at the instant it chooses.
    """
    print("ready", flush=True)
    return sys.stdin.readline().strip() == "go"


def run(args: argparse.Namespace) -> dict[str, object]:
    """Push once (or until nothing is left, with ``--until-done``); return the summed counts."""
    settings = PushSettings(
        push=PushOptions(
            lease_seconds=args.lease_seconds, dependency_wait_seconds=args.dependency_wait_seconds
        )
    )
    connector = build_connector(args.destination, args.base_url, args.ca_bundle)
    totals: dict[str, int] = {}
    stopped: list[str] = []
    rounds = 0
    with connect(args.db_url, application_name=args.worker_id) as conn:
        if args.hold and not _go():
            return {"worker_id": args.worker_id, "released": False}
        started = time.monotonic()
        deadline = started + args.time_limit
        while True:
            report = push_destination(conn, connector, worker_id=args.worker_id, settings=settings)
            rounds += 1
            for name, value in report.totals().items():
                totals[name] = totals.get(name, 0) + value
            if report.stopped:
                stopped.append(report.stopped)
            if not args.until_done:
                break
            left, due_in = _open_rows(conn, args.destination)
            if left == 0 or time.monotonic() > deadline:
                break
            time.sleep(min(max(due_in or 0.0, 0.05), 2.0))
        left, _ = _open_rows(conn, args.destination)
    elapsed = round(time.monotonic() - started, 2)
    return {
        "worker_id": args.worker_id,
        "rounds": rounds,
        "left": left,
        "elapsed_s": elapsed,
        "stopped": stopped,
        **totals,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("db_url")
    parser.add_argument("destination", choices=[SALESFORCE, HUBSPOT])
    parser.add_argument("base_url")
    parser.add_argument("ca_bundle")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--lease-seconds", type=int, default=10)
    parser.add_argument("--dependency-wait-seconds", type=int, default=1)
    parser.add_argument(
        "--until-done", action="store_true", help="push again while records are due soon (waits, leases)"
    )
    parser.add_argument("--hold", action="store_true", help="print 'ready', push once 'go' is read on stdin")
    parser.add_argument(
        "--time-limit", type=float, default=60.0, help="longest --until-done keeps pushing (seconds)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
