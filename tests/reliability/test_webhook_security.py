"""Webhook security, over HTTP against the receiver app and a real Postgres (issue 10).

Every endpoint (Stripe's scheme and the hmac_sha256 one of Donorbox and Classy) refuses, with the
right status and nothing written: a wrong or absent signature, a signature made with another
endpoint's secret, a timestamp outside the tolerance either way, a tampered body, a wrong or absent
content type, a body over the size limit whether declared or streamed without a Content-Length
(the exact limit is accepted, one byte more is not). A replayed event is stored once: the same
delivery again within the tolerance is a ``duplicate`` (200, nothing written, the first row
untouched, nothing new after a drain), the same delivery after the tolerance is refused as stale,
and the same event delivered many times at once is stored once. A property test tampers with a
signed delivery at random and checks that it is always refused and never written.

Already covered elsewhere (not repeated): the verifiers against stripe-python and their header
parsing (tests/web/test_webhooks_signatures.py), secret rotation, address allow-lists, a database
that is down, logs without bodies or secrets (test_webhooks_receiver.py), oversized uploads on a
real socket and the CLI server (test_webhooks_http.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.sources.webhook_inbox import drain_webhook_inbox
from donor_sync.web.webhooks.app import create_app
from donor_sync.web.webhooks.config import WebhookSettings, load_settings
from donor_sync.web.webhooks.secret_sources import StaticSecrets
from donor_sync.web.webhooks.signatures import hmac_signature_headers, stripe_signature_header
from tests.web.conftest import (
    CLASSY_SECRET,
    DONORBOX_SECRET,
    PLATFORM_IP,
    STRIPE_SECRET,
    envelope,
    settings_with,
    stripe_event,
)

NOW = 1_767_225_900
TOLERANCE = 300
SECRETS = {"stripe": STRIPE_SECRET, "donorbox": DONORBOX_SECRET, "classy": CLASSY_SECRET}
ENDPOINTS = ("stripe", "donorbox", "classy")


@dataclass(frozen=True)
class Delivery:
    """One signed delivery to one endpoint."""

    source: str
    body: bytes
    headers: dict[str, str]


def event_body(source: str, event_id: str, *, padding: int = 0) -> bytes:
    """A plausible event of ``source`` (``padding`` extra characters in an ignored field)."""
    extra = {"note": "x" * padding} if padding else {}
    if source == "stripe":
        return json.dumps(stripe_event(event_id, created=NOW, **extra)).encode()
    data = {"id": 40_000_000 + len(event_id), "amount": "25.00", **extra}
    kind = "donation.created" if source == "donorbox" else "transaction.created"
    return json.dumps(envelope(event_id, kind, data)).encode()


def sign(source: str, body: bytes, *, at: int = NOW, secret: str | None = None) -> dict[str, str]:
    """The signature headers ``source``'s scheme needs, made with its secret (or ``secret``)."""
    key = secret or SECRETS[source]
    if source == "stripe":
        return {"Stripe-Signature": stripe_signature_header(body, [key], at)}
    return hmac_signature_headers(body, [key], at)


def delivery(source: str, event_id: str = "evt_sec_1", *, at: int = NOW, padding: int = 0) -> Delivery:
    body = event_body(source, event_id, padding=padding)
    return Delivery(source, body, {"Content-Type": "application/json", **sign(source, body, at=at)})


async def _send(app: FastAPI, source: str, content: Any, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(PLATFORM_IP, 41234))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
        return await http.post(f"/{source}", content=content, headers=headers)


