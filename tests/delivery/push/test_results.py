"""Results written back: the retry ladder across runs, dead letters, remote ids in sync and core."""

from __future__ import annotations

import random
from datetime import timedelta

import psycopg
import pytest

from donor_sync.delivery.contracts import FailureClass, Operation, RecordResult
from donor_sync.delivery.dlq import get_dead_letter
from donor_sync.delivery.push import push_destination
from donor_sync.delivery.push.claim import claim
from donor_sync.delivery.push.context import PushContext
from donor_sync.delivery.push.results import retry_delay, write_results
from donor_sync.retry_ladder import RETRY_LADDER
from tests.delivery.fakes import FakeConnector
from tests.delivery.push.support import (
    DEST,
    add_donor,
    add_gift,
    make_due,
    outbox,
    queue,
    scalar,
    settings,
)


@pytest.mark.parametrize(
    ("retry_number", "rung"),
    [(n, rung) for n, rung in enumerate(RETRY_LADDER, start=1)],
    ids=["1m", "5m", "15m", "1h", "4h", "24h"],
)
def test_retry_delay_stays_within_the_jitter_of_its_rung(retry_number: int, rung: timedelta) -> None:
    low = retry_delay(retry_number, ladder=RETRY_LADDER, jitter=0.1, rng_value=0.0)
    high = retry_delay(retry_number, ladder=RETRY_LADDER, jitter=0.1, rng_value=0.999999)
    assert low == rung * 0.9
    assert high is not None
    assert rung * 1.0999 < high <= rung * 1.1
    rng = random.Random(7)
    drawn = [
        retry_delay(retry_number, ladder=RETRY_LADDER, jitter=0.1, rng_value=rng.random()) for _ in range(200)
    ]
    assert all(d is not None and rung * 0.9 <= d <= rung * 1.1 for d in drawn)
    assert len(set(drawn)) > 150  # jitter spreads retries out


def test_the_ladder_is_spent_after_six_retries() -> None:
    assert retry_delay(7, ladder=RETRY_LADDER, jitter=0.1, rng_value=0.5) is None


def test_a_failing_record_climbs_the_ladder_across_runs_then_dead_letters(db: psycopg.Connection) -> None:
    donor = add_donor(db)
    outbox_id = queue(db, str(donor), donor_id=donor)
    seen_delays = []
    for run in range(1, 8):
        # A new connector and a new push each time: only the database carries the record's state.
        fake = FakeConnector()
        fake.fail(str(donor), FailureClass.TRANSIENT, "SERVER_BUSY")
        report = push_destination(
            db, fake, worker_id=f"run{run}", settings=settings(), rng=random.Random(run)
        )
        assert report.total("pushed") == 1
        row = outbox(db, outbox_id)
        assert row["attempts"] == run
        if run < 7:
            assert row["state"] == "pending"
            assert row["error_class"] == "transient"
            assert row["error_code"] == "SERVER_BUSY"
            rung = RETRY_LADDER[run - 1].total_seconds()
            assert rung * 0.9 - 0.01 <= row["delay_s"] <= rung * 1.1 + 0.01
            seen_delays.append(row["delay_s"])
            # Not due yet: a push now sends nothing.
            idle = FakeConnector()
            assert push_destination(db, idle, worker_id="early", settings=settings()).total("pushed") == 0
            assert idle.calls == []
            make_due(db)
    assert seen_delays == sorted(seen_delays)
    row = outbox(db, outbox_id)
    assert row["state"] == "dead"
    letter = db.execute(
        "SELECT error_class, error_code, remediation, attempts, status, dead_letter_id,"
        " first_failed_at < last_failed_at, outbox_id FROM sync.dead_letters WHERE record_key = %s",
        (str(donor),),
    ).fetchall()
    # The payload is encrypted at rest (encryption.yaml): read it through the DLQ store.
    assert get_dead_letter(db, letter[0][5]).payload["Donor_Sync_Id__c"] == str(donor)
    assert letter == [
        (
            "transient",
            "SERVER_BUSY",
            FailureClass.TRANSIENT.remediation,
            7,
            "open",
            letter[0][5],
            True,
            outbox_id,
        )
    ]
    logged = scalar(
        db, "SELECT array_agg(attempt ORDER BY attempt) FROM sync.push_log WHERE outbox_id = %s", outbox_id
    )
    assert logged == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    "error_class",
    [
        FailureClass.VALIDATION,
        FailureClass.DUPLICATE_RULE,
        FailureClass.CONSENT_BLOCKED,
        FailureClass.PERMANENT,
    ],
    ids=str,
)
def test_a_non_retryable_failure_dead_letters_at_once(
    db: psycopg.Connection, error_class: FailureClass
) -> None:
    bad = queue(db, "bad")
    good = queue(db, "good")
    fake = FakeConnector()
    fake.fail("bad", error_class, "REJECTED")
    report = push_destination(db, fake, worker_id="w", settings=settings())
    assert report.total("dead_lettered") == 1
    assert report.total("succeeded") == 1
    assert outbox(db, bad)["state"] == "dead"
    assert outbox(db, bad)["attempts"] == 1
    assert outbox(db, good)["state"] == "succeeded"
    row = db.execute(
        "SELECT error_class, error_code, remediation, attempts, message FROM sync.dead_letters"
    ).fetchone()
    assert row == (error_class.value, "REJECTED", error_class.remediation, 1, "fake REJECTED on field Email")


