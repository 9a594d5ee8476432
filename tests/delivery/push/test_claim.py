"""Claiming: priority order and cut, leases, reclaiming, dependencies, concurrent claimers."""

from __future__ import annotations

import threading

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.delivery.contracts import Operation, RecordRef
from donor_sync.delivery.push.claim import DEPENDENCY_MISSING, DEPENDENCY_WAITING, claim, count_due
from donor_sync.delivery.push.context import PushContext
from donor_sync.delivery.push.settings import PushOptions
from tests.delivery.push.support import DEST, make_due, outbox, queue, queue_many, scalar

UPSERT = Operation.UPSERT


def _ctx(name: str = "w#1", **options: int) -> PushContext:
    return PushContext(destination=DEST, claimed_by=name, options=PushOptions(**options))


def test_claims_lowest_priority_values_first_and_respects_the_cut(db: psycopg.Connection) -> None:
    ids = {p: queue(db, f"p{p}", priority=p) for p in (100, 10, 50, 200)}
    taken = claim(db, _ctx(), entity="contact", operation=UPSERT, limit=2)
    db.commit()
    assert [r.record_key for r in taken.records] == ["p10", "p50"]
    assert count_due(db, DEST, "contact", UPSERT) == 2
    assert count_due(db, DEST, "contact", UPSERT, priority_cut=100) == 1
    assert count_due(db, DEST, "contact", UPSERT, priority_cut=100, above_cut=True) == 1
    cut = claim(db, _ctx(), entity="contact", operation=UPSERT, limit=10, priority_cut=100)
    db.commit()
    assert [r.outbox_id for r in cut.records] == [ids[100]]
    assert outbox(db, ids[200])["state"] == "pending"


def test_a_claim_holds_rows_for_the_lease_and_an_expired_lease_is_reclaimed(db: psycopg.Connection) -> None:
    ids = queue_many(db, 3)
    first = claim(db, _ctx("a#1", lease_seconds=600), entity="contact", operation=UPSERT, limit=10)
    db.commit()
    assert sorted(r.outbox_id for r in first.records) == ids
    row = outbox(db, ids[0])
    assert (row["state"], row["claimed_by"]) == ("in_flight", "a#1")
    assert 599 <= row["delay_s"] <= 601
    assert claim(db, _ctx("b#1"), entity="contact", operation=UPSERT, limit=10).records == []
    db.commit()
    make_due(db)  # worker a died; its lease runs out
    second = claim(db, _ctx("b#1"), entity="contact", operation=UPSERT, limit=10)
    db.commit()
    assert sorted(r.outbox_id for r in second.records) == ids
    assert {outbox(db, i)["claimed_by"] for i in ids} == {"b#1"}
    assert all(outbox(db, i)["attempts"] == 0 for i in ids)  # a lost lease is not a failed attempt


def test_a_newer_version_waits_while_an_older_one_is_in_flight(db: psycopg.Connection) -> None:
    old = queue(db, "k", payload={"v": 1})
    claim(db, _ctx("a#1"), entity="contact", operation=UPSERT, limit=10)
    db.commit()
    newer = queue(db, "k", payload={"v": 2})
    assert claim(db, _ctx("b#1"), entity="contact", operation=UPSERT, limit=10).records == []
    db.commit()
    make_due(db)  # the older version's lease expired: it is reclaimed first, the newer one still waits
    again = claim(db, _ctx("b#1"), entity="contact", operation=UPSERT, limit=10)
    db.commit()
    assert [r.outbox_id for r in again.records] == [old]
    assert outbox(db, newer)["state"] == "pending"


def test_claimed_records_carry_their_own_remote_id(db: psycopg.Connection) -> None:
    queue(db, "k")
    db.execute(
        "INSERT INTO sync.destination_state (destination, entity, record_key, remote_id)"
        " VALUES (%s, 'contact', 'k', 'R-9')",
        (DEST,),
    )
    db.commit()
    taken = claim(db, _ctx(), entity="contact", operation=UPSERT, limit=10)
    assert taken.records[0].remote_id == "R-9"


def test_a_record_waits_for_its_dependency_then_goes_with_its_remote_id(db: psycopg.Connection) -> None:
    child = queue(db, "g1", entity="opportunity", depends_on=[("contact", "d1")])
    taken = claim(db, _ctx(), entity="opportunity", operation=UPSERT, limit=10)
    db.commit()
    assert (taken.records, taken.waiting) == ([], 1)
    row = outbox(db, child)
    assert (row["state"], row["attempts"], row["error_code"]) == ("pending", 0, DEPENDENCY_WAITING)
    assert 108 <= row["delay_s"] <= 132  # the short dependency wait, with jitter
    assert "contact d1" in row["error_message"]
    db.execute(
        "INSERT INTO sync.destination_state (destination, entity, record_key, remote_id)"
        " VALUES (%s, 'contact', 'd1', 'C-1')",
        (DEST,),
    )
    db.commit()
    make_due(db)
    ready = claim(db, _ctx(), entity="opportunity", operation=UPSERT, limit=10)
    db.commit()
    assert [r.outbox_id for r in ready.records] == [child]
    assert ready.records[0].remote_refs == {RecordRef("contact", "d1"): "C-1"}


def test_a_dependency_deleted_remotely_does_not_count_as_landed(db: psycopg.Connection) -> None:
    queue(db, "g1", entity="opportunity", depends_on=[("contact", "d1")])
    db.execute(
        "INSERT INTO sync.destination_state (destination, entity, record_key, remote_id, remote_deleted_at)"
        " VALUES (%s, 'contact', 'd1', 'C-1', now())",
        (DEST,),
    )
    db.commit()
    assert claim(db, _ctx(), entity="opportunity", operation=UPSERT, limit=10).waiting == 1


def test_a_record_whose_dependency_never_lands_is_dead_lettered_after_a_day(db: psycopg.Connection) -> None:
    child = queue(db, "g1", entity="opportunity", depends_on=[("contact", "d1")])
    db.execute(
        "UPDATE sync.outbox SET created_at = now() - interval '25 hours' WHERE outbox_id = %s", (child,)
    )
    db.commit()
    taken = claim(db, _ctx(), entity="opportunity", operation=UPSERT, limit=10)
    db.commit()
    assert (taken.records, taken.waiting, taken.dead_lettered) == ([], 0, 1)
    assert outbox(db, child)["state"] == "dead"
    letter = db.execute(
        "SELECT error_class, error_code, remediation, attempts FROM sync.dead_letters"
    ).fetchone()
    assert letter is not None
    assert letter[:2] == ("permanent", DEPENDENCY_MISSING)
    assert letter[3] == 0  # never sent
    assert scalar(db, "SELECT count(*) FROM sync.push_log") == 0


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_claimers_never_take_the_same_row(
    db: psycopg.Connection, db_url: str, workers: int
) -> None:
    ids = queue_many(db, 400)
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        mine: list[int] = []
        try:
            with connect(db_url) as conn:
                start.wait()
                while True:
                    taken = claim(conn, _ctx(name), entity="contact", operation=UPSERT, limit=7)
                    conn.commit()
                    if not taken.records:
                        break
                    mine.extend(r.outbox_id for r in taken.records)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        claimed[name] = mine

    threads = [threading.Thread(target=work, args=(f"w{i}#1",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = [i for mine in claimed.values() for i in mine]
    assert len(every) == len(set(every))  # nobody took a row twice
    assert sorted(every) == ids  # and every row was taken
    owners = dict(db.execute("SELECT outbox_id, claimed_by FROM sync.outbox").fetchall())
    for name, mine in claimed.items():
        assert all(owners[i] == name for i in mine)
