"""Braze donation events of donors who are no Braze users: skipped with a reason, never queued to
wait a day for a user that never comes, never dead-lettered (core in Postgres -> gate -> outbox
-> push -> the Braze emulator).

The accounting of every test: each gift read ends delivered (in Braze), skipped with a reason
(counted at queue time, or settled in the outbox at push time), or dead-lettered -- nothing is
left waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from donor_sync.db import connect
from donor_sync.delivery import run as delivery
from donor_sync.delivery.connectors.braze.connector import BrazeConnector
from donor_sync.delivery.contracts import Operation, RecordRef, RenderedRecord
from donor_sync.delivery.outbox import default_renderer, queue_records
from donor_sync.delivery.outbox.dependencies import DEPENDENCY_NOT_SENT
from donor_sync.delivery.push.claim import DEPENDENCY_GATED, DEPENDENCY_MISSING, DEPENDENCY_WAITING
from donor_sync.delivery.push.gate_check import GateCheck
from donor_sync.observability import runs
from tests.delivery.connectors.braze import conftest as braze_fixtures
from tests.delivery.connectors.braze.conftest import Admin
from tests.privacy.gate.support import add_donor, add_gift, set_consent, suppress

ACTOR = "test:braze"
box = braze_fixtures.box
braze = braze_fixtures.braze
admin = braze_fixtures.admin
make_connector = braze_fixtures.make_connector
connector = braze_fixtures.connector


def _run(conn: psycopg.Connection, name: str) -> UUID:
    run_id = runs.open_run(conn, dag_id="donations_hourly", airflow_run_id=name)
    conn.commit()
    return run_id


def _metrics(conn: psycopg.Connection, run_id: UUID, stage: str) -> dict[str, float]:
    rows = conn.execute(
        "SELECT metric, value FROM sync.run_metrics WHERE run_id = %s AND stage = %s AND scope = 'braze'",
        (run_id, stage),
    ).fetchall()
    return {str(m): float(v) for m, v in rows}


def _event_rows(conn: psycopg.Connection) -> dict[str, dict[str, object]]:
    """The latest outbox row of each donation event, by gift key."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT DISTINCT ON (record_key) record_key, state, error_code, error_message"
            " FROM sync.outbox WHERE destination = 'braze' AND entity = 'donation_event'"
            " ORDER BY record_key, outbox_id DESC"
        ).fetchall()
    return {str(r["record_key"]): r for r in rows}


def _events_in_braze(admin: Admin) -> set[str]:
    return {e["properties"]["gift_key"] for user in admin.users().values() for e in user.get("events", [])}


def _dead_letters(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT record_key, error_code FROM sync.dead_letters WHERE destination = 'braze'"
        " AND entity = 'donation_event' AND status = 'open'"
    ).fetchall()
    return {str(k): str(c) for k, c in rows}


def test_a_gift_of_a_donor_with_no_braze_user_is_skipped_at_queue_time_with_its_reason(
    db_url: str, connector: BrazeConnector, admin: Admin
) -> None:
    with connect(db_url) as conn:
        member = add_donor(conn)  # consented, with an email: a Braze user
        set_consent(conn, member, "marketing", "email", "opt_in")
        no_email = add_donor(conn, email=None)  # consented, but the user object needs an email
        set_consent(conn, no_email, "marketing", "email", "opt_in")
        opted_out = add_donor(conn)  # the gate keeps them out
        set_consent(conn, opted_out, "marketing", "email", "opt_out")
        deceased = add_donor(conn)
        set_consent(conn, deceased, "marketing", "email", "opt_in")
        suppress(conn, deceased, "deceased")
        delivered = {add_gift(conn, member, "stripe:ch_m1"), add_gift(conn, member, "stripe:ch_m2")}
        skipped = {add_gift(conn, no_email, "stripe:ch_n1")}
        blocked = {add_gift(conn, opted_out, "stripe:ch_o1"), add_gift(conn, deceased, "stripe:ch_d1")}
        conn.commit()
        run_id = _run(conn, "r1")

        report = delivery.queue(conn, "braze", run_id=run_id, actor=ACTOR, approved=True)
        pushed = delivery.push(conn, connector, run_id=run_id, worker_id="test")

        # Never queued: no row waits for a user that never comes.
        events = _event_rows(conn)
        assert set(events) == delivered
        assert {r["state"] for r in events.values()} == {"succeeded"}
        assert report.entities["donation_event"].skipped == 1
        assert report.skips == {DEPENDENCY_NOT_SENT: 1}
        queue_metrics = _metrics(conn, run_id, "queue")
        assert queue_metrics[f"records_skipped_{DEPENDENCY_NOT_SENT}"] == 1
        assert queue_metrics["records_skipped"] == 1
        # Accounting: every gift read is delivered, skipped with a reason, blocked by the gate
        # (counted per reason) or dead-lettered; nothing waits.
        assert report.rows_read["gift"] == len(delivered | skipped | blocked) == 5
        assert _events_in_braze(admin) == delivered
        gate = GateCheck("braze")
        owners = {"stripe:ch_o1": opted_out, "stripe:ch_d1": deceased}
        assert {g for g, d in owners.items() if gate(conn, {d}).get(d)} == blocked
        assert queue_metrics["gate_blocked_no_consent"] == 2  # the opted-out donor and their gift
        assert queue_metrics["gate_blocked_deceased"] == 2
        assert _dead_letters(conn) == {}
        assert pushed.total("waiting") == 0
        assert _metrics(conn, run_id, "push")["waiting_dependency"] == 0
        waiting = conn.execute(
            "SELECT count(*) FROM sync.outbox WHERE destination = 'braze'"
            " AND state IN ('pending', 'in_flight')"
        ).fetchone()
        assert waiting == (0,)

        # The next run leaves the skipped gift alone: nothing queued, nothing called.
        before = len(admin.request_log())
        again = delivery.queue(conn, "braze", run_id=None, actor=ACTOR, approved=True)
        delivery.push(conn, connector, run_id=None, worker_id="test")
        assert again.queued == 0
        assert len(admin.request_log()) == before

        # Once the donor has an email they become a Braze user; a gift after that is an event.
        conn.execute("UPDATE core.donors SET email = 'late@example.org' WHERE donor_id = %s", (no_email,))
        later = add_gift(conn, no_email, "stripe:ch_n2")
        conn.commit()
        third = delivery.queue(conn, "braze", run_id=None, actor=ACTOR, approved=True)
        delivery.push(conn, connector, run_id=None, worker_id="test")
        assert third.skips.get(DEPENDENCY_NOT_SENT, 0) == 0
        assert no_email in admin.users()
        assert later in _events_in_braze(admin)


