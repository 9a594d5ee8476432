"""Bad events through the webhook path: receiver -> inbox -> drain -> standardize (issue 10).

Signed deliveries whose objects hypothesis mutated (as the API property tests do), of event types
the endpoint lands or ignores, some without the object or its id: each delivery is stored (200),
a body holding what Postgres cannot hold as jsonb (a NUL character) too, with it made storable, so
a signed event is never refused for its content and retried forever; each stored event ends
landed, ignored with ``ignored_event_type``, or failed with its error class (retried, never
dropped); and each landed record ends staged, quarantined with a reason, or skipped with a reason.

Already covered elsewhere: the drain's lineage, idempotence, locking and retries on sample data
(tests/sources/test_webhook_inbox.py), what the receiver refuses and why (tests/web, and
test_webhook_security.py here).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from hypothesis import given
from hypothesis import strategies as st

from donor_sync.sources.webhook_inbox import IGNORED_EVENT_TYPE, drain_webhook_inbox
from donor_sync.standardize.pipeline import standardize_batches
from donor_sync.web.webhooks.app import create_app
from donor_sync.web.webhooks.config import load_settings
from donor_sync.web.webhooks.secret_sources import StaticSecrets
from donor_sync.web.webhooks.signatures import hmac_signature_headers, stripe_signature_header
from tests.reliability.conftest import PROPERTY, account, classy_transaction, iso, mutated, values
from tests.standardize.test_pipeline_support import charge, donation, rules
from tests.web.conftest import CLASSY_SECRET, DONORBOX_SECRET, PLATFORM_IP, STRIPE_SECRET

NOW = datetime.now(UTC).replace(microsecond=0)
SECRETS = {"stripe": STRIPE_SECRET, "donorbox": DONORBOX_SECRET, "classy": CLASSY_SECRET}
_ids = itertools.count(1)


@st.composite
def events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(source, body) of one delivery: a mutated object in the platform's envelope."""
    source = draw(st.sampled_from(sorted(SECRETS)))
    n = next(_ids)
    created = int((NOW - timedelta(hours=2)).timestamp())
    if source == "stripe":
        obj: Any = draw(mutated(charge(f"ch_wh{n}", created=created), frozenset()))
        kind = draw(st.sampled_from(["charge.succeeded", "charge.refunded", "payout.paid", "charge.Ünknown"]))
        body = {
            "id": f"evt_wh{n}",
            "object": "event",
            "type": kind,
            "created": created,
            "data": {"object": obj},
        }
    else:
        base = (
            donation(n, donation_date=iso(NOW - timedelta(days=1)))
            if source == "donorbox"
            else classy_transaction(n, NOW - timedelta(hours=3))
        )
        obj = draw(st.one_of(mutated(base, frozenset()), values))  # sometimes no object at all
        prefix = "donation" if source == "donorbox" else "transaction"
        kind = draw(st.sampled_from([f"{prefix}.created", f"{prefix}.refunded", f"{prefix}.archived"]))
        body = {"id": f"wh-{n}", "event": kind, "created_at": iso(NOW), "data": obj}
    return source, body


def _headers(source: str, body: bytes) -> dict[str, str]:
    at = int(NOW.timestamp())
    signed = (
        {"Stripe-Signature": stripe_signature_header(body, [SECRETS[source]], at)}
        if source == "stripe"
        else hmac_signature_headers(body, [SECRETS[source]], at)
    )
    return {"Content-Type": "application/json", **signed}


async def _deliver(app: Any, deliveries: list[tuple[str, bytes]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, client=(PLATFORM_IP, 41234))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
        return [await http.post(f"/{s}", content=b, headers=_headers(s, b)) for s, b in deliveries]


def _inbox(conn: psycopg.Connection) -> dict[tuple[str, str], tuple[bool, int, str | None]]:
    rows = conn.execute(
        "SELECT source, event_id, processed_at IS NOT NULL, process_attempts, process_error"
        " FROM raw.webhook_inbox"
    ).fetchall()
    conn.commit()
    return {(str(s), str(e)): (bool(p), int(a), err) for s, e, p, a, err in rows}


@PROPERTY
@given(batch=st.lists(events(), min_size=1, max_size=5))
def test_any_signed_event_is_stored_or_refused_then_landed_ignored_or_failed_and_accounted_for(
    fresh_db: Callable[..., Any], batch: list[tuple[str, dict[str, Any]]]
) -> None:
    with fresh_db() as conn:
        url = conn.info.dsn
        app = create_app(
            load_settings(),
            StaticSecrets({f"{s}_webhook": secret for s, secret in SECRETS.items()}),
            conninfo=url,
            clock=NOW.timestamp,
        )
        deliveries = [(source, json.dumps(body).encode()) for source, body in batch]
        responses = asyncio.run(_deliver(app, deliveries))
        stored: set[tuple[str, str]] = set()
        for (source, body), response in zip(batch, responses, strict=True):
            assert (response.status_code, response.json()) == (200, {"status": "stored"}), response.text
            stored.add((source, str(body["id"])))
        assert set(_inbox(conn)) == stored

        results = drain_webhook_inbox(conn, run_id=None)
        assert sum(r.events for r in results) == len(stored)
        for key, (processed, attempts, error) in _inbox(conn).items():
            assert attempts == 1, key
            if processed:  # landed (no error), or ignored for its type
                assert error in (None, IGNORED_EVENT_TYPE), key
            else:  # failed: kept with the class of what went wrong, retried by the next drain
                assert error in ("MissingObject", "MissingObjectId"), key
        landed = conn.execute(
            "SELECT count(*) FROM raw.records WHERE webhook_event_id IS NOT NULL"
        ).fetchone()
        assert landed is not None
        assert landed[0] == sum(r.loaded for r in results)

        batch_ids = [r.batch_id for r in results]
        standardize_batches(conn, batch_ids, settings=rules(), now=NOW)
        outcome = account(conn, batch_ids)
        assert outcome.records == landed[0]
