"""The webhook receiver over httpx against the ASGI app and a real Postgres: what is stored, and
that every refused request is answered with the right status and writes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI

from donor_sync.web.webhooks.secret_sources import StaticSecrets
from tests.web.conftest import (
    CLASSY_SECRET,
    DONORBOX_SECRET,
    PLATFORM_IP,
    STRIPE_SECRET,
    dumps,
    envelope,
    inbox_count,
    post,
    settings_with,
    signed_hmac,
    signed_stripe,
    stripe_event,
)

MakeApp = Callable[..., FastAPI]
#: The receiver's clock in the table-driven cases (signatures are made when the table is built).
NOW = 1_767_225_900


def test_a_signed_stripe_event_is_stored_as_received(make_app: MakeApp, db: psycopg.Connection) -> None:
    body = json.dumps(stripe_event("evt_store"), indent=2).encode()
    headers = {
        **signed_stripe(body),
        "Authorization": "Bearer sk_live_should_never_be_stored",
        "Cookie": "session=abc",
        "X-Api-Key": "k",
        "X-Session-Token": "t",
        "User-Agent": "Stripe/1.0",
    }
    response = post(make_app(), "/stripe", body, headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "stored"}
    row = db.execute(
        """
        SELECT source, event_id, event_type, event_created_at, headers, content_type, body,
               body_sha256, body_bytes, signature_scheme, signature_verified, host(remote_addr), processed_at
          FROM raw.webhook_inbox
        """
    ).fetchone()
    assert row is not None
    (
        source,
        event_id,
        event_type,
        created,
        stored_headers,
        ctype,
        stored_body,
        sha,
        size,
        scheme,
        ok,
        addr,
        done,
    ) = row
    assert (source, event_id, event_type) == ("stripe", "evt_store", "charge.succeeded")
    assert created.timestamp() == 1_767_225_600
    assert stored_body == json.loads(body)
    assert (bytes(sha), size) == (hashlib.sha256(body).digest(), len(body))
    assert (ctype, scheme, ok, addr, done) == ("application/json", "stripe_v1", True, PLATFORM_IP, None)
    assert stored_headers["user-agent"] == "Stripe/1.0"
    assert "stripe-signature" in stored_headers
    assert all(k == k.lower() for k in stored_headers)
    assert not {"authorization", "cookie", "x-api-key", "x-session-token"} & set(stored_headers)


def test_an_hmac_signed_donorbox_event_is_stored(make_app: MakeApp, db: psycopg.Connection) -> None:
    body = dumps(envelope("dbx-evt-1", "donation.created", {"id": 40000002, "amount": "5.00"}))
    response = post(make_app(), "/donorbox", body, signed_hmac(body, DONORBOX_SECRET))
    assert response.json() == {"status": "stored"}
    row = db.execute(
        "SELECT event_id, event_type, event_created_at, signature_scheme, signature_verified"
        " FROM raw.webhook_inbox"
    ).fetchone()
    assert row is not None
    assert row[0:2] == ("dbx-evt-1", "donation.created")
    assert row[2].isoformat() == "2026-01-01T00:00:00+00:00"
    assert row[3:] == ("hmac_sha256", True)


def _refusals() -> list[Any]:
    now = NOW
    stripe_body = dumps(stripe_event("evt_refused"))
    dbx_body = dumps(envelope("dbx-1", "donation.created", {"id": 1}))
    cases: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
        (
            "wrong secret",
            "/stripe",
            stripe_body,
            signed_stripe(stripe_body, secrets=("whsec_other",), at=now),
            401,
            "invalid_signature",
        ),
        (
            "stale timestamp (an old signed request replayed)",
            "/stripe",
            stripe_body,
            signed_stripe(stripe_body, at=now - 301),
            401,
            "timestamp_outside_tolerance",
        ),
        (
            "future timestamp beyond the tolerance",
            "/stripe",
            stripe_body,
            signed_stripe(stripe_body, at=now + 301),
            401,
            "timestamp_outside_tolerance",
        ),
        (
            "missing signature header",
            "/stripe",
            stripe_body,
            {"Content-Type": "application/json"},
            401,
            "missing_signature",
        ),
        (
            "malformed signature header",
            "/stripe",
            stripe_body,
            {"Content-Type": "application/json", "Stripe-Signature": "v1=abc"},
            400,
            "malformed_signature",
        ),
        (
            "signature header without v1",
            "/stripe",
            stripe_body,
            {"Content-Type": "application/json", "Stripe-Signature": f"t={now},v0=abc"},
            400,
            "malformed_signature",
        ),
        (
            "tampered body",
            "/stripe",
            stripe_body.replace(b"2500", b"9500"),
            signed_stripe(stripe_body, at=now),
            401,
            "invalid_signature",
        ),
        (
            "signed but malformed JSON",
            "/stripe",
            b'{"id": "evt_x", ',
            signed_stripe(b'{"id": "evt_x", ', at=now),
            400,
            "invalid_json",
        ),
        (
            "signed JSON that is not an object",
            "/stripe",
            b'["evt"]',
            signed_stripe(b'["evt"]', at=now),
            400,
            "invalid_json",
        ),
        (
            "signed JSON with NaN",
            "/stripe",
            b'{"id": "e", "amount": NaN}',
            signed_stripe(b'{"id": "e", "amount": NaN}', at=now),
            400,
            "invalid_json",
        ),
        (
            "signed body without an event id",
            "/stripe",
            b'{"type": "charge.succeeded"}',
            signed_stripe(b'{"type": "charge.succeeded"}', at=now),
            400,
            "missing_event_id",
        ),
        (
            "wrong content type",
            "/stripe",
            stripe_body,
            {**signed_stripe(stripe_body, at=now), "Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (
            "hmac: signed with another platform's secret",
            "/donorbox",
            dbx_body,
            signed_hmac(dbx_body, CLASSY_SECRET, at=now),
            401,
            "invalid_signature",
        ),
        (
            "hmac: stale timestamp",
            "/donorbox",
            dbx_body,
            signed_hmac(dbx_body, DONORBOX_SECRET, at=now - 600),
            401,
            "timestamp_outside_tolerance",
        ),
        (
            "hmac: timestamp header missing",
            "/donorbox",
            dbx_body,
            {
                k: v
                for k, v in signed_hmac(dbx_body, DONORBOX_SECRET, at=now).items()
                if k != "X-DonorSync-Timestamp"
            },
            401,
            "missing_signature",
        ),
        (
            "hmac: timestamp not a number",
            "/donorbox",
            dbx_body,
            {**signed_hmac(dbx_body, DONORBOX_SECRET, at=now), "X-DonorSync-Timestamp": "yesterday"},
            400,
            "malformed_signature",
        ),
        (
            "hmac: tampered body",
            "/donorbox",
            dbx_body.replace(b"created", b"updated"),
            signed_hmac(dbx_body, DONORBOX_SECRET, at=now),
            401,
            "invalid_signature",
        ),
        (
            "unconfigured source",
            "/paypal",
            dbx_body,
            signed_hmac(dbx_body, DONORBOX_SECRET, at=now),
            404,
            "unknown_source",
        ),
    ]
    return [pytest.param(*case[1:], id=case[0]) for case in cases]


@pytest.mark.parametrize(("path", "body", "headers", "status", "code"), _refusals())
def test_refused_requests_get_their_status_and_write_nothing(
    make_app: MakeApp,
    db: psycopg.Connection,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = post(make_app(clock=lambda: NOW), path, body, headers)
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    assert set(response.json()) == {"error", "message"}
    for leaked in (STRIPE_SECRET, DONORBOX_SECRET, CLASSY_SECRET, "evt_refused", "2500", "dbx-1"):
        assert leaked not in response.text
    assert inbox_count(db) == 0


@pytest.mark.parametrize(
    ("body", "stored", "event_id"),
    [
        pytest.param(
            b'{"id": "evt_nul", "note": "a\\u0000b", "kept": "\\\\u0000"}',
            {"id": "evt_nul", "note": "a\ufffdb", "kept": "\\u0000"},
            "evt_nul",
            id="NUL (an escaped backslash before u0000 is text, kept)",
        ),
        pytest.param(
            b'{"id": "evt_\\u0000", "type": "charge.succeeded"}',
            {"id": "evt_\ufffd", "type": "charge.succeeded"},
            "evt_\ufffd",
            id="NUL in the event id",
        ),
        pytest.param(
            b'{"id": "evt_sur", "a": "\\ud800x", "b": "\\udc00", "c": "\\ud83d\\ude00", "d": "\\ud83d"}',
            {"id": "evt_sur", "a": "\ufffdx", "b": "\ufffd", "c": "\U0001f600", "d": "\ufffd"},
            "evt_sur",
            id="lone surrogates (a pair is kept)",
        ),
        pytest.param(
            b'{"id": "evt_num", "big": 1e1000000, "tiny": -1e-1000000, "ok": 25.10, "s": "1e1000000"}',
            {"id": "evt_num", "big": "1e1000000", "tiny": "-1e-1000000", "ok": 25.10, "s": "1e1000000"},
            "evt_num",
            id="numbers beyond numeric",
        ),
    ],
)
def test_a_signed_event_jsonb_cannot_hold_is_stored_not_refused(
    make_app: MakeApp, db: psycopg.Connection, body: bytes, stored: dict[str, Any], event_id: str
) -> None:
    app = make_app()
    first = post(app, "/stripe", body, signed_stripe(body))
    assert (first.status_code, first.json()) == (200, {"status": "stored"}), first.text
    again = post(app, "/stripe", body, signed_stripe(body))  # the platform's retry is a duplicate
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"}), again.text
    row = db.execute("SELECT event_id, body, body_sha256, body_bytes FROM raw.webhook_inbox").fetchone()
    assert row is not None
    assert row[0] == event_id
    assert row[1] == stored
    assert (bytes(row[2]), row[3]) == (hashlib.sha256(body).digest(), len(body)), "the bytes received"
    assert inbox_count(db) == 1


def test_oversized_bodies_are_refused_with_413(make_app: MakeApp, db: psycopg.Connection) -> None:
    app = make_app(settings_with(stripe={"max_body_bytes": 1024}))
    body = dumps(stripe_event("evt_big", padding="x" * 2000))
    declared = post(app, "/stripe", body, signed_stripe(body))
    assert (declared.status_code, declared.json()["error"]) == (413, "body_too_large")
    small = dumps(stripe_event("evt_small"))
    assert post(app, "/stripe", small, signed_stripe(small)).status_code == 200
    assert inbox_count(db) == 1


def test_a_replayed_event_is_stored_once(make_app: MakeApp, db: psycopg.Connection) -> None:
    app = make_app()
    body = dumps(stripe_event("evt_twice"))
    first = post(app, "/stripe", body, signed_stripe(body))
    replay = post(app, "/stripe", body, signed_stripe(body))
    # The platform's own retry: same event id, re-signed later, envelope changed.
    retried_body = dumps(stripe_event("evt_twice", pending_webhooks=2))
    retried = post(app, "/stripe", retried_body, signed_stripe(retried_body, at=int(time.time()) + 5))
    assert [r.json() for r in (first, replay, retried)] == [
        {"status": "stored"},
        {"status": "duplicate"},
        {"status": "duplicate"},
    ]
    assert all(r.status_code == 200 for r in (first, replay, retried))
    assert inbox_count(db) == 1
    row = db.execute("SELECT body_sha256 FROM raw.webhook_inbox").fetchone()
    assert row is not None
    assert bytes(row[0]) == hashlib.sha256(body).digest(), "the first copy is kept"
    # The same id from another source is another event.
    dbx = dumps(envelope("evt_twice", "donation.created", {"id": 1}))
    assert post(app, "/donorbox", dbx, signed_hmac(dbx, DONORBOX_SECRET)).json() == {"status": "stored"}
    assert inbox_count(db) == 2


def test_secret_rotation_accepts_old_and_new_until_the_old_is_removed(
    make_app: MakeApp, db: psycopg.Connection
) -> None:
    secrets = StaticSecrets(
        {"stripe_webhook": "whsec_new\nwhsec_old", "donorbox_webhook": "dbx_new, dbx_old"}
    )
    app = make_app(secret_source=secrets)
    for n, secret in enumerate(("whsec_new", "whsec_old")):
        body = dumps(stripe_event(f"evt_rot_{n}"))
        assert post(app, "/stripe", body, signed_stripe(body, secrets=(secret,))).status_code == 200
    # Stripe signs with both while it rolls a secret: one v1 we know is enough.
    body = dumps(stripe_event("evt_rot_both"))
    assert (
        post(app, "/stripe", body, signed_stripe(body, secrets=("whsec_unknown", "whsec_old"))).status_code
        == 200
    )
    for n, secret in enumerate(("dbx_new", "dbx_old")):
        body = dumps(envelope(f"dbx_rot_{n}", "donation.created", {"id": n}))
        assert post(app, "/donorbox", body, signed_hmac(body, secret)).status_code == 200
    assert inbox_count(db) == 5

    secrets.set("stripe_webhook", "whsec_new")
    secrets.set("donorbox_webhook", "dbx_new")
    body = dumps(stripe_event("evt_rot_removed"))
    refused = post(app, "/stripe", body, signed_stripe(body, secrets=("whsec_old",)))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_signature")
    body = dumps(envelope("dbx_rot_removed", "donation.created", {"id": 9}))
    assert post(app, "/donorbox", body, signed_hmac(body, "dbx_old")).status_code == 401
    assert inbox_count(db) == 5


def test_a_missing_secret_is_a_503_not_an_acceptance(make_app: MakeApp, db: psycopg.Connection) -> None:
    app = make_app(secret_source=StaticSecrets({}))
    body = dumps(stripe_event("evt_nosecret"))
    response = post(app, "/stripe", body, signed_stripe(body))
    assert (response.status_code, response.json()["error"]) == (503, "no_secret")
    assert inbox_count(db) == 0


def test_the_tolerance_is_configurable(make_app: MakeApp, db: psycopg.Connection) -> None:
    app = make_app(settings_with(stripe={"tolerance_s": 30}))
    body = dumps(stripe_event("evt_tol"))
    assert post(app, "/stripe", body, signed_stripe(body, at=int(time.time()) - 60)).status_code == 401
    assert post(app, "/stripe", body, signed_stripe(body, at=int(time.time()) - 20)).status_code == 200
    assert inbox_count(db) == 1


def test_the_address_allow_list_and_trusted_proxies(make_app: MakeApp, db: psycopg.Connection) -> None:
    settings = settings_with(
        stripe={"allow_ips": ["203.0.113.0/24", "2001:db8::/32"]}, trusted_proxies=["10.0.0.0/8"]
    )
    app = make_app(settings)

    def deliver(event_id: str, client: str, forwarded: str | None = None) -> tuple[int, str]:
        body = dumps(stripe_event(event_id))
        headers = signed_stripe(body) | ({"X-Forwarded-For": forwarded} if forwarded else {})
        response = post(app, "/stripe", body, headers, client=(client, 5555))
        return response.status_code, response.json().get("error", response.json().get("status"))

    assert deliver("evt_direct_ok", "203.0.113.7") == (200, "stored")
    assert deliver("evt_v6_ok", "2001:db8::5") == (200, "stored")
    assert deliver("evt_direct_bad", "198.51.100.7") == (403, "address_not_allowed")
    # A caller that is not a trusted proxy cannot claim an allowed address.
    assert deliver("evt_spoof", "198.51.100.7", "203.0.113.7") == (403, "address_not_allowed")
    # Behind trusted proxies, the right-most untrusted hop is the caller; hops left of it are ignored.
    assert deliver("evt_proxied_ok", "10.1.1.1", "198.51.100.66, 203.0.113.8, 10.2.2.2") == (200, "stored")
    assert deliver("evt_proxied_bad", "10.1.1.1", "203.0.113.8, 198.51.100.66") == (
        403,
        "address_not_allowed",
    )
    assert deliver("evt_proxied_garbage", "10.1.1.1", "not-an-address") == (403, "address_not_allowed")
    assert deliver("evt_proxy_no_xff", "10.1.1.1") == (403, "address_not_allowed")
    rows = db.execute(
        "SELECT event_id, host(remote_addr) FROM raw.webhook_inbox ORDER BY event_id"
    ).fetchall()
    assert rows == [
        ("evt_direct_ok", "203.0.113.7"),
        ("evt_proxied_ok", "203.0.113.8"),
        ("evt_v6_ok", "2001:db8::5"),
    ]


def test_database_down_answers_503_and_stores_nothing(make_app: MakeApp, db: psycopg.Connection) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed
    app = make_app(conninfo=f"postgresql://postgres@127.0.0.1:{port}/nope")
    body = dumps(stripe_event("evt_db_down"))
    response = post(app, "/stripe", body, signed_stripe(body))
    assert (response.status_code, response.json()["error"]) == (503, "database_unavailable")
    assert response.headers["retry-after"] == "30"

    def lookup_fails() -> str:
        raise RuntimeError("connection backend down")

    failing = post(make_app(conninfo=lookup_fails), "/stripe", body, signed_stripe(body))
    assert failing.status_code == 503
    assert inbox_count(db) == 0
    # The platform's retry once the database is back is stored.
    assert post(make_app(), "/stripe", body, signed_stripe(body)).json() == {"status": "stored"}


def test_other_methods_and_paths_answer_json_errors(make_app: MakeApp) -> None:
    import asyncio

    import httpx

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            return await http.get("/stripe")

    response = asyncio.run(get())
    assert (response.status_code, response.json()["error"]) == (405, "method_not_allowed")


def test_logs_name_ids_and_outcomes_never_bodies_or_secrets(
    make_app: MakeApp, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="donor_sync")
    app = make_app()
    pii = {"email": "jane.donor@example.org", "name": "Jane Donor"}
    body = dumps(stripe_event("evt_logged", data={"object": {"id": "ch_9", "billing_details": pii}}))
    post(app, "/stripe", body, signed_stripe(body))
    post(app, "/stripe", body, signed_stripe(body))
    post(app, "/stripe", body, signed_stripe(body, secrets=("whsec_wrong",)))
    text = caplog.text
    for expected in ("evt_logged", "stored", "duplicate", "invalid_signature"):
        assert expected in text
    for secret_or_pii in (STRIPE_SECRET, "whsec_wrong", "jane.donor@example.org", "Jane Donor", "v1="):
        assert secret_or_pii not in text


def test_a_body_signed_by_stripe_python_is_accepted(make_app: MakeApp, db: psycopg.Connection) -> None:
    import stripe

    payload = json.dumps(stripe_event("evt_sdk_signed"), indent=2)
    header = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)
    headers = {"Content-Type": "application/json", "Stripe-Signature": header}
    response = post(make_app(), "/stripe", payload.encode(), headers)
    assert response.json() == {"status": "stored"}
    assert inbox_count(db) == 1