def _legacy_event(conn: psycopg.Connection, donor_id: str, gift_key: str) -> None:
    """Queue a donation event the way the queue did before it skipped them: waiting for a user
    that was never queued."""
    queue_records(
        conn,
        "braze",
        [
            RenderedRecord(
                entity="donation_event",
                record_key=gift_key,
                operation=Operation.CREATE,
                payload={"name": "donation", "time": datetime.now(UTC).isoformat(), "properties": {}},
                donor_id=donor_id,
                depends_on=(RecordRef("user", donor_id),),
                priority=50,
            )
        ],
        objects=list(default_renderer("braze").objects()),
    )


def test_events_already_waiting_for_a_donor_the_gate_now_blocks_are_settled_as_skipped(
    db_url: str, connector: BrazeConnector, admin: Admin
) -> None:
    with connect(db_url) as conn:
        # A donor Braze refuses: their user is a dead letter a person must look at, so their gift
        # keeps waiting for it (the gate lets the donor through).
        refused = add_donor(conn, email="broken@nodot")
        set_consent(conn, refused, "marketing", "email", "opt_in")
        add_gift(conn, refused, "stripe:ch_r1")
        member = add_donor(conn)
        set_consent(conn, member, "marketing", "email", "opt_in")
        add_gift(conn, member, "stripe:ch_m1")
        gated = add_donor(conn, email=None)
        set_consent(conn, gated, "marketing", "email", "opt_in")
        add_gift(conn, gated, "stripe:ch_g1")
        conn.commit()
        run_id = _run(conn, "r1")
        delivery.queue(conn, "braze", run_id=run_id, actor=ACTOR, approved=True)
        # The gift of the donor with no email, as the queue left it before it skipped such
        # gifts: waiting for a user that was never queued, a day old already (without the gate
        # check it would now be dead-lettered as DEPENDENCY_MISSING). Then the donor opts out,
        # before the next queue run withdraws it.
        _legacy_event(conn, gated, "stripe:ch_g1")
        conn.execute(
            "UPDATE sync.outbox SET created_at = now() - interval '25 hours'"
            " WHERE record_key = 'stripe:ch_g1'"
        )
        set_consent(conn, gated, "marketing", "email", "opt_out")
        conn.commit()

        pushed = delivery.push(conn, connector, run_id=run_id, worker_id="test")

        events = _event_rows(conn)
        settled = events["stripe:ch_g1"]
        assert (settled["state"], settled["error_code"]) == ("canceled", DEPENDENCY_GATED)
        assert settled["error_message"] == (
            f"skipped: the privacy gate keeps the donor out of braze (no_consent), so user {gated}"
            " will never exist there"
        )
        assert pushed.entities["donation_event"].skipped == 1
        assert _metrics(conn, run_id, "push")["skipped"] == 1
        assert "stripe:ch_g1" not in _dead_letters(conn)
        assert (events["stripe:ch_r1"]["state"], events["stripe:ch_r1"]["error_code"]) == (
            "pending",
            DEPENDENCY_WAITING,
        )
        assert events["stripe:ch_m1"]["state"] == "succeeded"

        # A day on, the gift of the refused donor is a dead letter with its class: the accounting
        # closes with every gift delivered, skipped with a reason, or dead-lettered.
        conn.execute(
            "UPDATE sync.outbox SET created_at = now() - interval '25 hours', next_attempt_at = now()"
            " WHERE record_key = 'stripe:ch_r1'"
        )
        conn.commit()
        delivery.push(conn, connector, run_id=None, worker_id="test")
        assert _dead_letters(conn) == {"stripe:ch_r1": DEPENDENCY_MISSING}
        assert _events_in_braze(admin) == {"stripe:ch_m1"}
        final = {k: r["state"] for k, r in _event_rows(conn).items()}
        assert final == {"stripe:ch_g1": "canceled", "stripe:ch_r1": "dead", "stripe:ch_m1": "succeeded"}


def test_a_destination_without_a_privacy_policy_has_no_gate_to_ask(db_url: str) -> None:
    with connect(db_url) as conn:
        donor = add_donor(conn)
        conn.commit()
        assert GateCheck("fake_crm")(conn, {donor}) == {}
        assert GateCheck("braze")(conn, {donor}) == {donor: "no_consent"}
