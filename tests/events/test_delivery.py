"""Delivery to subscribers through the delivery engine, against the receiver emulator over HTTPS.

Signed with each subscriber's secret, each event once per subscriber, 5xx retried on the ladder
until it lands, 4xx dead-lettered for that subscriber only while another still gets its events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
import requests

from donor_sync.delivery.connectors.webhooks import SubscriberEndpoint, WebhookConnector
from donor_sync.events.producers import produce_gift_events
from donor_sync.events.push import push_subscribers
from donor_sync.events.settings import EventSettings
from donor_sync.web.webhooks.signatures import verify_hmac_sha256
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Running, Sandbox
from tests.delivery.push.support import make_due
from tests.delivery.push.support import settings as push_settings
from tests.events.support import SECRET_A, SECRET_B, add_donor, add_gift, deliveries, outbox_rows, subscribers

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)
SECRETS = {"webhook_a": (SECRET_A, "whsec-a-old"), "webhook_b": (SECRET_B,)}


@pytest.fixture(scope="module")
def box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox("receiver")


@pytest.fixture
def receiver(box: Sandbox) -> Running:
    box["receiver"].emulator.reset()
    return box["receiver"]


def _connectors(
    session: requests.Session, settings: EventSettings, batch_size: int
) -> Callable[[str], WebhookConnector]:
    def build(destination: str) -> WebhookConnector:
        spec = settings.subscriber(destination)
        assert spec.url is not None
        return WebhookConnector(
            SubscriberEndpoint(spec.name, spec.url, SECRETS[destination], verify=str(session.verify)),
            session=session,
            batch_size=batch_size,
        )

    return build


def _push(
    db: psycopg.Connection, https: requests.Session, settings: EventSettings, *, batch_size: int = 2
) -> None:
    report = push_subscribers(
        db,
        [s.destination for s in settings.enabled()],
        _connectors(https, settings, batch_size),
        run_id=None,
        worker_id="test",
        settings=push_settings(jitter=0.0),
    )
    assert not report.errors


def _gifts(db: psycopg.Connection, settings: EventSettings, count: int = 3) -> set[str]:
    donor = add_donor(db)
    for i in range(count):
        add_gift(db, donor, f"stripe:ch_{i}")
    recorded = produce_gift_events(db, [donor], now=NOW, settings=settings)
    db.commit()
    return set(recorded.event_ids)


def test_each_subscriber_gets_each_event_once_signed_with_its_secret(
    db: psycopg.Connection, receiver: Running, https: requests.Session
) -> None:
    settings = subscribers(receiver.base_url, "a", "b")
    ids = _gifts(db, settings)
    _push(db, https, settings)
    _push(db, https, settings)  # nothing left: a second push sends nothing
    snapshot = receiver.emulator.snapshot()
    for hook, secrets in (("a", SECRETS["webhook_a"]), ("b", SECRETS["webhook_b"])):
        got = deliveries(snapshot, hook)
        assert sorted(d["event"]["id"] for d in got) == sorted(ids), f"{hook}: each event exactly once"
        for d in got:
            headers = d["headers"]
            assert headers["x-donorsync-event-id"] == d["event"]["id"]
            assert headers["x-donorsync-event-type"] == "donation.created"
            assert headers["x-donorsync-signature"].count("v1=") == len(secrets)
            for secret in secrets:  # every current secret verifies on its own (secret rolling)
                verify_hmac_sha256(
                    d["text"].encode(), headers["x-donorsync-timestamp"], headers["x-donorsync-signature"],
                    [secret], tolerance_s=300, now=time.time(),
                )  # fmt: skip
        other = SECRETS["webhook_b" if hook == "a" else "webhook_a"][0]
        with pytest.raises(Exception, match="invalid_signature"):
            verify_hmac_sha256(
                got[0]["text"].encode(), got[0]["headers"]["x-donorsync-timestamp"],
                got[0]["headers"]["x-donorsync-signature"], [other], tolerance_s=300, now=time.time(),
            )  # fmt: skip
    assert {state for _, _, _, state in outbox_rows(db)} == {"succeeded"}


def test_a_5xx_is_retried_on_the_ladder_until_it_lands(
    db: psycopg.Connection, receiver: Running, https: requests.Session
) -> None:
    settings = subscribers(receiver.base_url, "a")
    ids = _gifts(db, settings, count=2)
    receiver.emulator.settings["respond_status"] = {"a": 503}
    _push(db, https, settings)
    rows = db.execute(
        "SELECT state, attempts, error_class, error_code,"
        " round(extract(epoch FROM next_attempt_at - updated_at)) FROM sync.outbox"
    ).fetchall()
    db.commit()
    assert rows == [("pending", 1, "transient", "HTTP_503", 60)] * 2, "first rung: 1 minute"
    receiver.emulator.settings["respond_status"] = {}
    _push(db, https, settings)
    assert len(deliveries(receiver.emulator.snapshot(), "a")) == 2, "not due yet: nothing sent"
    make_due(db)
    _push(db, https, settings)
    got = deliveries(receiver.emulator.snapshot(), "a")
    assert sorted(d["event"]["id"] for d in got) == sorted(list(ids) * 2)
    assert sorted(d["headers"]["x-donorsync-delivery-attempt"] for d in got) == ["1", "1", "2", "2"]
    assert {state for _, _, _, state in outbox_rows(db)} == {"succeeded"}


@pytest.mark.parametrize("status", [400, 410])
def test_a_4xx_dead_letters_for_that_subscriber_only(
    db: psycopg.Connection, receiver: Running, https: requests.Session, status: int
) -> None:
    settings = subscribers(receiver.base_url, "a", "b")
    ids = _gifts(db, settings)
    receiver.emulator.settings["respond_status"] = {"b": status}
    _push(db, https, settings)
    letters = db.execute(
        "SELECT destination, entity, record_key, error_class, error_code, attempts FROM sync.dead_letters"
        " ORDER BY record_key"
    ).fetchall()
    db.commit()
    assert letters == [
        ("webhook_b", "donation_created", i, "permanent", f"HTTP_{status}", 1) for i in sorted(ids)
    ], "dead at once: a refusal is not retried on the ladder"
    assert len(deliveries(receiver.emulator.snapshot(), "b")) == 3, "no retry of a permanent refusal"
    assert sorted(d["event"]["id"] for d in deliveries(receiver.emulator.snapshot(), "a")) == sorted(ids)
    states = {(d, s) for d, _, _, s in outbox_rows(db)}
    assert states == {("webhook_a", "succeeded"), ("webhook_b", "dead")}


def test_an_unreachable_subscriber_is_retried_and_does_not_block_the_other(
    db: psycopg.Connection, receiver: Running, https: requests.Session
) -> None:
    settings = subscribers(receiver.base_url, "a", "b")
    down = EventSettings(
        subscribers=(
            settings.subscribers[0].model_copy(update={"url": "https://127.0.0.1:9/hooks/a"}),
            settings.subscribers[1],
        )
    )
    ids = _gifts(db, down)
    _push(db, https, down)
    rows = db.execute(
        "SELECT destination, state, error_code, count(*) FROM sync.outbox GROUP BY 1, 2, 3 ORDER BY 1"
    ).fetchall()
    db.commit()
    # The first event met the failure; the rest of its batch was not sent; the next batches
    # found the same (each claim is its own call).
    assert {(d, s) for d, s, _, _ in rows} == {("webhook_a", "pending"), ("webhook_b", "succeeded")}
    assert {c for d, _, c, _ in rows if d == "webhook_a"} <= {"NETWORK", "NOT_SENT"}
    assert sorted(d["event"]["id"] for d in deliveries(receiver.emulator.snapshot(), "b")) == sorted(ids)


def _attempts(db: psycopg.Connection) -> dict[str, tuple[str, int, str | None, int]]:
    """Per event id: outbox state, attempts, error code, and push_log rows (attempts logged)."""
    rows = db.execute(
        "SELECT o.record_key, o.state, o.attempts, o.error_code,"
        " (SELECT count(*) FROM sync.push_log p WHERE p.outbox_id = o.outbox_id)"
        " FROM sync.outbox o"
    ).fetchall()
    db.commit()
    return {str(k): (str(s), int(a), c, int(n)) for k, s, a, c, n in rows}


def test_a_connection_reset_fails_only_its_event_and_the_rest_of_the_batch_is_delivered(
    db: psycopg.Connection, receiver: Running, https: requests.Session
) -> None:
    settings = subscribers(receiver.base_url, "a")
    ids = _gifts(db, settings, count=4)
    receiver.emulator.faults.set([FaultRule(kind="reset", path="^/hooks/a$", count=1)])
    _push(db, https, settings, batch_size=10)  # the four events in one batch
    delivered = {d["event"]["id"] for d in deliveries(receiver.emulator.snapshot(), "a")}
    assert len(delivered) == 3, "the events after the reset one were still sent"
    (reset,) = ids - delivered
    rows = _attempts(db)
    assert rows[reset] == ("pending", 1, "NETWORK", 1)
    assert {rows[i] for i in delivered} == {("succeeded", 1, None, 1)}
    make_due(db)
    _push(db, https, settings, batch_size=10)
    again = [d for d in deliveries(receiver.emulator.snapshot(), "a") if d["event"]["id"] == reset]
    assert [d["headers"]["x-donorsync-delivery-attempt"] for d in again] == ["2"]
    assert {state for _, _, _, state in outbox_rows(db)} == {"succeeded"}


def test_events_a_down_subscriber_was_never_sent_use_no_attempt(
    db: psycopg.Connection, receiver: Running, https: requests.Session
) -> None:
    settings = subscribers(receiver.base_url, "a")
    down = EventSettings(
        subscribers=(settings.subscribers[0].model_copy(update={"url": "https://127.0.0.1:9/hooks/a"}),)
    )
    ids = _gifts(db, down, count=5)
    _push(db, https, down, batch_size=10)
    rows = _attempts(db)
    tried = {i for i in ids if rows[i][2] == "NETWORK"}
    assert {rows[i] for i in tried} == {("pending", 1, "NETWORK", 1)}
    assert len(tried) == 2, "the batch stops after two connection failures in a row"
    assert {rows[i] for i in ids - tried} == {("pending", 0, "NOT_SENT", 0)}, "no attempt used, none logged"
    make_due(db)
    _push(db, https, settings, batch_size=10)  # the subscriber is back
    got = deliveries(receiver.emulator.snapshot(), "a")
    attempt = {d["event"]["id"]: d["headers"]["x-donorsync-delivery-attempt"] for d in got}
    assert attempt == {i: ("2" if i in tried else "1") for i in ids}
    assert {state for _, _, _, state in outbox_rows(db)} == {"succeeded"}