def test_a_rate_limited_record_waits_without_climbing_the_ladder(db: psycopg.Connection) -> None:
    outbox_id = queue(db, "r")
    fake = FakeConnector()
    fake.fail("r", FailureClass.RATE_LIMITED, "RATE_LIMITS", times=3)
    for _ in range(3):
        push_destination(db, fake, worker_id="w", settings=settings())
        row = outbox(db, outbox_id)
        assert (row["state"], row["attempts"], row["error_class"]) == ("pending", 0, "rate_limited")
        assert 54 <= row["delay_s"] <= 66  # always the first rung: nothing about the record is wrong
        make_due(db)
    push_destination(db, fake, worker_id="w", settings=settings())
    assert outbox(db, outbox_id)["state"] == "succeeded"


def test_remote_ids_land_in_destination_state_and_core(db: psycopg.Connection) -> None:
    donor = add_donor(db)
    gift = add_gift(db, donor, "stripe:ch_1")
    db.commit()
    contact = queue(db, str(donor), donor_id=donor)
    opportunity = queue(
        db, "stripe:ch_1", entity="opportunity", donor_id=donor, payload={"Amount": 25},
        depends_on=[("contact", str(donor))],
    )  # fmt: skip
    fake = FakeConnector()
    report = push_destination(db, fake, worker_id="w", settings=settings())
    assert report.total("succeeded") == 2
    contact_id = fake.landed[("contact", str(donor))].remote_id
    opportunity_id = fake.landed[("opportunity", "stripe:ch_1")].remote_id
    state = db.execute(
        "SELECT entity, record_key, remote_id, donor_id, last_outbox_id,"
        " last_payload_sha256 = (SELECT payload_sha256 FROM sync.outbox o"
        "                        WHERE o.outbox_id = s.last_outbox_id)"
        " FROM sync.destination_state s WHERE destination = %s ORDER BY entity",
        (DEST,),
    ).fetchall()
    assert state == [
        ("contact", str(donor), contact_id, donor, contact, True),
        ("opportunity", "stripe:ch_1", opportunity_id, donor, opportunity, True),
    ]
    sources = db.execute(
        "SELECT donor_id, external_id, id_kind, retired_at FROM core.donor_sources"
        " WHERE system = %s AND role = 'destination'",
        (DEST,),
    ).fetchall()
    assert sources == [(donor, contact_id, "contact", None)]
    gifts = db.execute(
        "SELECT gift_id, entity, remote_id FROM core.gift_destinations WHERE destination = %s", (DEST,)
    )
    assert gifts.fetchall() == [(gift, "opportunity", opportunity_id)]
    # The opportunity was handed the contact's remote id.
    assert fake.sent("stripe:ch_1")[0].remote_refs == {
        next(iter(fake.sent("stripe:ch_1")[0].depends_on)): contact_id
    }
    # A second version of the contact updates in place: same remote id, no second core row.
    queue(db, str(donor), donor_id=donor, payload={"LastName": "Okafor-Reyes"})
    push_destination(db, fake, worker_id="w", settings=settings())
    assert fake.sent(str(donor))[-1].remote_id == contact_id
    assert scalar(db, "SELECT count(*) FROM core.donor_sources WHERE role = 'destination'") == 1
    assert scalar(db, "SELECT count(*) FROM sync.destination_state") == 2


