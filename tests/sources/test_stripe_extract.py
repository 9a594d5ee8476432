"""Stripe extraction against the Stripe emulator and a real Postgres: windows, overlap, ties, faults."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import tenacity

from donor_sync.errors import PermanentError
from donor_sync.hooks._extras import api_options_from_extra
from donor_sync.observability import runs
from donor_sync.sources.stripe import extract_stripe
from donor_sync.sources.stripe.helpers import StripeApi, StripeTransientError
from donor_sync.sources.watermarks import advance_from_run, read_watermark
from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.stripe import StripeEmulator

BASE = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(StripeEmulator())


@pytest.fixture
def stripe_emu(box: Sandbox) -> Running:
    box["stripe"].emulator.reset()
    box["stripe"].emulator.settings["read_requests_per_second"] = 10_000
    return box["stripe"]


@pytest.fixture
def api(stripe_emu: Running, sandbox_tls: TlsFiles) -> StripeApi:
    no_wait = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Exception), stop=tenacity.stop_after_attempt(4), reraise=True
    )
    return StripeApi(stripe_emu.base_url, "sk_test_sandbox", verify=str(sandbox_tls.ca_cert), retry=no_wait)


def _charges(emulator: Any, *specs: tuple[str, int]) -> None:
    emulator.seed(
        "charges",
        [
            {"id": cid, "object": "charge", "created": created, "amount": 1000, "currency": "usd"}
            for cid, created in specs
        ],
    )


def _run(db: psycopg.Connection, api: StripeApi, name: str) -> tuple[int, int]:
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id=name)
    results = extract_stripe(db, api, run_id=run_id, streams=("charges",), initial_start=START)
    advance_from_run(db, run_id)
    return results[0].read, results[0].loaded


def test_first_run_reads_everything_across_pages_then_only_the_overlap(
    db: psycopg.Connection, stripe_emu: Running, api: StripeApi
) -> None:
    _charges(stripe_emu.emulator, *[(f"ch_{i:04d}", BASE + i * 60) for i in range(250)])
    assert _run(db, api, "r1") == (250, 250)
    watermark = read_watermark(db, "stripe", "charges")
    assert watermark.cursor_id == "ch_0249"
    read, loaded = _run(db, api, "r2")
    assert loaded == 0
    assert read == 11, "the 10-minute overlap re-reads the last 11 one-minute-apart charges"
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (250,)


def test_late_and_tied_rows_inside_the_overlap_are_not_skipped(
    db: psycopg.Connection, stripe_emu: Running, api: StripeApi
) -> None:
    _charges(stripe_emu.emulator, ("ch_a", BASE), ("ch_b", BASE + 600))
    _run(db, api, "r1")
    # Arrive after the first read: one with the cursor's own timestamp, one created earlier.
    _charges(stripe_emu.emulator, ("ch_a2", BASE + 600), ("ch_late", BASE + 300))
    _read, loaded = _run(db, api, "r2")
    assert loaded == 2
    ids = {r[0] for r in db.execute("SELECT source_id FROM raw.records").fetchall()}
    assert ids == {"ch_a", "ch_b", "ch_a2", "ch_late"}


def test_transient_faults_are_retried(
    db: psycopg.Connection, stripe_emu: Running, api: StripeApi, https: Any
) -> None:
    _charges(stripe_emu.emulator, *[(f"ch_{i:03d}", BASE + i) for i in range(150)])
    https.put(
        f"{stripe_emu.admin_url}/faults",
        json=[{"kind": "status", "status": 503, "count": 2, "path": "^/v1/charges"}],
        timeout=5,
    )
    assert _run(db, api, "r1") == (150, 150)


def test_persistent_failure_fails_the_batch_and_keeps_the_watermark(
    db: psycopg.Connection, stripe_emu: Running, api: StripeApi, https: Any
) -> None:
    _charges(stripe_emu.emulator, *[(f"ch_{i:03d}", BASE + i) for i in range(150)])
    _run(db, api, "r1")
    before = read_watermark(db, "stripe", "charges")
    _charges(stripe_emu.emulator, ("ch_new", BASE + 10_000))
    https.put(
        f"{stripe_emu.admin_url}/faults",
        json=[{"kind": "status", "status": 500, "path": "^/v1/charges"}],
        timeout=5,
    )
    with pytest.raises(StripeTransientError):
        _run(db, api, "r2")
    after = read_watermark(db, "stripe", "charges")
    assert (after.cursor_ts, after.cursor_id) == (before.cursor_ts, before.cursor_id)
    statuses = db.execute("SELECT status, error FROM raw.batches ORDER BY batch_id").fetchall()
    assert statuses[-1] == ("failed", "SourceTransientError")


def test_bad_key_is_a_permanent_error(
    db: psycopg.Connection, stripe_emu: Running, sandbox_tls: TlsFiles
) -> None:
    api = StripeApi(stripe_emu.base_url, "sk_test_wrong", verify=str(sandbox_tls.ca_cert))
    with pytest.raises(PermanentError, match="Stripe refused the credentials"):
        extract_stripe(db, api, run_id=None, streams=("charges",), initial_start=START)


def test_connection_extras_parse_without_changing_input() -> None:
    extra = {"ca_bundle": "/tmp/ca.pem", "timeout": "12", "other": 1}
    assert api_options_from_extra(extra) == {"verify": "/tmp/ca.pem", "timeout": 12.0}
    assert extra == {"ca_bundle": "/tmp/ca.pem", "timeout": "12", "other": 1}
    assert api_options_from_extra({}) == {}


def test_window_is_bounded_by_created(db: psycopg.Connection, stripe_emu: Running, api: StripeApi) -> None:
    old = int((START - timedelta(days=30)).timestamp())
    _charges(stripe_emu.emulator, ("ch_old", old), ("ch_new", BASE))
    assert _run(db, api, "r1") == (1, 1)


def test_future_dated_record_lands_but_does_not_carry_the_watermark_past_now(
    db: psycopg.Connection, stripe_emu: Running, api: StripeApi
) -> None:
    future = int((datetime.now(UTC) + timedelta(days=365 * 5)).timestamp())
    _charges(stripe_emu.emulator, ("ch_ok", BASE), ("ch_future", future))
    assert _run(db, api, "r1") == (2, 2)
    assert read_watermark(db, "stripe", "charges").cursor_id == "ch_ok"
    _charges(stripe_emu.emulator, ("ch_next", BASE + 60))
    assert _run(db, api, "r2")[1] == 1, "the next run still reads what arrives after the good cursor"
