"""The dead-letter queue: replay, edit and discard, each audited and idempotent; selections."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest

from donor_sync.delivery.contracts import DEAD_LETTER_DESTINATIONS, EVENT_SUBSCRIBERS, FailureClass
from donor_sync.delivery.dlq import (
    DeadLetterError,
    apply_edits,
    discard,
    edit,
    get_dead_letter,
    list_dead_letters,
    replay,
    replay_selection,
)
from donor_sync.delivery.push import push_destination
from tests.delivery.fakes import FakeConnector
from tests.delivery.push.support import DEST, add_donor, outbox, queue, scalar, settings

ACTOR = "cli:tester"


def dead_letter(
    db: psycopg.Connection,
    key: str,
    error_class: FailureClass = FailureClass.VALIDATION,
    *,
    destination: str = DEST,
    payload: dict[str, Any] | None = None,
    donor_id: UUID | None = None,
) -> int:
    """Push a record the destination refuses, so it dead-letters as in production; return the letter id."""
    queue(db, key, destination=destination, payload=payload, donor_id=donor_id, priority=20)
    fake = FakeConnector(destination=destination)
    fake.fail(key, error_class, "INVALID_FIELD")
    push_destination(db, fake, worker_id="w", settings=settings(jitter=0.0))
    row = db.execute(
        "SELECT dead_letter_id FROM sync.dead_letters WHERE record_key = %s AND status = 'open'", (key,)
    )
    found = row.fetchone()
    db.commit()
    assert found is not None, f"{key} did not dead-letter"
    dead_letter_id: int = found[0]
    return dead_letter_id


def audit(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    rows = db.execute(
        "SELECT actor, action, object_type, object_id, details FROM sync.audit_log"
        " WHERE action LIKE 'dlq.%%' ORDER BY audit_id"
    ).fetchall()
    db.commit()
    return rows


def test_listing_filters_by_destination_class_status_and_ids(db: psycopg.Connection) -> None:
    a = dead_letter(db, "a", FailureClass.VALIDATION)
    b = dead_letter(db, "b", FailureClass.DUPLICATE_RULE)
    c = dead_letter(db, "c", FailureClass.VALIDATION, destination="other_crm")
    assert [x.dead_letter_id for x in list_dead_letters(db)] == [a, b, c]
    assert [x.dead_letter_id for x in list_dead_letters(db, destination=DEST)] == [a, b]
    assert [x.dead_letter_id for x in list_dead_letters(db, error_class="validation")] == [a, c]
    assert [x.dead_letter_id for x in list_dead_letters(db, ids=[c, b])] == [b, c]
    discard(db, a, actor=ACTOR, note="test")
    assert [x.dead_letter_id for x in list_dead_letters(db)] == [b, c]
    assert [x.dead_letter_id for x in list_dead_letters(db, statuses=["discarded"])] == [a]
    with pytest.raises(DeadLetterError, match="unknown error class"):
        list_dead_letters(db, error_class="flaky")


def test_a_letter_carries_payload_error_class_and_remediation(db: psycopg.Connection) -> None:
    letter_id = dead_letter(db, "k", FailureClass.DUPLICATE_RULE, payload={"Email": "jane@example.org"})
    letter = get_dead_letter(db, letter_id)
    assert letter.payload == {"Email": "jane@example.org"}
    assert (letter.error_class, letter.error_code, letter.attempts) == ("duplicate_rule", "INVALID_FIELD", 1)
    assert letter.remediation == FailureClass.DUPLICATE_RULE.remediation
    with pytest.raises(DeadLetterError, match="no dead letter 999"):
        get_dead_letter(db, 999)


def test_replay_queues_the_payload_again_once(db: psycopg.Connection) -> None:
    letter_id = dead_letter(db, "k", payload={"LastName": "Okafor"})
    original_outbox = get_dead_letter(db, letter_id).outbox_id
    result = replay(db, letter_id, actor=ACTOR, note="picklist value added in the CRM")
    db.commit()
    assert result.changed
    assert result.status == "replayed"
    assert result.replay_outbox_id is not None
    row = outbox(db, result.replay_outbox_id)
    assert (row["state"], row["attempts"], row["payload"], row["priority"]) == (
        "pending",
        0,
        {"LastName": "Okafor"},
        20,
    )
    assert row["record_key"] == "k"
    assert row["outbox_id"] != original_outbox
    letter = get_dead_letter(db, letter_id)
    assert (letter.status, letter.resolved_by, letter.replay_outbox_id) == (
        "replayed",
        ACTOR,
        result.replay_outbox_id,
    )
    again = replay(db, letter_id, actor=ACTOR)
    db.commit()
    assert not again.changed
    assert "already replayed" in again.message
    assert scalar(db, "SELECT count(*) FROM sync.outbox WHERE state = 'pending'") == 1
    [(actor, action, object_type, object_id, details)] = audit(db)
    assert (actor, action, object_type, object_id) == (ACTOR, "dlq.replayed", "dead_letter", str(letter_id))
    assert details["replay_outbox_id"] == result.replay_outbox_id
    assert details["edited"] is False
    assert "Okafor" not in str(details)
    # The replayed record lands on the next push.
    fake = FakeConnector()
    push_destination(db, fake, worker_id="w", settings=settings())
    assert outbox(db, result.replay_outbox_id)["state"] == "succeeded"


def test_edit_then_replay_sends_the_correction(db: psycopg.Connection) -> None:
    letter_id = dead_letter(
        db, "k", payload={"properties": {"email": "jane@@example.org", "firstname": "Jane"}}
    )
    corrected = apply_edits(get_dead_letter(db, letter_id).payload, {"properties.email": "jane@example.org"})
    assert corrected == {"properties": {"email": "jane@example.org", "firstname": "Jane"}}
    result = edit(db, letter_id, corrected, actor=ACTOR)
    db.commit()
    assert result.changed
    assert "properties.email" in result.message
    same = edit(db, letter_id, corrected, actor=ACTOR)
    assert not same.changed  # editing to the same payload again changes nothing
    letter = get_dead_letter(db, letter_id)
    assert letter.status == "open"
    assert letter.payload["properties"]["email"] == "jane@@example.org"
    replayed = replay(db, letter_id, actor=ACTOR)
    db.commit()
    assert replayed.status == "edited"
    assert outbox(db, replayed.replay_outbox_id or 0)["payload"] == corrected
    actions = [(a[1], a[4].get("fields")) for a in audit(db)]
    assert actions == [("dlq.edited", ["properties.email"]), ("dlq.replayed", None)]
    assert all("jane" not in str(a[4]) for a in audit(db))
    with pytest.raises(DeadLetterError, match="only open letters can be edited"):
        edit(db, letter_id, {"x": 1}, actor=ACTOR)


@pytest.mark.parametrize("payload", [[1, 2], "text", 5, None], ids=["list", "string", "number", "null"])
def test_an_edited_payload_must_be_a_json_object(db: psycopg.Connection, payload: Any) -> None:
    letter_id = dead_letter(db, "k")
    with pytest.raises(DeadLetterError, match="must be a JSON object"):
        edit(db, letter_id, payload, actor=ACTOR)
    assert get_dead_letter(db, letter_id).edited_payload is None


def test_apply_edits_leaves_its_input_alone_and_refuses_paths_through_values() -> None:
    payload = {"a": {"b": 1}, "c": 2, "x.y": 3}
    assert apply_edits(payload, {"a.b": 5, "d.e": True, "x.y": 4}) == {
        "a": {"b": 5}, "c": 2, "d": {"e": True}, "x.y": 4,
    }  # fmt: skip
    assert payload == {"a": {"b": 1}, "c": 2, "x.y": 3}
    with pytest.raises(DeadLetterError, match="'c' is not an object"):
        apply_edits(payload, {"c.d": 1})


def test_discard_needs_a_note_and_is_idempotent(db: psycopg.Connection) -> None:
    letter_id = dead_letter(db, "k", FailureClass.CONSENT_BLOCKED)
    with pytest.raises(DeadLetterError, match="needs a note"):
        discard(db, letter_id, actor=ACTOR, note="  ")
    done = discard(db, letter_id, actor=ACTOR, note="donor opted out")
    db.commit()
    assert done.changed
    assert get_dead_letter(db, letter_id).note == "donor opted out"
    again = discard(db, letter_id, actor=ACTOR, note="again")
    assert not again.changed
    assert "already discarded" in again.message
    assert [a[1] for a in audit(db)] == ["dlq.discarded"]
    with pytest.raises(DeadLetterError):
        replay(db, 12345, actor=ACTOR)
    assert not replay(db, letter_id, actor=ACTOR).changed  # a discarded letter is not replayed


def test_a_replay_never_bypasses_the_consent_gate_or_an_erasure(db: psycopg.Connection) -> None:
    blocked = dead_letter(db, "blocked", FailureClass.CONSENT_BLOCKED)
    with pytest.raises(DeadLetterError, match="consent"):
        replay(db, blocked, actor=ACTOR)
    erased_donor = add_donor(db)
    db.commit()
    erased = dead_letter(db, str(erased_donor), donor_id=erased_donor)
    db.execute("UPDATE core.donors SET erased_at = now() WHERE donor_id = %s", (erased_donor,))
    with pytest.raises(DeadLetterError, match="erased donor"):
        replay(db, erased, actor=ACTOR)
    survivor, merged = add_donor(db), add_donor(db)
    db.commit()
    merged_letter = dead_letter(db, str(merged), donor_id=merged)
    db.execute(
        "UPDATE core.donors SET merged_into = %s, merged_at = now() WHERE donor_id = %s", (survivor, merged)
    )
    with pytest.raises(DeadLetterError, match="merged into"):
        replay(db, merged_letter, actor=ACTOR)
    db.rollback()
    assert scalar(db, "SELECT count(*) FROM sync.outbox WHERE state = 'pending'") == 0


def test_replaying_while_a_newer_version_is_queued_keeps_the_newer_one(db: psycopg.Connection) -> None:
    letter_id = dead_letter(db, "k", payload={"v": "old"})
    newer = queue(db, "k", payload={"v": "new"})
    result = replay(db, letter_id, actor=ACTOR)
    db.commit()
    assert result.replay_outbox_id == newer
    assert "newer version" in result.message
    assert outbox(db, newer)["payload"] == {"v": "new"}
    assert scalar(db, "SELECT count(*) FROM sync.outbox WHERE state = 'pending'") == 1


def test_a_selection_replays_by_destination_and_class_and_reports_refusals(db: psycopg.Connection) -> None:
    v1 = dead_letter(db, "v1", FailureClass.VALIDATION)
    v2 = dead_letter(db, "v2", FailureClass.VALIDATION)
    dup = dead_letter(db, "dup", FailureClass.DUPLICATE_RULE)
    other = dead_letter(db, "o1", FailureClass.VALIDATION, destination="other_crm")
    report = replay_selection(db, destination=DEST, error_class="validation", actor="dag:dlq_replay.replay")
    db.commit()
    assert sorted(r.dead_letter_id for r in report.results) == [v1, v2]
    assert report.changed == 2
    assert report.refused == {}
    assert {x.dead_letter_id for x in list_dead_letters(db)} == {dup, other}
    # Named ids: already-resolved letters are reported, unknown ids refused; nothing is done twice.
    named = replay_selection(db, ids=[v1, dup, 424242], action="replay", actor=ACTOR)
    db.commit()
    assert {r.dead_letter_id: r.changed for r in named.results} == {v1: False, dup: True}
    assert named.refused == {424242: "no dead letter 424242"}
    assert named.summary() == "3 dead letter(s) selected: 1 replayed, 1 already resolved, 1 refused"
    assert scalar(db, "SELECT count(*) FROM sync.audit_log WHERE action = 'dlq.replayed'") == 3


def test_a_selection_can_edit_then_replay_or_discard(db: psycopg.Connection) -> None:
    a = dead_letter(db, "a", payload={"Stage": "Closed Won!"})
    b = dead_letter(db, "b", FailureClass.CONSENT_BLOCKED)
    edited = replay_selection(db, ids=[a, b], action="edit", edits={"Stage": "Closed Won"}, actor=ACTOR)
    db.commit()
    assert [r.status for r in edited.results] == ["edited"]
    assert list(edited.refused) == [b]  # consent-blocked: refused before any edit
    assert get_dead_letter(db, b).edited_payload is None
    dropped = replay_selection(db, ids=[b], action="discard", note="opted out", actor=ACTOR)
    db.commit()
    assert dropped.changed == 1
    assert get_dead_letter(db, b).status == "discarded"
    with pytest.raises(DeadLetterError, match="by destination"):
        replay_selection(db, action="replay", actor=ACTOR)
    with pytest.raises(DeadLetterError, match="needs a note"):
        replay_selection(db, ids=[a], action="discard", actor=ACTOR)
    with pytest.raises(DeadLetterError, match="unknown action"):
        replay_selection(db, ids=[a], action="purge", actor=ACTOR)


@pytest.mark.parametrize("choice", DEAD_LETTER_DESTINATIONS)
def test_each_destination_choice_of_dlq_replay_selects_its_letters(
    db: psycopg.Connection, choice: str
) -> None:
    destinations = (*DEAD_LETTER_DESTINATIONS[:-1], "webhook_a", "webhook_b", "webhookless_crm")
    letters = {d: dead_letter(db, f"k-{d}", destination=d) for d in destinations}
    wanted = (
        {letters["webhook_a"], letters["webhook_b"]} if choice == EVENT_SUBSCRIBERS else {letters[choice]}
    )
    assert {x.dead_letter_id for x in list_dead_letters(db, destination=choice)} == wanted
    # As the DAG's task calls it, with the DAG's params.
    report = replay_selection(
        db, destination=choice, error_class="validation", action="discard", note="t", actor="dag:dlq_replay"
    )
    db.commit()
    assert {r.dead_letter_id for r in report.results if r.changed} == wanted
    assert {x.dead_letter_id for x in list_dead_letters(db)} == set(letters.values()) - wanted
