"""Batch splitting: a record that poisons its batch is isolated and the others land."""

from __future__ import annotations

import math

import psycopg
import pytest

from donor_sync.delivery.contracts import FailureClass, Operation, OutboundRecord, RecordResult
from donor_sync.delivery.push import push_destination
from donor_sync.delivery.push.splitting import NO_RESULT, push_with_splitting
from tests.delivery.fakes import FakeConnector
from tests.delivery.push.support import queue_many, scalar, settings, states


def _records(count: int) -> list[OutboundRecord]:
    return [
        OutboundRecord(
            outbox_id=i, entity="contact", record_key=f"k{i:03d}", operation=Operation.UPSERT, payload={}
        )
        for i in range(1, count + 1)
    ]


@pytest.mark.parametrize(
    ("size", "poisoned"),
    [(100, {"k037"}), (100, {"k001", "k100"}), (64, {"k032", "k033", "k034"}), (1, {"k001"})],
    ids=["1-in-100", "first-and-last", "3-adjacent-in-64", "alone"],
)
def test_splitting_isolates_the_bad_records_and_lands_the_rest(size: int, poisoned: set[str]) -> None:
    fake = FakeConnector(batch=size)
    for key in poisoned:
        fake.poison(key)
    records = _records(size)
    outcome = push_with_splitting(fake, "contact", Operation.UPSERT, records)
    by_key = {
        r.record_key: res
        for r, res in zip(records, sorted(outcome.results, key=lambda x: x.outbox_id), strict=True)
    }
    assert len(outcome.results) == size
    assert {k for k, res in by_key.items() if not res.ok} == poisoned
    assert all(res.error_class is FailureClass.VALIDATION and res.error_code == "MALFORMED_BATCH"
               for k, res in by_key.items() if k in poisoned)  # fmt: skip
    assert {key for _, key in fake.landed} == {r.record_key for r in records} - poisoned
    assert all(landed.writes == 1 for landed in fake.landed.values())  # no good record written twice
    # Bisection: at most two calls per level of the tree per bad record, plus the first.
    assert len(outcome.calls) <= 1 + 2 * len(poisoned) * max(1, math.ceil(math.log2(size)))
    assert outcome.unavailable is None
    assert outcome.unsent == []


def test_a_destination_going_down_mid_split_keeps_what_landed() -> None:
    fake = FakeConnector(batch=8)
    fake.poison("k008")
    records = _records(8)

    calls = 0
    original = fake.push

    def push(entity: str, operation: Operation, batch: list[OutboundRecord]) -> list[RecordResult]:
        nonlocal calls
        calls += 1
        if calls == 3:  # the whole batch, then the first half, then the destination goes down
            fake.go_down(1)
        return original(entity, operation, batch)

    fake.push = push  # type: ignore[method-assign]
    outcome = push_with_splitting(fake, "contact", Operation.UPSERT, records)
    assert [r.outbox_id for r in outcome.results if r.ok] == [1, 2, 3, 4]
    assert outcome.unavailable is not None
    assert outcome.unavailable.error_code == "FAKE_DOWN"
    assert [r.outbox_id for r in outcome.unsent] == [5, 6, 7, 8]


def test_a_record_the_connector_gave_no_result_for_is_a_transient_failure() -> None:
    fake = FakeConnector(batch=3)
    original = fake.push
    fake.push = lambda e, o, batch: original(e, o, batch)[:2]  # type: ignore[method-assign, assignment]
    outcome = push_with_splitting(fake, "contact", Operation.UPSERT, _records(3))
    last = outcome.results[-1]
    assert (last.outbox_id, last.ok, last.error_class, last.error_code) == (
        3,
        False,
        FailureClass.TRANSIENT,
        NO_RESULT,
    )


def test_one_bad_record_in_a_hundred_the_engine_lands_ninety_nine(db: psycopg.Connection) -> None:
    queue_many(db, 100)
    fake = FakeConnector(batch=100)
    fake.poison("k0042")
    report = push_destination(db, fake, worker_id="w", settings=settings())
    assert report.total("succeeded") == 99
    assert report.total("dead_lettered") == 1
    assert report.total("rejected_calls") >= 7  # one rejection per level down to the bad record
    assert states(db) == {"succeeded": 99, "dead": 1}
    assert scalar(db, "SELECT count(*) FROM sync.destination_state WHERE remote_id IS NOT NULL") == 99
    assert (
        scalar(db, "SELECT record_key || ':' || error_code FROM sync.dead_letters") == "k0042:MALFORMED_BATCH"
    )
    assert len(fake.landed) == 99