def test_a_delete_marks_the_record_removed_and_retires_its_core_id(db: psycopg.Connection) -> None:
    donor = add_donor(db)
    db.commit()
    queue(db, str(donor), donor_id=donor)
    fake = FakeConnector()
    push_destination(db, fake, worker_id="w", settings=settings())
    queue(db, str(donor), donor_id=donor, operation="archive", payload={})
    push_destination(db, fake, worker_id="w", settings=settings())
    assert fake.landed[("contact", str(donor))].deleted
    row = db.execute(
        "SELECT remote_deleted_at IS NOT NULL, last_payload_sha256 IS NULL FROM sync.destination_state"
    ).fetchone()
    assert row == (True, True)
    assert (
        scalar(db, "SELECT retired_at IS NOT NULL FROM core.donor_sources WHERE role = 'destination'") is True
    )


def test_a_landed_merge_closes_its_merge_row_and_the_merged_record(db: psycopg.Connection) -> None:
    survivor, merged = add_donor(db), add_donor(db)
    db.commit()
    fake = FakeConnector()
    queue(db, str(survivor), donor_id=survivor)
    queue(db, str(merged), donor_id=merged)
    push_destination(db, fake, worker_id="w", settings=settings())
    survivor_remote = fake.landed[("contact", str(survivor))].remote_id
    merged_remote = fake.landed[("contact", str(merged))].remote_id
    merge_id = queue(
        db, str(merged), operation="merge", donor_id=merged,
        payload={"primary_remote_id": survivor_remote, "merged_remote_id": merged_remote},
        depends_on=[("contact", str(survivor))],
    )  # fmt: skip
    db.execute(
        "INSERT INTO sync.destination_merges (destination, entity, survivor_key, merged_key,"
        " merged_remote_id,"
        " method, outbox_id) VALUES (%s, 'contact', %s, %s, %s, 'api', %s)",
        (DEST, str(survivor), str(merged), merged_remote, merge_id),
    )
    db.commit()
    push_destination(db, fake, worker_id="w", settings=settings())
    assert outbox(db, merge_id)["state"] == "succeeded"
    merge = db.execute("SELECT status, resolved_by LIKE 'push:w#%%' FROM sync.destination_merges").fetchone()
    assert merge == ("merged", True)
    merged_state = db.execute(
        "SELECT remote_deleted_at IS NOT NULL, remote_id FROM sync.destination_state WHERE record_key = %s",
        (str(merged),),
    ).fetchone()
    assert merged_state == (True, merged_remote)
    retired = db.execute(
        "SELECT external_id, retired_at IS NOT NULL FROM core.donor_sources WHERE role = 'destination'"
        " ORDER BY external_id"
    ).fetchall()
    assert sorted(retired) == sorted([(survivor_remote, False), (merged_remote, True)])


def test_a_failed_record_with_a_newer_version_queued_is_replaced_not_requeued(db: psycopg.Connection) -> None:
    old = queue(db, "k")
    ctx = PushContext(destination=DEST, claimed_by="w#1")
    taken = claim(db, ctx, entity="contact", operation=Operation.UPSERT, limit=10)
    db.commit()
    newer = queue(db, "k", payload={"LastName": "New"})  # the outbox queues a follow-up meanwhile
    counts = write_results(
        db,
        ctx,
        [RecordResult(outbox_id=taken.records[0].outbox_id, ok=False, error_class=FailureClass.TRANSIENT)],
    )
    db.commit()
    assert (counts.superseded, counts.retrying) == (1, 0)
    assert outbox(db, old)["state"] == "canceled"
    assert outbox(db, newer)["state"] == "pending"


