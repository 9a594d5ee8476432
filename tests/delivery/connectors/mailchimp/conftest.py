"""The Mailchimp emulator (one per package, reset per test), a connector pointed at it, and helpers
to give donors consent and read what Mailchimp holds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import tenacity

from donor_sync.delivery import run as delivery
from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient, base_url_for
from donor_sync.delivery.connectors.mailchimp.connector import MailchimpConnector
from donor_sync.delivery.connectors.mailchimp.merge_fields import merge_field_specs
from donor_sync.delivery.connectors.mailchimp.settings import MailchimpSettings
from donor_sync.delivery.connectors.retrying import default_retry as mailchimp_retry
from donor_sync.delivery.mapping import load_destination
from donor_sync.privacy.consent.events import ConsentEvent, record_events
from sandbox.common.runner import Sandbox
from sandbox.emulators.mailchimp import DEFAULT_API_KEY, DEFAULT_LIST_ID, MailchimpEmulator

ACTOR = "test:mailchimp"
PERMISSIONS = {"Email": "a1b2c3d4e5", "Direct Mail": "f6a7b8c9d0"}


@pytest.fixture(scope="package")
def box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox("mailchimp", mailchimp={"batch_pending_s": 0.05, "batch_started_s": 0.05})


@pytest.fixture
def emulator(box: Sandbox) -> Iterator[MailchimpEmulator]:
    emu = box["mailchimp"].emulator
    assert isinstance(emu, MailchimpEmulator)
    emu.reset()
    yield emu
    emu.reset()


def make_connector(box: Sandbox, attempts: int = 4, **settings: Any) -> MailchimpConnector:
    client = MailchimpClient(
        base_url_for(DEFAULT_API_KEY, box["mailchimp"].base_url),
        DEFAULT_API_KEY,
        verify=str(box.tls.ca_cert),
        retry=lambda: mailchimp_retry(attempts=attempts, wait=tenacity.wait_none()),
        slots=threading.BoundedSemaphore(settings.get("max_connections", 5)),
    )
    options: dict[str, Any] = {
        "list_id": DEFAULT_LIST_ID,
        "batch_poll_s": 0.05,
        "marketing_permissions": PERMISSIONS,
        **settings,
    }
    connector = MailchimpConnector(client, MailchimpSettings(**options))
    connector.ensure_merge_fields(merge_field_specs(load_destination("mailchimp")))
    return connector


@pytest.fixture
def connector(box: Sandbox, emulator: MailchimpEmulator) -> MailchimpConnector:
    return make_connector(box)


def members(emulator: MailchimpEmulator) -> dict[str, dict[str, Any]]:
    """Return the audience's members by lower-cased email."""
    snapshot = emulator.snapshot()["lists"][DEFAULT_LIST_ID]["members"]
    return {str(m["email_address"]).lower(): m for m in snapshot}


def statuses(emulator: MailchimpEmulator) -> dict[str, str]:
    return {email: str(m["status"]) for email, m in members(emulator).items()}


def choose(
    db: psycopg.Connection,
    donor: str,
    status: str,
    *,
    purpose: str = "marketing",
    ago: timedelta = timedelta(days=1),
    ref: str | None = None,
) -> None:
    """Record a marketing email choice of ``donor`` (as a donation form would)."""
    event = ConsentEvent(
        donor_id=donor,  # type: ignore[arg-type]
        purpose=purpose,  # type: ignore[arg-type]
        channel="email",
        status=status,  # type: ignore[arg-type]
        source="donorbox",
        source_ref=ref or f"{donor}:{purpose}:{status}:{ago.total_seconds()}",
        occurred_at=datetime.now(UTC) - ago,
        recorded_by=ACTOR,
    )
    record_events(db, [event], actor=ACTOR, now=datetime.now(UTC))
    db.commit()


def queue(db: psycopg.Connection, **kwargs: Any) -> dict[str, int]:
    """Queue mailchimp's changed records; return the pending rows by operation."""
    delivery.queue(db, "mailchimp", run_id=None, actor=ACTOR, **kwargs)
    rows = db.execute(
        "SELECT operation, count(*) FROM sync.outbox WHERE destination = 'mailchimp' AND state = 'pending'"
        " GROUP BY operation"
    ).fetchall()
    return {str(op): int(n) for op, n in rows}


def push(db: psycopg.Connection, connector: MailchimpConnector, *, clean: bool = True) -> dict[str, int]:
    report = delivery.push(db, connector, run_id=None, worker_id="test")
    totals = report.totals()
    if clean:
        assert (totals["dead_lettered"], totals["failed"]) == (0, 0), totals
    return totals


def email_of(db: psycopg.Connection, donor: str) -> str:
    row = db.execute("SELECT email FROM core.donors WHERE donor_id = %s", [donor]).fetchone()
    assert row is not None
    return str(row[0]).lower()