def send(
    app: FastAPI, d: Delivery, *, content: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return asyncio.run(_send(app, d.source, d.body if content is None else content, headers or d.headers))


def written(db: psycopg.Connection) -> tuple[int, int, int]:
    """Rows in the inbox, raw records and the audit log: what a request could have written."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM raw.webhook_inbox), (SELECT count(*) FROM raw.records),"
        " (SELECT count(*) FROM sync.audit_log)"
    ).fetchone()
    db.commit()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.fixture
def make_app(db_url: str) -> Callable[..., FastAPI]:
    def make(settings: WebhookSettings | None = None, *, clock: Callable[[], float] = lambda: NOW) -> FastAPI:
        return create_app(
            settings or load_settings(),
            StaticSecrets({f"{s}_webhook": secret for s, secret in SECRETS.items()}),
            conninfo=db_url,
            clock=clock,
        )

    return make


# -- every endpoint, every refusal ----------------------------------------------------------------


def _other(source: str) -> str:
    return ENDPOINTS[(ENDPOINTS.index(source) + 1) % len(ENDPOINTS)]


def _attacks() -> Iterator[Any]:
    def without(headers: dict[str, str], *names: str) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k.lower() not in {n.lower() for n in names}}

    for source in ENDPOINTS:
        d = delivery(source)
        body = d.body
        json_type = {"Content-Type": "application/json"}
        borrowed = sign(source, body, secret=SECRETS[_other(source)])
        cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
            ("wrong-secret", body, {**json_type, **sign(source, body, secret="not-the-secret")}, 401,
             "invalid_signature"),
            ("another-endpoints-secret", body, {**json_type, **borrowed}, 401, "invalid_signature"),
            ("no-signature", body, json_type, 401, "missing_signature"),
            ("stale", body, {**json_type, **sign(source, body, at=NOW - TOLERANCE - 1)}, 401,
             "timestamp_outside_tolerance"),
            ("from-the-future", body, {**json_type, **sign(source, body, at=NOW + TOLERANCE + 1)}, 401,
             "timestamp_outside_tolerance"),
            ("tampered-body", body.replace(b"25", b"95", 1) if b"25" in body else body + b" ", d.headers, 401,
             "invalid_signature"),
            ("signed-then-extended", body + b"\n", d.headers, 401, "invalid_signature"),
            ("text-plain", body, {**d.headers, "Content-Type": "text/plain"}, 415, "unsupported_media_type"),
            ("form-encoded", body, {**d.headers, "Content-Type": "application/x-www-form-urlencoded"}, 415,
             "unsupported_media_type"),
            ("json-lookalike", body, {**d.headers, "Content-Type": "application/jsonp"}, 415,
             "unsupported_media_type"),
            ("no-content-type", body, without(d.headers, "Content-Type"), 415, "unsupported_media_type"),
            ("content-length-not-a-number", body, {**d.headers, "Content-Length": "12abc"}, 400,
             "invalid_content_length"),
        ]  # fmt: skip
        for name, content, headers, status, code in cases:
            yield pytest.param(source, content, headers, status, code, id=f"{source}-{name}")


@pytest.mark.parametrize(("source", "content", "headers", "status", "code"), list(_attacks()))
def test_each_endpoint_refuses_each_attack_and_writes_nothing(
    make_app: Callable[..., FastAPI],
    db: psycopg.Connection,
    source: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = send(make_app(), Delivery(source, content, headers))
    assert (response.status_code, response.json().get("error")) == (status, code), response.text
    assert SECRETS[source] not in response.text
    assert written(db) == (0, 0, 0)


# -- the size limit: declared or streamed, to the byte ---------------------------------------------


def _exactly(source: str, size: int, event_id: str) -> Delivery:
    """A signed delivery whose body is exactly ``size`` bytes."""
    base = len(event_body(source, event_id, padding=1)) - 1
    d = delivery(source, event_id, padding=size - base)
    assert len(d.body) == size
    return d


async def _chunks(body: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("source", ENDPOINTS)
@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
def test_the_size_limit_holds_to_the_byte_declared_or_streamed(
    make_app: Callable[..., FastAPI], db: psycopg.Connection, source: str, streamed: bool
) -> None:
    limit = 4096
    app = make_app(settings_with(**{source: {"max_body_bytes": limit}}))
    over = _exactly(source, limit + 1, "evt_over")
    at_limit = _exactly(source, limit, "evt_at_limit")

    def post(d: Delivery) -> httpx.Response:
        if not streamed:
            return send(app, d)
        # A generator body: sent chunked, with no Content-Length for the receiver to check first.
        return send(app, d, content=_chunks(d.body))

    refused = post(over)
    assert (refused.status_code, refused.json()["error"]) == (413, "body_too_large")
    assert written(db)[0] == 0
    accepted = post(at_limit)
    assert accepted.json() == {"status": "stored"}, accepted.text
    assert written(db)[0] == 1


# -- replays ----------------------------------------------------------------------------------------


def _stored(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    rows = db.execute(
        "SELECT source, event_id, body_sha256, received_at FROM raw.webhook_inbox ORDER BY webhook_event_id"
    ).fetchall()
    db.commit()
    return rows


@pytest.mark.parametrize("source", ENDPOINTS)
def test_a_replayed_delivery_is_stored_once_and_refused_once_stale(
    make_app: Callable[..., FastAPI], db: psycopg.Connection, source: str
) -> None:
    clock = [float(NOW)]
    app = make_app(clock=lambda: clock[0])
    d = delivery(source, "evt_replayed")
    assert send(app, d).json() == {"status": "stored"}
    first = _stored(db)
    assert [row[:3] for row in first] == [(source, "evt_replayed", hashlib.sha256(d.body).digest())]

    # Within the tolerance, the same bytes and headers again: acknowledged, nothing written.
    clock[0] = NOW + TOLERANCE - 1
    again = send(app, d)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert _stored(db) == first

    # Drained once, replayed again: the drain finds nothing new to land.
    drained = drain_webhook_inbox(db, run_id=None)
    assert [(r.source, r.events, r.loaded) for r in drained] == [(source, 1, 1)]
    assert send(app, d).json() == {"status": "duplicate"}
    assert drain_webhook_inbox(db, run_id=None) == []

    # After the tolerance, the captured request is refused outright.
    clock[0] = NOW + TOLERANCE + 1
    stale = send(app, d)
    assert (stale.status_code, stale.json()["error"]) == (401, "timestamp_outside_tolerance")
    assert _stored(db) == first
    assert written(db)[:2] == (1, 1)


@pytest.mark.parametrize("source", ENDPOINTS)
def test_the_same_event_delivered_many_times_at_once_is_stored_once(
    make_app: Callable[..., FastAPI], db: psycopg.Connection, source: str
) -> None:
    app = make_app()
    d = delivery(source, "evt_burst")

    async def burst() -> list[httpx.Response]:
        return await asyncio.gather(*(_send(app, source, d.body, d.headers) for _ in range(8)))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert sorted(r.json()["status"] for r in responses) == ["duplicate"] * 7 + ["stored"]
    assert written(db)[0] == 1


# -- property: any tampering with a signed delivery is refused --------------------------------------


@st.composite
def tampered(draw: st.DrawFn) -> tuple[Delivery, str]:
    """A signed delivery changed in one way a forger or a broken proxy would change it."""
    source = draw(st.sampled_from(ENDPOINTS))
    d = delivery(source, f"evt_t{draw(st.integers(0, 10**6))}")
    how = draw(st.sampled_from(["body-byte", "body-cut", "signature", "timestamp", "content-type"]))
    body, headers = d.body, dict(d.headers)
    if how == "body-byte":
        index = draw(st.integers(0, len(body) - 1))
        body = body[:index] + bytes([body[index] ^ draw(st.integers(1, 255))]) + body[index + 1 :]
    elif how == "body-cut":
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif how == "signature":
        name = "Stripe-Signature" if source == "stripe" else "X-DonorSync-Signature"
        value = headers[name]
        index = draw(st.integers(0, len(value) - 1))
        replacement = draw(
            st.characters(codec="ascii", exclude_characters="\r\n\x00").filter(lambda c: c != value[index])
        )
        headers[name] = value[:index] + replacement + value[index + 1 :]
    elif how == "timestamp":
        offset = draw(st.integers(TOLERANCE + 1, 10**6)) * draw(st.sampled_from([-1, 1]))
        headers.update(sign(source, body, at=NOW + offset))
    else:
        headers["Content-Type"] = draw(
            st.sampled_from(["text/json", "application/xml", "multipart/form-data; boundary=x", "*/*", ""])
        )
    return Delivery(source, body, headers), how


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=tampered())
def test_any_tampered_delivery_is_refused_and_never_written(
    make_app: Callable[..., FastAPI], db: psycopg.Connection, case: tuple[Delivery, str]
) -> None:
    d, how = case
    response = send(make_app(), d)
    assert 400 <= response.status_code < 500, (how, response.status_code, response.text)
    assert written(db) == (0, 0, 0)