def test_a_record_that_was_not_sent_uses_no_attempt_and_is_never_dead_lettered_for_it(
    db: psycopg.Connection,
) -> None:
    spent = queue(db, "spent")  # every rung used: one more failed attempt would dead-letter it
    fresh = queue(db, "fresh")
    db.execute("UPDATE sync.outbox SET attempts = %s WHERE outbox_id = %s", (len(RETRY_LADDER), spent))
    db.commit()
    ctx = PushContext(destination=DEST, claimed_by="w#1", options=settings(jitter=0.0).push)
    assert len(claim(db, ctx, entity="contact", operation=Operation.UPSERT, limit=10).records) == 2
    db.commit()
    counts = write_results(
        db,
        ctx,
        [
            RecordResult(
                outbox_id=i, ok=False, error_class=FailureClass.TRANSIENT, error_code="NOT_SENT", sent=False
            )
            for i in (spent, fresh)
        ],
    )
    db.commit()
    assert (counts.retrying, counts.dead_lettered) == (2, 0)
    row = outbox(db, spent)
    assert (row["state"], row["attempts"], row["error_code"]) == ("pending", len(RETRY_LADDER), "NOT_SENT")
    assert row["delay_s"] == pytest.approx(RETRY_LADDER[-1].total_seconds(), abs=1)
    row = outbox(db, fresh)
    assert (row["state"], row["attempts"]) == ("pending", 0)
    assert row["delay_s"] == pytest.approx(RETRY_LADDER[0].total_seconds(), abs=1)
    assert scalar(db, "SELECT count(*) FROM sync.push_log") == 0, "no attempt was made: none is logged"
    assert scalar(db, "SELECT count(*) FROM sync.dead_letters") == 0
    with pytest.raises(ValueError, match="not sent"):
        RecordResult(outbox_id=1, ok=True, sent=False)


def test_results_of_a_lost_lease_are_ignored(db: psycopg.Connection) -> None:
    outbox_id = queue(db, "k")
    slow = PushContext(destination=DEST, claimed_by="slow#1")
    claim(db, slow, entity="contact", operation=Operation.UPSERT, limit=10)
    db.commit()
    make_due(db)  # the slow worker's lease expires ...
    fast = PushContext(destination=DEST, claimed_by="fast#1")
    assert len(claim(db, fast, entity="contact", operation=Operation.UPSERT, limit=10).records) == 1
    db.commit()
    late = write_results(
        db, slow, [RecordResult(outbox_id=outbox_id, ok=False, error_class=FailureClass.VALIDATION)]
    )
    db.commit()
    assert late.stale == 1
    assert late.dead_lettered == 0
    row = outbox(db, outbox_id)
    assert (row["state"], row["claimed_by"]) == ("in_flight", "fast#1")
    done = write_results(db, fast, [RecordResult(outbox_id=outbox_id, ok=True, remote_id="R1")])
    db.commit()
    assert done.succeeded == 1
    assert outbox(db, outbox_id)["state"] == "succeeded"
    assert scalar(db, "SELECT count(*) FROM sync.dead_letters") == 0


def test_a_newer_version_landing_closes_the_open_dead_letter(db: psycopg.Connection) -> None:
    queue(db, "k")
    fake = FakeConnector()
    fake.fail("k", FailureClass.VALIDATION, "BAD_PICKLIST", times=1)
    push_destination(db, fake, worker_id="w", settings=settings())
    assert scalar(db, "SELECT status FROM sync.dead_letters") == "open"
    queue(db, "k", payload={"LastName": "Fixed at the source"})
    push_destination(db, fake, worker_id="w", settings=settings())
    letter = db.execute("SELECT dead_letter_id, status, note FROM sync.dead_letters").fetchone()
    assert letter is not None
    assert letter[1] == "discarded"
    assert letter[2].startswith("superseded")
    audit = db.execute(
        "SELECT action, object_type, object_id, details ->> 'reason' FROM sync.audit_log"
    ).fetchall()
    assert audit == [("dlq.discarded", "dead_letter", str(letter[0]), "superseded")]
