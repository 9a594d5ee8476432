"""Dry run: the plan counts what a run would do, shows masked samples, and writes nothing."""

from __future__ import annotations

import psycopg

from donor_sync.delivery.contracts import Operation, SyncMode
from donor_sync.delivery.outbox import Scope, mask_value, plan_destination, queue_destination
from donor_sync.delivery.settings import BlastRadius, DestinationSettings
from tests.delivery.outbox.support import (
    HandRenderer,
    add_donor,
    add_gift,
    land,
    merge,
    outbox_rows,
    push_all,
    table_counts,
)

DEST = "hubspot"
RENDERER = HandRenderer(
    modes={
        "contact": (SyncMode.MIRROR, Operation.ARCHIVE),
        "opportunity": (SyncMode.MIRROR, Operation.DELETE),
    }
)


def _scenario(db: psycopg.Connection) -> dict[str, str]:
    """Four contacts and two gifts landed; then one contact changes, one is filtered out, one
    donor is new, a gift is new, a gift became a test, and one donor is merged into another."""
    names = {n: add_donor(db, n, "Okafor") for n in ("Ann", "Ben", "Cat", "Dan")}
    add_gift(db, names["Ann"], "stripe:ch_a")
    add_gift(db, names["Ben"], "stripe:ch_b")
    db.commit()
    queue_destination(db, DEST, RENDERER)
    push_all(db, DEST)
    db.commit()
    db.execute("UPDATE core.donors SET last_name = 'Okafor-Reyes' WHERE donor_id = %s", (names["Ann"],))
    db.execute("UPDATE core.donors SET do_not_contact = true WHERE donor_id = %s", (names["Ben"],))
    names["Eve"] = add_donor(db, "Eve", "New")
    add_gift(db, names["Eve"], "stripe:ch_e")
    db.execute("UPDATE core.gifts SET is_test = true WHERE gift_key = 'stripe:ch_b'")
    merge(db, names["Cat"], names["Dan"])
    db.commit()
    return names


def test_plan_counts_creates_updates_deletes_and_merges_and_writes_nothing(db: psycopg.Connection) -> None:
    names = _scenario(db)
    before = table_counts(db)
    plan = plan_destination(db, DEST, RENDERER, samples=3)
    assert table_counts(db) == before
    contact, opportunity = plan.entities["contact"], plan.entities["opportunity"]
    # Ann changed, Eve is new, Ben filtered out (archive), Dan merged into Cat (api merge, not archive)
    assert (contact.creates, contact.updates, contact.archives, contact.merges) == (1, 1, 1, 1)
    # Eve's gift is new; Ben's gift is now a test payment (delete)
    assert (opportunity.creates, opportunity.updates, opportunity.deletes) == (1, 0, 1)
    assert plan.merges_api == 1
    assert plan.totals.queued == 6
    assert plan.verdict.exceeded is False  # 4 landed contacts: below the default min_records
    # nothing leaked from the dry run: the real run now does exactly what the plan said
    report = queue_destination(db, DEST, RENDERER)
    db.commit()
    assert report.entities == plan.entities
    assert {
        (r["entity"], r["record_key"], r["operation"]) for r in outbox_rows(db, DEST, state="pending")
    } == {
        ("contact", names["Ann"], "upsert"),
        ("contact", names["Eve"], "upsert"),
        ("contact", names["Ben"], "archive"),
        ("contact", names["Dan"], "merge"),
        ("opportunity", "stripe:ch_e", "upsert"),
        ("opportunity", "stripe:ch_b", "delete"),
    }


def test_plan_samples_are_masked_unless_asked(db: psycopg.Connection) -> None:
    names = _scenario(db)
    masked = plan_destination(db, DEST, RENDERER, samples=5)
    creates = [s for s in masked.samples if s.entity == "contact" and s.action == "create"]
    assert [s.record_key for s in creates] == [names["Eve"]]
    payload = creates[0].payload
    assert payload["first_name"] == "E***"
    assert payload["email"] == "e***"
    assert payload["external_id"] == names["Eve"]  # ids stay readable
    assert payload["gift_count"] == 0
    text = str(masked.as_dict())
    assert "Eve" not in text
    assert "example.org" not in text
    clear = plan_destination(db, DEST, RENDERER, samples=5, reveal_pii=True)
    shown = next(s for s in clear.samples if s.record_key == names["Eve"] and s.entity == "contact")
    assert shown.payload["first_name"] == "Eve"
    assert clear.pii_revealed


def test_plan_sample_count_is_per_entity_and_action(db: psycopg.Connection) -> None:
    for i in range(4):
        add_donor(db, f"Donor{i}")
    db.commit()
    plan = plan_destination(db, DEST, RENDERER, samples=2)
    assert plan.entities["contact"].creates == 4
    assert [s.action for s in plan.samples] == ["create", "create"]
    assert plan_destination(db, DEST, RENDERER, samples=0).samples == ()


def test_plan_says_when_the_guard_would_stop_the_run(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane")
    for i in range(3):
        land(db, DEST, "contact", f"00000000-0000-4000-8000-00000000000{i}", {"x": i}, f"R{i}")
    db.commit()
    settings = DestinationSettings(blast_radius=BlastRadius(max_destructive_share=0.5, min_records=1))
    plan = plan_destination(db, DEST, RENDERER, scope=Scope.full(), settings=settings)
    assert plan.entities["contact"].archives == 3
    assert plan.entities["contact"].creates == 1
    assert plan.verdict.exceeded
    assert "3 of 3" in plan.verdict.describe()
    assert jane


def test_mask_value_keeps_ids_and_numbers_and_masks_text() -> None:
    value = {
        "Name": "Jane Okafor",
        "Ref": {"Donor_Sync_Id__c": "6f1c2b8e-8d1e-4a4b-9c1e-2f3a4b5c6d7e"},
        "Gift_Key__c": "stripe:ch_3Nx9",
        "Amount": 25.5,
        "Flags": [True, "note text"],
        "Empty": "",
        "Null": None,
    }
    assert mask_value(value) == {
        "Name": "J***",
        "Ref": {"Donor_Sync_Id__c": "6f1c2b8e-8d1e-4a4b-9c1e-2f3a4b5c6d7e"},
        "Gift_Key__c": "stripe:ch_3Nx9",
        "Amount": 25.5,
        "Flags": [True, "n***"],
        "Empty": "",
        "Null": None,
    }
    assert value["Name"] == "Jane Okafor"  # the input is not changed
