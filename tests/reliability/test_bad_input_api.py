"""Bad records from the source APIs, through the real extract -> stage -> standardize path (issue 10).

Property tests seed the Stripe, Donorbox and Classy emulators with records whose fields hypothesis
replaced or deleted (wrong types, huge strings, unicode edge cases, NUL characters, odd dates,
negative and absurd amounts, currency codes that do not exist), extract them over HTTPS into a
fresh database and standardize them: nothing raises, every record served is read and landed, and
every raw record ends staged, quarantined with a reason, or skipped with a reason (the batches
reconcile). The fields the emulators themselves need (id, time, object type) stay valid there.

What an emulator cannot serve -- a record without an id, an item that is not an object, NaN, a lone
surrogate, an object type no entity can be named after -- comes from a stand-in at the API seam
(as tests/sources does for garbled dates): each lands, is quarantined with the code naming what is
wrong, and never fails the batch it arrived in. A page that is not JSON is retried, then fails its
batch alone, keeping the watermark.

Already covered elsewhere: payload mutations landed directly (tests/standardize/test_pipeline_fuzz.py),
the generator's bad records and their reasons (tests/standardize/test_pipeline.py), transient and
permanent HTTP failures (tests/sources/test_stripe_extract.py, test_donorbox_classy_extract.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from donor_sync.sources.classy import ClassyApi, extract_classy
from donor_sync.sources.donorbox import DonorboxApi, extract_donorbox
from donor_sync.sources.extract import UNIDENTIFIED
from donor_sync.sources.http import SourceTransientError, default_retry
from donor_sync.sources.stripe import extract_stripe
from donor_sync.sources.stripe.helpers import StripeApi
from donor_sync.sources.watermarks import advance_from_run, read_watermark
from donor_sync.standardize.pipeline import standardize_batches
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox
from sandbox.common.tls import TlsFiles
from tests.reliability.conftest import (
    NO_WAIT,
    PROPERTY,
    Outcome,
    account,
    classy_transaction,
    iso,
    mutated,
    stripe_customer,
)
from tests.standardize.test_pipeline_support import charge, donation, rules

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(days=400)
_ids = itertools.count(1)


def _standardize(conn: psycopg.Connection, batch_ids: list[int]) -> Outcome:
    standardize_batches(conn, batch_ids, settings=rules(), now=NOW)
    return account(conn, batch_ids)


# -- the emulators ---------------------------------------------------------------------------------


@pytest.fixture
def apis(sources: Sandbox, sandbox_tls: TlsFiles) -> dict[str, Any]:
    """Each source's API client against its emulator (emulators reset, rate limits off)."""
    ca = str(sandbox_tls.ca_cert)
    for name in ("stripe", "donorbox", "classy"):
        sources[name].emulator.reset()
    sources["stripe"].emulator.settings["read_requests_per_second"] = 10_000
    return {
        "stripe": StripeApi(sources["stripe"].base_url, "sk_test_sandbox", verify=ca, retry=NO_WAIT),
        "donorbox": DonorboxApi(
            sources["donorbox"].base_url, "api@sandbox.donor-sync.test", "sandbox-donorbox-key", verify=ca,
            retry=NO_WAIT,
        ),
        "classy": ClassyApi(
            sources["classy"].base_url, "sandbox-classy-client", "sandbox-classy-secret", 1, verify=ca,
            retry=NO_WAIT,
        ),
    }  # fmt: skip


@PROPERTY
@given(data=st.data())
def test_odd_stripe_records_are_all_read_and_accounted_for(
    sources: Sandbox, apis: dict[str, Any], fresh_db: Callable[..., Any], data: st.DataObject
) -> None:
    emulator = sources["stripe"].emulator
    emulator.reset()
    emulator.settings["read_requests_per_second"] = 10_000
    created = int((NOW - timedelta(days=1)).timestamp())
    keep = frozenset({"id", "object", "created", "livemode"})
    n = next(_ids)
    charges = [
        data.draw(mutated(charge(f"ch_rel{n}_{i}", created=created + i), keep))
        for i in range(data.draw(st.integers(1, 4)))
    ]
    customers = [
        data.draw(mutated(stripe_customer(f"cus_rel{n}_{i}", created + i), keep))
        for i in range(data.draw(st.integers(0, 3)))
    ]
    emulator.seed("charges", charges)
    emulator.seed("customers", customers)
    with fresh_db() as conn:
        results = extract_stripe(
            conn, apis["stripe"], run_id=None, streams=("customers", "charges"), initial_start=SINCE
        )
        assert [(r.read, r.loaded) for r in results] == [(len(customers),) * 2, (len(charges),) * 2]
        outcome = _standardize(conn, [r.batch_id for r in results])
    assert outcome.records == len(charges) + len(customers)


