"""Shared pieces of the reliability suite: a fresh database per hypothesis example, the source
emulators, and the accounting every bad-input test checks.

The property tests draw their examples inside one test function, so the function-scoped ``db``
fixture would carry one example's rows into the next; :func:`fresh_database` gives each example
its own copy of the migrated template (a few milliseconds) instead. Example counts are modest
and fixed (``DONOR_SYNC_SCALE=ci`` only makes hypothesis replay the same examples: see
tests/conftest.py), so each module runs in well under a minute.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
import tenacity
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from donor_sync.db import connect, drop_database
from donor_sync.db.url import database_name
from donor_sync.standardize.reconcile import reconcile
from sandbox.common.runner import Sandbox
from sandbox.emulators.classy import ClassyEmulator
from sandbox.emulators.donorbox import DonorboxEmulator
from sandbox.emulators.stripe import StripeEmulator
from tests.conftest import _fresh_database

#: Hypothesis settings of the bad-input property tests: few examples, no deadline (each example
#: makes HTTPS calls and database round trips), the session fixtures they use are fine to share.
PROPERTY = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
#: No waiting between retries: the tests count attempts, not seconds.
NO_WAIT = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), reraise=True)
_databases = itertools.count()


@contextmanager
def fresh_database(server_url: str, template_url: str) -> Iterator[psycopg.Connection]:
    """Yield a connection to a new copy of the migrated template, dropped afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"ds_rel_{worker}_{os.getpid()}_{next(_databases)}"
    url = _fresh_database(server_url, name, template=database_name(template_url))
    try:
        with connect(url) as conn:
            yield conn
    finally:
        drop_database(url)


@pytest.fixture
def fresh_db(server_url: str, template_url: str) -> Callable[[], Any]:
    """Return :func:`fresh_database` bound to the test server: ``with fresh_db() as conn: ...``."""
    return lambda: fresh_database(server_url, template_url)


