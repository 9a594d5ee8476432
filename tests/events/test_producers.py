"""Producers: the facts of core become valid events, once, queued for the subscribers that take them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from donor_sync.events import settings as event_settings
from donor_sync.events.catalogue import validate_envelope
from donor_sync.events.producers import produce_erasure_event, produce_gift_events
from donor_sync.privacy.consent.state import refresh_consent_state
from donor_sync.resolve.gifts import resolve_gifts
from donor_sync.resolve.review import merge_donors
from tests.events.support import add_donor, add_gift, events, outbox_rows
from tests.resolve import test_gifts_support as gifts_support
from tests.resolve.test_donors_support import rules as resolve_rules

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


@pytest.fixture
def two_subscribers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """events.yaml with subscriber a (every type) and b (gifts only), for the producers' default lookup."""
    path = tmp_path / "events.yaml"
    path.write_text(
        "subscribers:\n"
        "  - {name: a, secret: a_conn, url: 'https://a.example/hooks', events: [donation.created,"
        " donation.refunded, donor.merged, consent.changed, donor.erased]}\n"
        "  - {name: b, secret: b_conn, url: 'https://b.example/hooks', events: [donation.created]}\n"
    )
    monkeypatch.setattr(event_settings, "default_events_path", lambda: path)


@pytest.mark.usefixtures("two_subscribers")
def test_gifts_and_refunds_become_valid_events_without_pii(db: psycopg.Connection) -> None:
    donor = add_donor(db)
    add_gift(db, donor, "stripe:ch_1", tribute=("in_memory", "Grandma Okafor"))
    add_gift(db, donor, "stripe:ch_2", status="refunded", refunded="25.00")
    add_gift(db, donor, "stripe:ch_3", status="pending")
    add_gift(db, donor, "stripe:ch_4", is_test=True)
    add_gift(db, donor, "stripe:ch_5", status="failed")
    produce_gift_events(db, [donor], now=NOW)
    stored = events(db)
    for envelope in stored:
        validate_envelope(envelope)
    assert sorted((e["type"], e["data"]["gift_key"]) for e in stored) == [
        ("donation.created", "stripe:ch_1"),
        ("donation.created", "stripe:ch_2"),
        ("donation.refunded", "stripe:ch_2"),
    ]
    created = next(e for e in stored if e["data"]["gift_key"] == "stripe:ch_1")
    assert created["data"]["amount"] == "25.00"
    assert created["data"]["tribute_type"] == "in_memory"
    assert "Grandma" not in str(stored), "a tribute's honoree is never sent"
    refund = next(e for e in stored if e["type"] == "donation.refunded")
    assert refund["data"]["fully_refunded"] is True
    assert refund["data"]["refunded_amount_minor"] == 2500
    # a takes both types, b only donation.created.
    queued = outbox_rows(db)
    assert sorted((d, e) for d, e, _, _ in queued) == sorted(
        [("webhook_a", "donation_created")] * 2
        + [("webhook_a", "donation_refunded")]
        + [("webhook_b", "donation_created")] * 2
    )
    assert {k for _, _, k, _ in queued} == {e["id"] for e in stored}


@pytest.mark.usefixtures("two_subscribers")
def test_a_pending_gift_is_announced_once_it_succeeds_and_a_second_refund_is_a_new_event(
    db: psycopg.Connection,
) -> None:
    donor = add_donor(db)
    add_gift(db, donor, "stripe:ch_1", status="pending")
    assert produce_gift_events(db, [donor], now=NOW).recorded == 0
    db.execute("UPDATE core.gifts SET status = 'succeeded'")
    assert produce_gift_events(db, [donor], now=NOW).recorded == 1
    db.execute(
        "UPDATE core.gifts SET status = 'partially_refunded', refunded_amount = 10, refunded_at = now()"
    )
    assert produce_gift_events(db, [donor], now=NOW).recorded == 1
    db.execute("UPDATE core.gifts SET status = 'refunded', refunded_amount = 25")
    assert produce_gift_events(db, [donor], now=NOW).recorded == 1
    assert produce_gift_events(db, [donor], now=NOW).recorded == 0
    refunds = [e["data"]["refunded_amount"] for e in events(db) if e["type"] == "donation.refunded"]
    assert sorted(refunds) == ["10.00", "25.00"]


