"""donations_hourly end to end on sample data: every way gifts arrive, through to staging.

The Stripe, Donorbox and Classy emulators hold generated sample data, the CSV exports sit in the
drop folder, and the Stripe emulator delivers signed refund webhooks to the real receiver. One
``dag.test()`` run must then account for every raw record (staged, quarantined or skipped), give a
gift seen through two platforms one key, and quarantine the deliberately bad records.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from airflow.models import DagBag

from donor_sync.demo_inputs import deliver_refund_webhooks, drop_demo_csvs, webhook_receiver
from donor_sync.local_airflow import connection_json_from_url
from sandbox.common.runner import Sandbox
from sandbox.datagen import GenerationConfig, generate
from sandbox.load import load_sources
from tests.conftest import REPO_ROOT
from tests.integration.source_connections import source_connections
from tests.privacy.erasers.connections import privacy_connections

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]

REFUNDS = 3


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(GenerationConfig(donors=250, out=out, seed=11, workers=1, bad_share=0.05))
    return out


@pytest.fixture(scope="module")
def dagbag() -> Iterator[DagBag]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DONOR_SYNC_FAIL_FAST", "1")
        yield DagBag(dag_folder=str(REPO_ROOT / "dags"))


@pytest.fixture
def world(
    db_url: str,
    sample: Path,
    tmp_path: Path,
    start_sandbox: Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, Sandbox]]:
    """Emulators seeded with the sample, its CSVs in a drop folder, refund webhooks in the inbox."""
    from airflow.utils import db

    from donor_sync.operators import dag_test_compat

    db.resetdb()
    dag_test_compat.apply()
    box = start_sandbox(
        "stripe",
        "donorbox",
        "classy",
        "salesforce",
        "hubspot",
        "mailchimp",
        "braze",
        "receiver",
        stripe={"read_requests_per_second": 10_000},
    )
    load_sources(box, sample)
    drop = tmp_path / "drop"
    drop_demo_csvs(sample, drop)
    with webhook_receiver(db_url, box.tls.server_cert, box.tls.server_key) as url:
        deliveries = deliver_refund_webhooks(box, url, count=REFUNDS)
    assert deliveries == {"200": 2 * REFUNDS}
    connections = {
        "donor_sync_db": json.loads(connection_json_from_url(db_url)),
        **source_connections(box, drop),
        **privacy_connections(box),  # the CRMs, Mailchimp, Braze and the outbound subscriber
    }
    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    yield db_url, box
    box.stop()


#: Every raw record landed (raw.records and each CSV file's rows), aliased ``r``.
ALL_RAW = "raw.all_records(ARRAY(SELECT batch_id FROM raw.batches)) r"


def _truth(sample: Path, name: str) -> list[dict[str, str]]:
    with (sample / "truth" / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_record_from_every_channel_is_accounted_for(
    world: tuple[str, Sandbox], dagbag: DagBag, sample: Path
) -> None:
    db_url, _ = world
    dag_run = dagbag.dags["donations_hourly"].test()
    assert str(dag_run.state) == "success"
    with psycopg.connect(db_url) as conn:
        channels: dict[str, int] = dict(
            conn.execute(f"SELECT channel, count(*) FROM {ALL_RAW} GROUP BY channel").fetchall()
        )
        sources = {row[0] for row in conn.execute(f"SELECT DISTINCT source FROM {ALL_RAW}")}
        unaccounted = conn.execute(
            f"SELECT count(*) FROM {ALL_RAW}"
            " LEFT JOIN staging.dispositions d USING (raw_record_id) WHERE d.raw_record_id IS NULL"
        ).fetchone()
        by_disposition: dict[str, int] = dict(
            conn.execute("SELECT disposition, count(*) FROM staging.dispositions GROUP BY 1").fetchall()
        )
        recorded: dict[str, Any] = dict(
            conn.execute(
                "SELECT metric, sum(value) FROM sync.run_metrics WHERE stage = 'standardize'"
                " AND metric IN ('staged', 'quarantined', 'skipped') AND part = '' GROUP BY metric"
            ).fetchall()
        )
        batches = conn.execute(
            "SELECT count(*) FROM raw.batches WHERE status <> 'standardized' AND records_loaded > 0"
        ).fetchone()
        # The charges refunded by webhook have a staged version that says so (through whichever
        # channel's copy of the event was kept: the API lists the same events later).
        refunded = conn.execute(
            "SELECT count(*) FROM raw.webhook_inbox i WHERE EXISTS (SELECT FROM staging.gifts g"
            " WHERE g.source = 'stripe' AND g.source_id = i.body -> 'data' -> 'object' ->> 'id'"
            " AND g.status = 'refunded')"
        ).fetchone()
        quarantined_ids = {
            (row[0], row[1])
            for row in conn.execute(
                "SELECT source, source_id FROM staging.quarantine WHERE released_at IS NULL"
            )
        }
        unresolved = conn.execute(
            "SELECT (SELECT count(*) FROM staging.donors WHERE resolved_at IS NULL OR donor_id IS NULL),"
            " (SELECT count(*) FROM staging.donors), (SELECT count(*) FROM core.donors)"
        ).fetchone()
        resolve_metrics = {
            str(m): int(v)
            for m, v in conn.execute(
                "SELECT metric, sum(value) FROM sync.run_metrics WHERE stage = 'resolve' GROUP BY metric"
            ).fetchall()
        }
        # One core gift per cross-platform gift key: a Donorbox or Classy gift paid through Stripe
        # is counted once.
        gift_keys = conn.execute(
            "SELECT count(DISTINCT g.gift_key), (SELECT count(*) FROM core.gifts)"
            " FROM staging.gifts g WHERE g.resolved_at IS NOT NULL"
        ).fetchone()
        keys: dict[str, str] = dict(
            conn.execute(
                "SELECT source || ':' || source_id, gift_key FROM staging.gifts"
                " WHERE source IN ('stripe', 'donorbox', 'classy')"
            ).fetchall()
        )

    assert sources >= {"stripe", "donorbox", "classy", "bank_cheque", "event_platform"}
    assert set(channels) == {"api", "csv", "webhook"}
    assert unaccounted == (0,), "every raw record has a disposition"
    assert sum(by_disposition.values()) == sum(channels.values())
    assert {k: int(v) for k, v in recorded.items()} == {
        k: by_disposition.get(k, 0) for k in ("staged", "quarantined", "skipped")
    }
    assert batches == (0,), "every loaded batch was standardized"
    assert refunded == (REFUNDS,), "each refund delivered by webhook is staged as a refunded gift"

    # Every staged donor record resolved to a golden donor; duplicates across sources merged.
    assert unresolved is not None
    assert unresolved[0] == 0, "every staged donor record is resolved"
    assert 0 < unresolved[2] < unresolved[1], "donors seen through several sources are merged"
    assert resolve_metrics["merged"] > 0
    assert resolve_metrics["new_donors"] == unresolved[2]
    assert gift_keys is not None
    assert gift_keys[0] == gift_keys[1] > 0, "one core gift per gift key"

    # The deliberately unusable records of the API sources are quarantined.
    blocking = {"invalid_email", "malformed_amount", "unknown_currency", "future_date"}
    api_sources = {
        "stripe/charges": "stripe",
        "donorbox/donations": "donorbox",
        "classy/transactions": "classy",
    }
    bad = [
        (api_sources[row["source"]], row["source_record_id"])
        for row in _truth(sample, "bad_records.csv")
        if row["kind"] in blocking and row["source"] in api_sources
    ]
    assert bad, "the sample has bad records to find"
    assert set(bad) <= quarantined_ids

    # One gift seen through Stripe and a platform has one gift key on both sides.
    platform = {"donorbox/donations": "donorbox", "classy/transactions": "classy"}
    linked = [
        (f"stripe:{row['stripe_charge_id']}", f"{platform[row['other_source']]}:{row['other_record_id']}")
        for row in _truth(sample, "gift_links.csv")
        if row["other_source"] in platform
    ]
    pairs = [(keys[a], keys[b]) for a, b in linked if a in keys and b in keys]
    assert len(pairs) >= len(linked) // 2, "most linked gifts were staged on both sides"
    assert all(a == b for a, b in pairs)


def test_a_csv_still_being_written_waits_for_the_next_run(
    world: tuple[str, Sandbox], dagbag: DagBag, tmp_path: Path
) -> None:
    db_url, _ = world
    fresh = tmp_path / "drop" / "bank_cheque_export_late.csv"
    source = next((tmp_path / "drop").glob("bank_cheque_export*.csv"))
    fresh.write_bytes(source.read_bytes().replace(b"CHQ-", b"CHL-"))
    now = time.time()
    os.utime(fresh, (now, now))
    dag_run = dagbag.dags["donations_hourly"].test()
    assert str(dag_run.state) == "success"
    with psycopg.connect(db_url) as conn:
        late = conn.execute(f"SELECT count(*) FROM {ALL_RAW} WHERE source_id LIKE 'CHL-%'").fetchone()
    assert late == (0,), "a file modified within the quiet period is not read"
    assert fresh.exists()


def _salesforce_keys(box: Sandbox, sobject: str) -> list[str]:
    store = box["salesforce"].emulator.store  # type: ignore[attr-defined]
    return [r.get("Donor_Sync_Id__c") for r in store.tables[sobject].values()]


def _hubspot_keys(box: Sandbox, object_name: str, prop: str) -> list[str | None]:
    store = box["hubspot"].emulator.store  # type: ignore[attr-defined]
    kind = next(k for k in store.types.values() if k.name == object_name)
    return [r.properties.get(prop) for r in store.of(kind).values() if not r.archived]


def _accounting(conn: psycopg.Connection, destination: str, entity: str) -> dict[str, int]:
    """Each record of an entity: landed, dead-lettered (open letter) or still waiting in the outbox."""
    landed, dead, waiting = conn.execute(
        "SELECT (SELECT count(*) FROM sync.destination_state WHERE destination = %(d)s AND entity = %(e)s"
        "   AND remote_id IS NOT NULL),"
        " (SELECT count(*) FROM sync.dead_letters WHERE destination = %(d)s AND entity = %(e)s"
        "   AND status = 'open'),"
        " (SELECT count(*) FROM sync.outbox WHERE destination = %(d)s AND entity = %(e)s"
        "   AND state IN ('pending', 'in_flight'))",
        {"d": destination, "e": entity},
    ).fetchone() or (0, 0, 0)
    return {"landed": int(landed), "dead": int(dead), "waiting": int(waiting)}


def test_every_donor_and_gift_reaches_each_crm_once_and_a_rerun_writes_nothing(
    world: tuple[str, Sandbox], dagbag: DagBag
) -> None:
    db_url, box = world
    assert str(dagbag.dags["donations_hourly"].test().state) == "success"
    with psycopg.connect(db_url) as conn:
        donors = {
            str(r[0]) for r in conn.execute("SELECT donor_id FROM core.donors WHERE merged_into IS NULL")
        }
        gifts = {r[0] for r in conn.execute("SELECT gift_key FROM core.gifts WHERE NOT is_test")}
        accounts = {
            (d, e): _accounting(conn, d, e)
            for d, e in (
                ("salesforce", "contact"),
                ("salesforce", "opportunity"),
                ("hubspot", "contact"),
                ("hubspot", "deal"),
            )
        }
        remote = dict(
            conn.execute(
                "SELECT system || ':' || id_kind, count(*) FROM core.donor_sources WHERE role = 'destination'"
                " GROUP BY 1"
            ).fetchall()
        )
        gift_remote = dict(
            conn.execute("SELECT destination, count(*) FROM core.gift_destinations GROUP BY 1").fetchall()
        )
    assert donors
    assert gifts
    # Every live donor and every gift is accounted for in each CRM: landed, or a dead letter a
    # person acts on, or waiting for its parent.
    for (destination, entity), counts in accounts.items():
        expected = len(donors) if entity == "contact" else len(gifts)
        assert sum(counts.values()) == expected, (destination, entity, counts)
    assert accounts[("salesforce", "contact")] == {"landed": len(donors), "dead": 0, "waiting": 0}
    # Exactly once: one CRM record per donor-sync key.
    for sobject, keys in (("Contact", donors), ("Opportunity", gifts)):
        found = [k for k in _salesforce_keys(box, sobject) if k]
        assert len(found) == len(set(found)), f"duplicate {sobject}"
        assert set(found) <= keys
    sf_gifts = {k for k in _salesforce_keys(box, "Opportunity") if k}
    assert len(sf_gifts) == accounts[("salesforce", "opportunity")]["landed"]
    hs_contacts = [k for k in _hubspot_keys(box, "contacts", "donor_sync_id") if k]
    assert len(hs_contacts) == len(set(hs_contacts)) == accounts[("hubspot", "contact")]["landed"]
    hs_deals = [k for k in _hubspot_keys(box, "deals", "donor_sync_gift_key") if k]
    assert len(hs_deals) == len(set(hs_deals)) == accounts[("hubspot", "deal")]["landed"]
    # Remote ids are kept in core beside the donors' and gifts' other ids.
    assert remote["salesforce:contact"] == len(donors)
    assert gift_remote["salesforce"] == accounts[("salesforce", "opportunity")]["landed"]

    # A second run over the same data writes nothing to either CRM.
    writes = ("POST", "PATCH", "PUT", "DELETE")
    for name in ("salesforce", "hubspot", "mailchimp", "braze"):
        box[name].emulator.request_log.clear()  # type: ignore[attr-defined]
    assert str(dagbag.dags["donations_hourly"].test().state) == "success"
    for name in ("salesforce", "hubspot", "mailchimp", "braze"):
        log = list(box[name].emulator.request_log)  # type: ignore[attr-defined]
        written = [r for r in log if r["method"] in writes and "/oauth2/" not in r["path"]]
        assert written == [], (name, written[:3])
    with psycopg.connect(db_url) as conn:
        pushed = conn.execute(
            "SELECT m.scope, m.value FROM sync.run_metrics m WHERE m.stage = 'push' AND m.metric = 'pushed'"
            " AND m.run_id = (SELECT run_id FROM sync.runs ORDER BY started_at DESC LIMIT 1)"
        ).fetchall()
    assert {k: int(v) for k, v in pushed} == {
        "salesforce": 0,
        "hubspot": 0,
        "mailchimp": 0,
        "braze": 0,
    }, "the idle push says so"