@PROPERTY
@given(data=st.data())
def test_odd_donorbox_donations_are_all_read_and_accounted_for(
    sources: Sandbox, apis: dict[str, Any], fresh_db: Callable[..., Any], data: st.DataObject
) -> None:
    emulator = sources["donorbox"].emulator
    emulator.reset()
    dated = iso(NOW - timedelta(days=2))
    donations = [
        data.draw(mutated(donation(next(_ids), donation_date=dated), frozenset({"id", "donation_date"})))
        for _ in range(data.draw(st.integers(1, 5)))
    ]
    emulator.seed("donations", donations)
    with fresh_db() as conn:
        (result,) = extract_donorbox(conn, apis["donorbox"], run_id=None, initial_start=SINCE)
        assert (result.read, result.loaded) == (len(donations), len(donations))
        outcome = _standardize(conn, [result.batch_id])
    assert outcome.records == len(donations)


@PROPERTY
@given(data=st.data())
def test_odd_classy_transactions_are_all_read_and_accounted_for(
    sources: Sandbox, apis: dict[str, Any], fresh_db: Callable[..., Any], data: st.DataObject
) -> None:
    emulator = sources["classy"].emulator
    emulator.reset()  # forgets the tokens it issued: a new client fetches one
    api = ClassyApi(
        sources["classy"].base_url, "sandbox-classy-client", "sandbox-classy-secret", 1,
        verify=apis["classy"]._http.verify, retry=NO_WAIT,
    )  # fmt: skip
    keep = frozenset({"id", "organization_id", "updated_at"})
    transactions = [
        data.draw(mutated(classy_transaction(next(_ids), NOW - timedelta(hours=3)), keep))
        for _ in range(data.draw(st.integers(1, 5)))
    ]
    emulator.seed("transactions", transactions)
    with fresh_db() as conn:
        (result,) = extract_classy(conn, api, run_id=None, initial_start=SINCE)
        assert (result.read, result.loaded, result.reported) == (len(transactions),) * 3
        outcome = _standardize(conn, [result.batch_id])
    assert outcome.records == len(transactions)


# -- what no emulator serves, at the API seam ------------------------------------------------------


class DonorboxPages:
    """A stand-in for :class:`DonorboxApi` serving fixed pages."""

    def __init__(self, *pages: list[Any]) -> None:
        self.pages = pages

    def donation_pages(self, *, date_from: datetime) -> Iterator[list[Any]]:
        yield from self.pages


class StripePages:
    """A stand-in for :class:`StripeApi` serving one fixed page of charges."""

    def __init__(self, page: list[Any]) -> None:
        self.page = page

    def list_pages(self, resource: str, *, created_gte: int) -> Iterator[list[Any]]:
        yield self.page


DATED = iso(NOW - timedelta(days=3))


def _donation(**changes: Any) -> dict[str, Any]:
    return donation(next(_ids), donation_date=DATED, **changes)


SEAM_CASES = [
    pytest.param(_donation(comment="kind words\x00"), "invalid_encoding", id="nul-in-text"),
    pytest.param(_donation(donor={"first_name": "Jos\ud800"}), "invalid_encoding", id="lone-surrogate"),
    pytest.param(_donation(amount=math.nan), "malformed_amount", id="nan-amount"),
    pytest.param(_donation(amount=-math.inf), "malformed_amount", id="minus-infinity-amount"),
    pytest.param(_donation(amount=10**40), "malformed_amount", id="absurd-amount"),
    pytest.param({k: v for k, v in _donation().items() if k != "id"}, "missing_id", id="no-id"),
    pytest.param(_donation(id=""), "missing_id", id="empty-id"),
    pytest.param(_donation(id="   "), "missing_id", id="blank-id"),
    pytest.param(_donation(id=True), "missing_id", id="boolean-id"),
    pytest.param(_donation(id={"id": 7}), "missing_id", id="object-id"),
    pytest.param(_donation(id="12\x0034"), "missing_id", id="nul-in-id"),
    pytest.param(None, "missing_id", id="null-item"),
    pytest.param("donation", "missing_id", id="string-item"),
    pytest.param([1, 2], "missing_id", id="list-item"),
]


@pytest.mark.parametrize(("item", "code"), SEAM_CASES)
def test_an_item_no_emulator_would_serve_lands_and_is_quarantined_alone(
    db: psycopg.Connection, item: Any, code: str
) -> None:
    good = _donation()
    api = DonorboxPages([good, item, _donation()])
    (first,) = extract_donorbox(db, api, run_id=None, initial_start=SINCE)  # type: ignore[arg-type]
    assert (first.read, first.loaded) == (3, 3)
    outcome = _standardize(db, [first.batch_id])
    assert outcome.dispositions.get("staged") == 2, "the good records around it are staged"
    (codes,) = outcome.quarantined.values()
    assert code in codes
    # Read again (the next run's overlap): the same item is recognized, nothing lands twice.
    (again,) = extract_donorbox(db, api, run_id=None, initial_start=SINCE)  # type: ignore[arg-type]
    assert (again.read, again.loaded) == (3, 0)
    assert db.execute("SELECT status FROM raw.batches ORDER BY batch_id").fetchall() == [
        ("standardized",),
        ("loaded",),
    ]