@pytest.mark.usefixtures("two_subscribers")
def test_a_donor_named_twice_and_donors_without_gifts_give_each_gift_once(db: psycopg.Connection) -> None:
    # Resolve hands over every touched donor (tens of thousands at once in a backfill): the
    # lookup joins the list rather than testing each gift against it, and a repeated id is one.
    donor, other = add_donor(db), add_donor(db)
    add_gift(db, donor, "stripe:ch_1")
    add_gift(db, donor, "stripe:ch_2", status="refunded", refunded="25.00")
    idle = [str(uuid4()) for _ in range(2_000)]
    recorded = produce_gift_events(db, [donor, str(donor), other, *idle, donor], now=NOW)
    assert recorded.recorded == 3
    assert sorted((e["type"], e["data"]["gift_key"]) for e in events(db)) == [
        ("donation.created", "stripe:ch_1"),
        ("donation.created", "stripe:ch_2"),
        ("donation.refunded", "stripe:ch_2"),
    ]


@pytest.mark.usefixtures("two_subscribers")
def test_re_running_resolve_produces_no_duplicate_event_ids(db: psycopg.Connection) -> None:
    donor = gifts_support.add_donor(db, ("stripe", "cus_1"))
    gifts_support.stage_gift(db, source="stripe", source_id="ch_1", donor="cus_1")
    gifts_support.stage_gift(db, source="stripe", source_id="ch_2", donor="cus_1", status="refunded",
                             refunded_amount="50.00")  # fmt: skip
    settings = gifts_support.settings()
    first = resolve_gifts(db, [1], now=NOW, settings=settings)
    produce_gift_events(db, first.donor_ids, now=NOW)
    db.commit()
    before_events, before_outbox = events(db), outbox_rows(db)
    assert len(before_events) == 3
    # The same staged rows again (re-standardized), and resolve re-run over them.
    db.execute("UPDATE staging.gifts SET resolved_at = NULL, gift_id = NULL")
    again = resolve_gifts(db, [1], now=NOW, settings=settings)
    produce_gift_events(db, again.donor_ids | {donor}, now=NOW)
    db.commit()
    assert events(db) == before_events
    assert outbox_rows(db) == before_outbox
    ids = [e["id"] for e in events(db)]
    assert len(ids) == len(set(ids))


@pytest.mark.usefixtures("two_subscribers")
def test_a_merge_and_the_consent_it_changes_are_announced(db: psycopg.Connection) -> None:
    survivor, merged = add_donor(db), add_donor(db)
    db.execute(
        "INSERT INTO core.consent_events (donor_id, purpose, channel, status, source, occurred_at,"
        " recorded_by) VALUES (%s, 'marketing', 'email', 'opt_in', 'test', %s, 't'),"
        " (%s, 'marketing', 'email', 'opt_out', 'test', %s, 't')",
        (survivor, datetime(2025, 1, 1, tzinfo=UTC), merged, datetime(2025, 6, 1, tzinfo=UTC)),
    )
    refresh_consent_state(db, [str(survivor), str(merged)], actor="test", now=NOW)
    before = {e["id"] for e in events(db)}
    decision = merge_donors(db, str(survivor), str(merged), rules=resolve_rules(), actor="test", now=NOW)
    new = [e for e in events(db) if e["id"] not in before]
    for envelope in new:
        validate_envelope(envelope)
    merged_events = [e for e in new if e["type"] == "donor.merged"]
    assert [e["data"] for e in merged_events] == [
        {
            "decision_id": decision,
            "survivor_donor_id": str(survivor),
            "merged_donor_id": str(merged),
            "repointed_donor_ids": [],
            "decision": "manual_merge",
        }
    ]
    consent = [e for e in new if e["type"] == "consent.changed"]
    assert [e["data"]["donor_id"] for e in consent] == [str(survivor)], "merged-away donors are not announced"
    assert {"purpose": "marketing", "channel": "email", "from": "opt_in", "to": "opt_out"} in consent[0][
        "data"
    ]["changes"]
    # Only subscriber a takes these types.
    assert {d for d, e, _, _ in outbox_rows(db) if e in ("donor_merged", "consent_changed")} == {"webhook_a"}


@pytest.mark.usefixtures("two_subscribers")
def test_an_erasure_event_survives_the_erasure_and_gift_events_of_erased_donors_are_not_made(
    db: psycopg.Connection,
) -> None:
    donor = add_donor(db)
    request = uuid4()
    produce_erasure_event(db, request, [str(donor)], now=NOW)
    produce_erasure_event(db, request, [str(donor)], now=NOW)  # the request retried
    db.execute("UPDATE core.donors SET erased_at = now()")
    add_gift(db, donor, "stripe:ch_9")
    assert produce_gift_events(db, [donor], now=NOW).recorded == 0
    (erased,) = events(db)
    validate_envelope(erased)
    assert erased["data"] == {"request_id": str(request), "donor_ids": [str(donor)]}
    row = db.execute("SELECT destination, donor_id FROM sync.outbox").fetchall()
    assert row == [("webhook_a", None)], "no donor id: the erasure's freeze and purge leave it queued"
