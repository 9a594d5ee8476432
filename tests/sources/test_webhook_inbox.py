"""Draining raw.webhook_inbox into raw.records, on sample data from the generator and a real Postgres."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.local_airflow import connection_json_from_url
from donor_sync.observability import runs
from donor_sync.sources.donorbox import DonorboxApi, extract_donorbox
from donor_sync.sources.webhook_inbox import IGNORED_EVENT_TYPE, DrainResult, drain_webhook_inbox
from donor_sync.web.webhooks.config import load_settings
from donor_sync.web.webhooks.inbox import InboxEvent, parse_body, write_event
from sandbox.common.runner import Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.datagen import GenerationConfig, generate
from sandbox.emulators.donorbox import DonorboxEmulator

SETTINGS = load_settings()
STATES = (
    "SELECT webhook_event_id, processed_at IS NOT NULL, process_attempts, process_error"
    " FROM raw.webhook_inbox"
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Sample objects per source, and the deliberately bad records of the truth files."""
    out = tmp_path_factory.mktemp("webhook-sample")
    generate(GenerationConfig(donors=300, seed=11, out=out))

    def jsonl(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    with (out / "truth" / "bad_records.csv").open(newline="") as handle:
        bad = list(csv.DictReader(handle))
    return {
        "stripe": jsonl(out / "stripe" / "events.jsonl"),
        "donorbox": jsonl(out / "donorbox" / "donations.jsonl"),
        "classy": jsonl(out / "classy" / "transactions.jsonl"),
        "bad": bad,
    }


def deliver(db_url: str, source: str, doc: dict[str, Any]) -> int:
    """Store ``doc`` in the inbox exactly as the receiver does after verifying it; return its inbox id."""
    endpoint = SETTINGS.endpoints[source]
    raw = json.dumps(doc).encode()
    event = InboxEvent.build(
        endpoint,
        raw=raw,
        parsed=parse_body(raw, endpoint),
        headers={"content-type": "application/json"},
        content_type="application/json",
        remote_addr=None,
    )
    is_new, inbox_id = write_event(db_url, event)
    assert is_new
    return inbox_id


def envelope(event_id: str, event: str, data: Any) -> dict[str, Any]:
    return {"id": event_id, "event": event, "created_at": "2026-01-02T03:04:05Z", "data": data}


def _by_source(results: list[DrainResult]) -> dict[str, DrainResult]:
    return {r.source: r for r in results}


def _scalar(db: psycopg.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = db.execute(sql, params).fetchone()
    db.commit()
    assert row is not None
    return row[0]


def test_events_become_raw_records_with_lineage(
    db_url: str, db: psycopg.Connection, sample: dict[str, Any]
) -> None:
    bad_ids = {(r["source"], r["source_record_id"]) for r in sample["bad"]}
    donations = sample["donorbox"][:20] + [
        d for d in sample["donorbox"] if ("donorbox/donations", str(d["id"])) in bad_ids
    ]
    transactions = sample["classy"][:15]
    events = sample["stripe"][:25]
    inbox: dict[tuple[str, str], int] = {}
    for event in events:
        inbox[("event", event["id"])] = deliver(db_url, "stripe", event)
    for n, donation in enumerate(donations):
        inbox[("donation", str(donation["id"]))] = deliver(
            db_url, "donorbox", envelope(f"dbx-{n}", "donation.created", donation)
        )
    for n, transaction in enumerate(transactions):
        inbox[("transaction", str(transaction["id"]))] = deliver(
            db_url, "classy", envelope(f"cls-{n}", "transaction.updated", transaction)
        )
    ignored = [
        deliver(db_url, "stripe", {**events[0], "id": "evt_payout", "type": "payout.paid"}),
        deliver(db_url, "donorbox", envelope("dbx-donor", "donor.deleted", {"id": 1})),
    ]
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="drain-1")

    results = _by_source(drain_webhook_inbox(db, run_id=run_id))

    assert set(results) == {"stripe", "donorbox", "classy"}
    expected = {"stripe": (len(events), 1), "donorbox": (len(donations), 1), "classy": (len(transactions), 0)}
    for source, (landed, ignored_count) in expected.items():
        result = results[source]
        assert (result.read, result.loaded, result.ignored, result.failed) == (
            landed,
            landed,
            ignored_count,
            0,
        )
        assert result.events == landed + ignored_count
        batch = db.execute(
            "SELECT run_id, channel, stream, status, records_read, records_loaded, cursor_ts"
            " FROM raw.batches WHERE batch_id = %s",
            (result.batch_id,),
        ).fetchone()
        assert batch == (run_id, "webhook", "webhook", "loaded", landed, landed, None)
    rows = db.execute(
        "SELECT entity, source_id, payload, source_updated_at, webhook_event_id, channel, source"
        " FROM raw.records"
    ).fetchall()
    assert len(rows) == len(inbox)
    objects = {("event", e["id"]): e for e in events}
    objects |= {("donation", str(d["id"])): d for d in donations}
    objects |= {("transaction", str(t["id"])): t for t in transactions}
    for entity, source_id, payload, updated, lineage, channel, _source in rows:
        assert payload == objects[(entity, source_id)], "landed exactly as received (bad records too)"
        assert lineage == inbox[(entity, source_id)]
        assert channel == "webhook"
        if entity == "event":
            assert updated == datetime.fromtimestamp(payload["created"], UTC)
        elif entity == "donation":
            assert updated == datetime.fromisoformat(payload["donation_date"].replace("Z", "+00:00"))
        else:
            assert updated == datetime.fromisoformat(payload["updated_at"].replace("Z", "+00:00"))
    landed_bad = {("donorbox/donations", sid) for e, sid, *_ in rows if e == "donation"} & bad_ids
    assert len(landed_bad) >= 3, "the truth file's bad Donorbox records are landed, not dropped"
    states = db.execute(STATES).fetchall()
    assert all(done and attempts == 1 for _, done, attempts, _ in states)
    assert sorted(i for i, *_, error in states if error == IGNORED_EVENT_TYPE) == sorted(ignored)
    assert {error for *_, error in states} == {None, IGNORED_EVENT_TYPE}


def test_draining_twice_changes_nothing_and_a_requeued_event_loads_nothing(
    db_url: str, db: psycopg.Connection, sample: dict[str, Any]
) -> None:
    for n, donation in enumerate(sample["donorbox"][:10]):
        deliver(db_url, "donorbox", envelope(f"dbx-{n}", "donation.created", donation))
    (first,) = drain_webhook_inbox(db, run_id=None)
    assert (first.read, first.loaded) == (10, 10)
    assert drain_webhook_inbox(db, run_id=None) == []
    assert _scalar(db, "SELECT count(*) FROM raw.batches") == 1
    db.execute("UPDATE raw.webhook_inbox SET processed_at = NULL")
    db.commit()
    (again,) = drain_webhook_inbox(db, run_id=None)
    assert (again.read, again.loaded) == (10, 0)
    assert _scalar(db, "SELECT count(*) FROM raw.records") == 10


def test_a_webhook_donation_read_again_through_the_api_is_a_no_op(
    db_url: str,
    db: psycopg.Connection,
    sample: dict[str, Any],
    start_emulators: Callable[..., Sandbox],
    sandbox_tls: TlsFiles,
) -> None:
    donations = sample["donorbox"][:12]
    for n, donation in enumerate(donations):
        deliver(db_url, "donorbox", envelope(f"dbx-{n}", "donation.created", donation))
    (drained,) = drain_webhook_inbox(db, run_id=None)
    assert drained.loaded == 12
    running = start_emulators(DonorboxEmulator())["donorbox"]
    running.emulator.seed("donations", donations)
    api = DonorboxApi(
        running.base_url,
        "api@sandbox.donor-sync.test",
        "sandbox-donorbox-key",
        verify=str(sandbox_tls.ca_cert),
    )
    (extracted,) = extract_donorbox(db, api, run_id=None)
    assert (extracted.read, extracted.loaded) == (12, 0)
    assert _scalar(db, "SELECT count(DISTINCT (entity, source_id)) FROM raw.records") == 12


def test_a_drain_skips_events_another_drain_holds(
    db_url: str, db: psycopg.Connection, sample: dict[str, Any]
) -> None:
    ids = [
        deliver(db_url, "classy", envelope(f"cls-{n}", "transaction.created", t))
        for n, t in enumerate(sample["classy"][:10])
    ]
    with connect(db_url) as other:
        held = [
            r[0]
            for r in other.execute(
                "SELECT webhook_event_id FROM raw.webhook_inbox ORDER BY webhook_event_id LIMIT 4 FOR UPDATE"
            ).fetchall()
        ]
        db.execute("SET lock_timeout = '5s'")  # a drain that waited for the held rows fails, not hangs
        db.commit()
        (result,) = drain_webhook_inbox(db, run_id=None)
        assert (result.events, result.read) == (6, 6)
        other.rollback()
    (rest,) = drain_webhook_inbox(db, run_id=None)
    assert rest.events == 4
    lineage = db.execute("SELECT webhook_event_id FROM raw.records ORDER BY webhook_event_id").fetchall()
    assert [r[0] for r in lineage] == ids
    assert sorted(held) == ids[:4]


def test_concurrent_drains_never_process_an_event_twice(
    db_url: str, db: psycopg.Connection, sample: dict[str, Any]
) -> None:
    total = 0
    for n, donation in enumerate(sample["donorbox"][:60]):
        deliver(db_url, "donorbox", envelope(f"dbx-{n}", "donation.created", donation))
        total += 1
    for n, transaction in enumerate(sample["classy"][:40]):
        deliver(db_url, "classy", envelope(f"cls-{n}", "transaction.created", transaction))
        total += 1
    results: list[DrainResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def drainer() -> None:
        try:
            with connect(db_url) as conn:
                start.wait()
                while batch := drain_webhook_inbox(conn, run_id=None, limit=7):
                    results.extend(batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=drainer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sum(r.events for r in results) == total
    assert sum(r.read for r in results) == total, "no event was landed by two drains"
    assert sum(r.loaded for r in results) == total
    assert (
        _scalar(
            db, "SELECT count(*) FROM raw.webhook_inbox WHERE process_attempts <> 1 OR processed_at IS NULL"
        )
        == 0
    )
    assert _scalar(db, "SELECT count(DISTINCT webhook_event_id) FROM raw.records") == total


def test_a_bad_event_does_not_block_the_others_and_is_retried_until_stuck(
    db_url: str, db: psycopg.Connection, sample: dict[str, Any]
) -> None:
    good = [
        deliver(db_url, "donorbox", envelope(f"dbx-{n}", "donation.created", d))
        for n, d in enumerate(sample["donorbox"][:3])
    ]
    no_id = deliver(db_url, "donorbox", envelope("dbx-no-id", "donation.created", {"amount": "5.00"}))
    not_object = deliver(db_url, "donorbox", envelope("dbx-list", "donation.created", ["oops"]))
    db.execute(
        "INSERT INTO raw.webhook_inbox (source, event_id, body, body_sha256, body_bytes, signature_scheme,"
        " signature_verified) VALUES ('paypal', 'pp-1', '{}', sha256('{}'::bytea), 2, 'none', false)"
    )
    db.commit()

    results = _by_source(drain_webhook_inbox(db, run_id=None, max_attempts=3))
    assert (results["donorbox"].read, results["donorbox"].failed) == (3, 2)
    assert results["paypal"].failed == 1
    states = {r[0]: r[1:] for r in db.execute(STATES).fetchall()}
    assert all(states[i] == (True, 1, None) for i in good)
    assert states[no_id] == (False, 1, "MissingObjectId")
    assert states[not_object] == (False, 1, "MissingObject")
    assert (
        _scalar(db, "SELECT process_error FROM raw.webhook_inbox WHERE source = 'paypal'")
        == "UnconfiguredSource"
    )

    second = _by_source(drain_webhook_inbox(db, run_id=None, max_attempts=3))
    assert (second["donorbox"].events, second["donorbox"].failed, second["donorbox"].stuck) == (2, 2, 0)
    third = _by_source(drain_webhook_inbox(db, run_id=None, max_attempts=3))
    assert (third["donorbox"].failed, third["donorbox"].stuck) == (2, 2)
    assert drain_webhook_inbox(db, run_id=None, max_attempts=3) == [], "stuck events are left for a person"
    assert _scalar(db, "SELECT count(*) FROM raw.records") == 3
    # Fixed and re-queued by a person: landed.
    db.execute(
        "UPDATE raw.webhook_inbox SET body = jsonb_set(body, '{data,id}', '\"999\"'), process_attempts = 0"
        " WHERE webhook_event_id = %s",
        (no_id,),
    )
    db.commit()
    (fixed,) = drain_webhook_inbox(db, run_id=None, max_attempts=3)
    assert (fixed.source, fixed.read, fixed.loaded) == ("donorbox", 1, 1)


def test_the_airflow_task_drains_and_records_figures_per_source(
    db_url: str, db: psycopg.Connection, sample: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from donor_sync.operators.webhook_tasks import drain_webhooks_task

    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(db_url))
    for n, donation in enumerate(sample["donorbox"][:5]):
        deliver(db_url, "donorbox", envelope(f"dbx-{n}", "donation.created", donation))
    deliver(db_url, "donorbox", envelope("dbx-ignored", "donor.updated", {"id": 1}))
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="task-1")
    assert drain_webhooks_task.function(str(run_id)) == str(run_id)
    figures: dict[str, Any] = dict(
        db.execute(
            "SELECT metric, value FROM sync.run_metrics WHERE run_id = %s AND stage = 'extract'"
            " AND scope = 'donorbox' AND part LIKE 'webhook_%%'",
            (run_id,),
        ).fetchall()
    )
    assert figures == {
        "read": 5,
        "loaded": 5,
        "webhook_events": 6,
        "webhook_events_ignored": 1,
        "webhook_events_failed": 0,
        "webhook_events_stuck": 0,
    }