def test_an_unidentified_item_keeps_what_was_sent_and_says_why(db: psycopg.Connection) -> None:
    (result,) = extract_donorbox(db, DonorboxPages(["not an object"]), run_id=None, initial_start=SINCE)  # type: ignore[arg-type]
    _standardize(db, [result.batch_id])
    row = db.execute(
        "SELECT r.entity, r.source_id, r.payload, q.reasons FROM raw.records r"
        " JOIN staging.quarantine q USING (raw_record_id)"
    ).fetchone()
    assert row is not None
    entity, source_id, payload, reasons = row
    assert (entity, payload) == (UNIDENTIFIED, {"item": "not an object"})
    assert source_id.startswith("sha256:")
    assert [(r["code"], r["field"]) for r in reasons] == [("missing_id", "source_id")]
    assert "without a usable id" in reasons[0]["message"]


def test_a_stripe_object_of_an_unnamable_type_lands_unidentified(db: psycopg.Connection) -> None:
    created = int((NOW - timedelta(days=1)).timestamp())
    odd = {**charge("ch_odd", created=created), "object": "Charge Object"}
    page = [
        charge("ch_fine", created=created),
        odd,
        {**charge("ch_untyped", created=created), "object": None},
    ]
    (result,) = extract_stripe(db, StripePages(page), run_id=None, streams=("charges",), initial_start=SINCE)  # type: ignore[arg-type]
    assert (result.read, result.loaded) == (3, 3)
    outcome = _standardize(db, [result.batch_id])
    assert outcome.dispositions == {"staged": 1, "quarantined": 2}
    assert sorted(outcome.quarantined.values()) == [["missing_id"], ["missing_id"]]


def test_nan_and_nul_land_the_same_way_on_every_read(db: psycopg.Connection) -> None:
    """The stored form of what jsonb cannot hold is fixed, so a re-read adds no new version."""
    item = _donation(amount=math.nan, comment="a\x00b", donor={"last_name": "\udc80"})
    api = DonorboxPages([item])
    (first,) = extract_donorbox(db, api, run_id=None, initial_start=SINCE)  # type: ignore[arg-type]
    (second,) = extract_donorbox(db, api, run_id=None, initial_start=SINCE)  # type: ignore[arg-type]
    assert (first.loaded, second.loaded) == (1, 0)
    payload = db.execute("SELECT payload FROM raw.records").fetchone()
    assert payload is not None
    assert (payload[0]["amount"], payload[0]["comment"], payload[0]["donor"]["last_name"]) == (
        "NaN",
        "a\ufffdb",
        "\ufffd",
    )


# -- pages that are not JSON -----------------------------------------------------------------------


def _production_retry(attempts: int) -> tenacity.Retrying:
    """The shipped retry policy (what it retries), without its waits."""
    return default_retry().copy(wait=tenacity.wait_none(), stop=tenacity.stop_after_attempt(attempts))


def test_a_truncated_page_is_retried_and_then_fails_its_batch_alone(
    db: psycopg.Connection, sources: Sandbox, sandbox_tls: TlsFiles
) -> None:
    running = sources["donorbox"]
    running.emulator.reset()
    running.emulator.seed("donations", [_donation(), _donation()])
    api = DonorboxApi(
        running.base_url, "api@sandbox.donor-sync.test", "sandbox-donorbox-key",
        verify=str(sandbox_tls.ca_cert), retry=_production_retry(3),
    )  # fmt: skip
    running.emulator.faults.set([FaultRule(kind="malformed", path="^/api/v1/donations", count=1)])
    run_id = _open_run(db, "r1")
    (result,) = extract_donorbox(db, api, run_id=run_id, initial_start=SINCE)
    assert (result.read, result.loaded) == (2, 2), "one cut-off page is fetched again"
    advance_from_run(db, run_id)
    before = read_watermark(db, "donorbox", "donations")

    running.emulator.seed("donations", [_donation()])
    running.emulator.faults.set([FaultRule(kind="malformed", path="^/api/v1/donations")])
    with pytest.raises(SourceTransientError, match="kept failing") as raised:
        extract_donorbox(db, api, run_id=_open_run(db, "r2"), initial_start=SINCE)
    assert "donation" not in str(raised.value).replace("/api/v1/donations", "")  # no body quoted
    assert db.execute("SELECT status, error FROM raw.batches ORDER BY batch_id").fetchall()[-1] == (
        "failed",
        "SourceTransientError",
    )
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (2,)
    after = read_watermark(db, "donorbox", "donations")
    assert (after.cursor_ts, after.cursor_id) == (before.cursor_ts, before.cursor_id)


def _open_run(db: psycopg.Connection, name: str) -> Any:
    from donor_sync.observability import runs

    return runs.open_run(db, dag_id="donations_hourly", airflow_run_id=name)