@pytest.fixture(scope="module")
def sources(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    """The Stripe, Donorbox and Classy emulators of this module (reset by each test that uses one)."""
    return start_emulators(StripeEmulator(), DonorboxEmulator(), ClassyEmulator())


# -- the accounting every bad input must satisfy ---------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happened to the raw records of some batches: counts by disposition, and the reasons."""

    records: int
    dispositions: dict[str, int]
    #: quarantine reason codes of each quarantined record, by raw record id
    quarantined: dict[int, list[str]]
    #: skip reason of each skipped record, by raw record id
    skipped: dict[int, str]


def account(conn: psycopg.Connection, batch_ids: Sequence[int]) -> Outcome:
    """Check that every raw record of ``batch_ids`` ended staged, quarantined with a reason (code and
    message), or skipped with a reason, and that the batches reconcile; return what happened."""
    assert reconcile(conn, batch_ids) == []
    ids = list(batch_ids)
    records = conn.execute("SELECT count(*) FROM raw.all_records(%s::bigint[])", (ids,)).fetchone()
    assert records is not None
    rows = conn.execute(
        "SELECT r.raw_record_id, d.disposition, d.reason, q.reasons"
        " FROM raw.all_records(%s::bigint[]) r"
        " LEFT JOIN staging.dispositions d USING (raw_record_id)"
        " LEFT JOIN staging.quarantine q ON q.raw_record_id = r.raw_record_id AND q.released_at IS NULL",
        (ids,),
    ).fetchall()
    conn.commit()
    counts: dict[str, int] = {}
    quarantined: dict[int, list[str]] = {}
    skipped: dict[int, str] = {}
    for raw_id, disposition, reason, reasons in rows:
        assert disposition in ("staged", "quarantined", "skipped"), f"raw record {raw_id}: {disposition}"
        counts[disposition] = counts.get(disposition, 0) + 1
        if disposition == "quarantined":
            assert reasons, f"raw record {raw_id} quarantined without a reason"
            assert all(r.get("code") and r.get("message") for r in reasons), reasons
            quarantined[int(raw_id)] = [str(r["code"]) for r in reasons]
        elif disposition == "skipped":
            assert reason, f"raw record {raw_id} skipped without a reason"
            skipped[int(raw_id)] = str(reason)
    assert sum(counts.values()) == records[0] == len(rows)
    return Outcome(int(records[0]), counts, quarantined, skipped)


# -- what a source might send where a value is expected (shared by the property tests) ----------

#: Text of every kind the emulators can serve: any code point but lone surrogates (NUL included).
any_text = st.text(max_size=30)
odd_text = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "Ren\x00ée",
        "\ufffd\ufffd",
        "RenÃ©e",  # mojibake
        "\u202eevil\u202c",  # right-to-left override
        "\u200b",  # zero-width space only
        "🎉🎉🎉",
        "e\u0301",  # a combining accent
        "Robert'); DROP TABLE donors;--",
        "=cmd|' /C calc'!A0",
        "<script>alert(1)</script>",
        "N/A",
        "null",
        "x" * 70_000,  # past anything a form would allow
    ]
)
odd_amount = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["-25.00", "0", "-0.00", "1e400", "25,00", "1.2.3", "$25", "٢٥", "0x19", "twenty", "Infinity"]
    ),
)
odd_currency = st.sampled_from(
    ["XYZ", "usd ", "US$", "", "EURO", "€", "btc", "ZZZ", "u\x00sd", "\uff35\uff33\uff24"]
)
odd_date = st.sampled_from(
    ["31/02/2026", "2026-02-30T10:00:00Z", "yesterday", "0000-00-00", "2099-01-01T00:00:00Z", "1970-01-01"]
)
odd_email = st.sampled_from(["a@@b.org", "no-at-sign", "@example.org", "a@b", " a@b.org ", "a\x00@b.org"])
scalars = st.one_of(
    st.none(), st.booleans(), any_text, odd_text, odd_amount, odd_currency, odd_date, odd_email
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=5,
)


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found.append((*prefix, key))
            found.extend(_paths(value, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], keep: frozenset[str]) -> dict[str, Any]:
    """``base`` with one to four fields (nested ones too) replaced by odd values or deleted.

    Top-level fields in ``keep`` are left alone: the emulator needs them to store and list the record.
    """
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(obj) if p[0] not in keep]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.integers(min_value=0, max_value=4)):
            parent[path[-1]] = draw(values)
        else:
            del parent[path[-1]]
    return obj


def iso(value: datetime) -> str:
    """``value`` as the platforms write times (``2026-03-01T12:00:00.000Z``)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def classy_transaction(tid: int, updated: datetime) -> dict[str, Any]:
    """A Classy transaction as API 2.0 returns it."""
    return {
        "id": tid,
        "organization_id": 1,
        "status": "success",
        "total_gross_amount": 50.0,
        "donation_gross_amount": 50.0,
        "fees_amount": 1.75,
        "currency_code": "USD",
        "purchased_at": iso(updated - timedelta(hours=1)),
        "created_at": iso(updated - timedelta(hours=1)),
        "updated_at": iso(updated),
        "member_email_address": f"member{tid}@example.org",
        "member_name": "Ana Lima",
        "billing_first_name": "Ana",
        "billing_last_name": "Lima",
        "billing_address1": "12 Elm St",
        "billing_city": "Austin",
        "billing_state": "TX",
        "billing_postal_code": "78701",
        "billing_country": "US",
        "supporter_id": 5000 + tid,
        "frequency": "one-time",
        "payment_method": "CC",
        "comment": None,
        "dedication": None,
        "metadata": {},
    }


def stripe_customer(cid: str, created: int) -> dict[str, Any]:
    """A Stripe customer as its API returns it."""
    return {
        "id": cid,
        "object": "customer",
        "created": created,
        "email": f"{cid}@example.org",
        "name": "Debra Langstead",
        "phone": "+1 813 555 0100",
        "address": {
            "line1": "1327 Church St",
            "city": "Tampa",
            "state": "FL",
            "postal_code": "33676",
            "country": "US",
        },
        "metadata": {},
        "livemode": False,
    }
