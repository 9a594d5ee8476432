"""Trigger senders against the Mailchimp and Braze emulators, through the real push engine: one
trigger per gift and journey across re-runs and a dead-letter replay."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import tenacity
from psycopg.types.json import Jsonb

from donor_sync.delivery.connectors.braze import default_retry as braze_retry
from donor_sync.delivery.connectors.braze import journey_triggers as braze_triggers
from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.connectors.mailchimp import default_retry as mailchimp_retry
from donor_sync.delivery.connectors.mailchimp import journey_triggers as mailchimp_triggers
from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient, base_url_for
from donor_sync.delivery.contracts import FailureClass, Operation, OutboundRecord, QuotaState, RecordResult
from donor_sync.delivery.dlq import store as dlq
from donor_sync.delivery.push.engine import push_destination
from donor_sync.journeys import decide
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox
from sandbox.emulators.braze import DEFAULT_API_KEY as BRAZE_KEY
from sandbox.emulators.mailchimp import DEFAULT_API_KEY as MAILCHIMP_KEY
from tests.delivery.outbox.support import land
from tests.journeys.support import add_donor, add_gift, decide_kwargs, enrollments, journey, rules

NAMES = ("mailchimp", "braze")


@pytest.fixture(scope="module")
def box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox(*NAMES)


@pytest.fixture
def sandbox(box: Sandbox) -> Iterator[Sandbox]:
    for name in NAMES:
        box[name].emulator.reset()
    yield box
    for name in NAMES:
        box[name].emulator.reset()


def _no_wait(policy: Callable[..., tenacity.Retrying]) -> Callable[[], tenacity.Retrying]:
    return lambda: policy(attempts=2, wait=tenacity.wait_none())


@pytest.fixture
def mailchimp(sandbox: Sandbox) -> MailchimpClient:
    return MailchimpClient(
        base_url_for(MAILCHIMP_KEY, sandbox["mailchimp"].base_url), MAILCHIMP_KEY,
        verify=str(sandbox.tls.ca_cert), retry=_no_wait(mailchimp_retry),
    )  # fmt: skip


@pytest.fixture
def braze(sandbox: Sandbox) -> BrazeClient:
    return BrazeClient(
        sandbox["braze"].base_url, BRAZE_KEY, verify=str(sandbox.tls.ca_cert), retry=_no_wait(braze_retry)
    )


def _state(box: Sandbox, name: str) -> dict[str, Any]:
    emulator: Any = box[name].emulator
    with emulator.lock:
        return emulator.snapshot()  # type: ignore[no-any-return]


def _seed(box: Sandbox, name: str, kind: str, records: list[dict[str, Any]]) -> None:
    emulator: Any = box[name].emulator
    with emulator.lock:
        emulator.seed(kind, records)


def _record(n: int, payload: dict[str, Any]) -> OutboundRecord:
    return OutboundRecord(n, "journey_trigger", f"stripe:ch_{n}:j", Operation.CREATE, payload)


def test_mailchimp_sender_results_per_record(sandbox: Sandbox, mailchimp: MailchimpClient) -> None:
    _seed(sandbox, "mailchimp", "members", [{"email_address": "in@example.org", "status": "subscribed"}])
    results = mailchimp_triggers.push_journey_triggers(
        mailchimp,
        [
            _record(1, {"journey_id": 1, "step_id": 2, "email_address": "in@example.org"}),
            _record(2, {"journey_id": 1, "step_id": 2, "email_address": "out@example.org"}),
            _record(3, {"journey_id": 9, "step_id": 9, "email_address": "in@example.org"}),
            _record(4, {"journey_id": 1, "step_id": 2}),
        ],
    )
    assert [(r.ok, r.error_class) for r in results] == [
        (True, None), (False, FailureClass.VALIDATION), (False, FailureClass.PERMANENT),
        (False, FailureClass.VALIDATION),
    ]  # fmt: skip
    assert all("example.org" not in (r.message or "") for r in results), "no email in messages"
    assert [t["email_address"] for t in _state(sandbox, "mailchimp")["journey_triggers"]] == [
        "in@example.org"
    ]


def test_mailchimp_sender_stops_on_auth_failure(sandbox: Sandbox, mailchimp: MailchimpClient) -> None:
    sandbox["mailchimp"].emulator.faults.set(
        [FaultRule(kind="status", status=401, path="/customer-journeys")]
    )
    payload = {"journey_id": 1, "step_id": 2, "email_address": "a@example.org"}
    results = mailchimp_triggers.push_journey_triggers(mailchimp, [_record(1, payload), _record(2, payload)])
    assert [r.error_class for r in results] == [FailureClass.AUTH, FailureClass.AUTH]
    assert mailchimp.calls == 1, "the second record is not sent after the account failed"


def test_braze_sender_batches_and_isolates_bad_records(sandbox: Sandbox, braze: BrazeClient) -> None:
    users = [{"external_id": f"donor-{n}", "email": f"d{n}@example.org"} for n in range(120)]
    _seed(sandbox, "braze", "users", users)
    records = [
        _record(
            n, {"canvas_id": "sandbox-canvas", "external_user_id": f"donor-{n}", "properties": {"amount": n}}
        )
        for n in range(120)
    ]
    records.append(
        _record(500, {"canvas_id": "unknown-canvas", "external_user_id": "donor-1", "properties": {}})
    )
    records.append(
        _record(
            501, {"campaign_id": "sandbox-campaign", "external_user_id": "donor-2", "properties": {"x": 1}}
        )
    )
    results = braze_triggers.push_journey_triggers(braze, records)
    assert [r.ok for r in results] == [True] * 120 + [False, True]
    assert results[120].error_class == FailureClass.VALIDATION
    sends = _state(sandbox, "braze")["sends"]
    canvas_sends = [s for s in sends if s["kind"] == "canvas"]
    assert [len(s["recipients"]) for s in canvas_sends] == [50, 50, 20]
    reached = [r for s in canvas_sends for r in s["recipients"]]
    assert reached[7] == {
        "braze_id": reached[7]["braze_id"],
        "external_id": "donor-7",
        "properties": {"amount": 7},
    }
    assert [s["kind"] for s in sends].count("campaign") == 1


@dataclass
class TriggerConnector:
    """The smallest Connector that dispatches entity journey_trigger to a sender (what H10/H11 wire)."""

    destination: str
    send: Callable[[Sequence[OutboundRecord]], list[RecordResult]]
    calls: list[int] = field(default_factory=list)

    def entity_order(self) -> Sequence[str]:
        return ["journey_trigger"]

    def batch_size(self, entity: str, operation: Operation, pending: int) -> int:
        return 50

    def push(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        self.calls.append(len(records))
        return self.send(records)

    def quota(self) -> QuotaState | None:
        return None


def test_once_only_across_reruns_and_a_replay(
    db: psycopg.Connection, sandbox: Sandbox, mailchimp: MailchimpClient
) -> None:
    r = rules(journey("welcome", {"type": "first_gift"}))
    donor_id = add_donor(db)
    email = db.execute("SELECT email FROM core.donors WHERE donor_id = %s", (donor_id,)).fetchone()[0]  # type: ignore[index]
    gift = add_gift(db, donor_id)
    land(db, "mailchimp", "member", donor_id, {"email_address": email}, "hash", donor_id=donor_id)
    db.commit()
    connector = TriggerConnector(
        "mailchimp", lambda records: mailchimp_triggers.push_journey_triggers(mailchimp, records)
    )

    # Not a subscribed member yet: Mailchimp refuses the trigger, which dead-letters.
    decide(db, rules=r, **decide_kwargs())
    push_destination(db, connector, worker_id="test")
    decide(db, rules=r, **decide_kwargs())
    assert enrollments(db) == [(gift, "welcome", "failed", "trigger_dead_lettered")]
    letter = db.execute(
        "SELECT dead_letter_id FROM sync.dead_letters WHERE entity = 'journey_trigger'"
    ).fetchone()
    assert letter is not None

    # The member subscribes; an operator replays the letter; re-runs and pushes change nothing after.
    _seed(sandbox, "mailchimp", "members", [{"email_address": email, "status": "subscribed"}])
    dlq.replay(db, letter[0], actor="test")
    db.commit()
    for _ in range(2):
        decide(db, rules=r, **decide_kwargs())
        push_destination(db, connector, worker_id="test")
        decide(db, rules=r, **decide_kwargs(use_watermark=False))
    assert enrollments(db) == [(gift, "welcome", "triggered", None)]
    assert len(_state(sandbox, "mailchimp")["journey_triggers"]) == 1
    # Replaying the closed letter again does nothing.
    assert dlq.replay(db, letter[0], actor="test").changed is False
    db.commit()
    push_destination(db, connector, worker_id="test")
    assert len(_state(sandbox, "mailchimp")["journey_triggers"]) == 1
    assert db.execute("SELECT count(*) FROM sync.journey_enrollments").fetchone() == (1,)


def _queue(db: psycopg.Connection, destination: str, payloads: Sequence[dict[str, Any]]) -> list[int]:
    """Queue journey triggers straight into the outbox (no dependency); return their outbox ids."""
    ids = []
    for n, payload in enumerate(payloads):
        row = db.execute(
            "INSERT INTO sync.outbox (destination, entity, record_key, operation, payload, payload_sha256)"
            " VALUES (%s, 'journey_trigger', %s, 'create', %s::jsonb, core.jsonb_sha256(%s::jsonb))"
            " RETURNING outbox_id",
            (destination, f"stripe:ch_{n}:j", Jsonb(payload), Jsonb(payload)),
        ).fetchone()
        assert row is not None
        ids.append(int(row[0]))
    db.commit()
    return ids


def _accounting(db: psycopg.Connection, ids: Sequence[int]) -> list[tuple[str, int, str | None, int]]:
    """(state, attempts, error code, push_log rows) of each outbox row, in order."""
    rows = db.execute(
        "SELECT o.outbox_id, o.state::text, o.attempts, o.error_code,"
        " (SELECT count(*) FROM sync.push_log l WHERE l.outbox_id = o.outbox_id)"
        " FROM sync.outbox o WHERE o.outbox_id = ANY(%s)",
        (list(ids),),
    ).fetchall()
    found = {r[0]: (r[1], r[2], r[3], int(r[4])) for r in rows}
    return [found[i] for i in ids]


def test_mailchimp_triggers_it_never_sent_use_no_attempt(
    db: psycopg.Connection, sandbox: Sandbox, mailchimp: MailchimpClient
) -> None:
    sandbox["mailchimp"].emulator.faults.set(
        [FaultRule(kind="status", status=503, path="/customer-journeys")]
    )
    payload = {"journey_id": 1, "step_id": 2, "email_address": "a@example.org"}
    results = mailchimp_triggers.push_journey_triggers(mailchimp, [_record(n, payload) for n in (1, 2, 3)])
    assert [(r.error_class, r.sent) for r in results] == [
        (FailureClass.TRANSIENT, True), (FailureClass.TRANSIENT, False), (FailureClass.TRANSIENT, False),
    ]  # fmt: skip
    assert [r.error_code for r in results[1:]] == ["NOT_SENT", "NOT_SENT"]
    assert all(r.http_status is None for r in results[1:]), "no call, no status"

    # Through the push engine: the row that was sent spends an attempt and is logged; the rows
    # the sender stopped before go back on their rung as they were.
    ids = _queue(db, "mailchimp", [payload] * 3)
    connector = TriggerConnector(
        "mailchimp", lambda records: mailchimp_triggers.push_journey_triggers(mailchimp, records)
    )
    push_destination(db, connector, worker_id="test")
    sent, *unsent = _accounting(db, ids)
    assert (sent[0], sent[1], sent[3]) == ("pending", 1, 1)
    assert unsent == [("pending", 0, "NOT_SENT", 0)] * 2


def test_braze_triggers_it_never_sent_use_no_attempt(
    db: psycopg.Connection, sandbox: Sandbox, braze: BrazeClient
) -> None:
    sandbox["braze"].emulator.faults.set([FaultRule(kind="status", status=503, path="/trigger/send")])
    canvas = [{"canvas_id": "sandbox-canvas", "external_user_id": f"donor-{n}"} for n in range(3)]
    campaign = [{"campaign_id": "sandbox-campaign", "external_user_id": f"donor-{n}"} for n in range(2)]
    records = [_record(n, p) for n, p in enumerate(canvas + campaign)]
    results = braze_triggers.push_journey_triggers(braze, records)
    # The canvas call was made and failed; the campaign call after it never was.
    assert [r.sent for r in results] == [True, True, True, False, False]
    assert {r.error_class for r in results} == {FailureClass.TRANSIENT}
    assert [r.error_code for r in results[3:]] == ["NOT_SENT", "NOT_SENT"]
    assert [s["kind"] for s in _state(sandbox, "braze")["sends"]] == []

    ids = _queue(db, "braze", canvas + campaign)
    connector = TriggerConnector("braze", lambda batch: braze_triggers.push_journey_triggers(braze, batch))
    push_destination(db, connector, worker_id="test")
    accounted = _accounting(db, ids)
    assert [(state, attempts, logged) for state, attempts, _, logged in accounted[:3]] == [
        ("pending", 1, 1)
    ] * 3
    assert accounted[3:] == [("pending", 0, "NOT_SENT", 0)] * 2
