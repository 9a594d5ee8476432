"""The gate in the outbox, case by case: withdrawal and mirror of blocked records, compiled consent
in the Salesforce payload, incremental runs noticing consent changes, tombstones, residency,
households, and the run metrics."""

from __future__ import annotations

from typing import Any

import psycopg

from donor_sync.delivery.outbox import default_renderer, queue_destination
from tests.delivery.outbox.support import add_household, push_all
from tests.privacy.gate.support import (
    ESP,
    EU,
    KEYS,
    SHARE,
    add_donor,
    add_gift,
    gate,
    outbox,
    renderer,
    set_consent,
    suppress,
)


def _contact(db: psycopg.Connection, destination: str, donor: str) -> dict[str, Any] | None:
    return next(
        (r for r in outbox(db, destination) if r["entity"] == "contact" and r["record_key"] == donor), None
    )


def test_a_donor_who_opts_out_is_removed_by_mirror_and_pending_work_withdrawn(db: psycopg.Connection) -> None:
    render = renderer(ESP, mirror=True)
    stays = add_donor(db)
    leaves = add_donor(db)
    pending = add_donor(db)
    for donor in (stays, leaves, pending):
        set_consent(db, donor, "marketing", "email", "opt_in")
    add_gift(db, leaves, "stripe:ch_leaves")
    db.commit()
    queue_destination(db, ESP, render, gate=gate(ESP, render))
    db.execute("UPDATE sync.outbox SET state = 'canceled' WHERE record_key = %s", (pending,))
    push_all(db, ESP)
    db.commit()
    # `pending` changes and is queued again, but not pushed yet
    db.execute("UPDATE core.donors SET first_name = 'Adah' WHERE donor_id = %s", (pending,))
    db.commit()
    queue_destination(db, ESP, render, gate=gate(ESP, render))
    db.commit()
    assert _contact(db, ESP, pending) is not None
    set_consent(db, leaves, "marketing", "email", "opt_out")
    suppress(db, pending, "bounced", channel="email")
    db.commit()
    report = queue_destination(db, ESP, render, gate=gate(ESP, render))
    db.commit()
    deleted = _contact(db, ESP, leaves)
    assert deleted is not None
    assert deleted["operation"] == "delete", "mirror removes the opted-out contact"
    assert report.withdrawn == 1, "its pending update is withdrawn"
    assert _contact(db, ESP, pending) is None
    assert _contact(db, ESP, stays) is None, "nothing changed for the others"
    metrics = report.metrics()
    assert metrics["gate_blocked_no_consent"] == 2  # the contact and its gift
    assert metrics["gate_blocked_bounced"] == 1


def test_salesforce_receives_consent_as_flags_and_an_incremental_run_notices_a_change(
    db: psycopg.Connection,
) -> None:
    render = default_renderer("salesforce")
    donor = add_donor(db)
    set_consent(db, donor, "marketing", "email", "opt_out")
    db.commit()
    report = queue_destination(db, "salesforce", render)
    db.commit()
    payload = _contact(db, "salesforce", donor)["payload"]  # type: ignore[index]
    assert payload["HasOptedOutOfEmail"] is True
    assert payload["DoNotCall"] is False
    assert payload["npsp__Do_Not_Contact__c"] is False
    assert "1815" not in str(payload), "birth_date is excluded by the profile"
    assert report.metrics()["gate_fields_withheld"] == 0
    push_all(db, "salesforce")
    db.commit()
    suppress(db, donor, "do_not_contact")
    db.commit()
    again = queue_destination(db, "salesforce", render)
    db.commit()
    assert again.rows_read["donor"] == 1, "the suppression made the donor changed"
    payload = _contact(db, "salesforce", donor)["payload"]  # type: ignore[index]
    assert payload["npsp__Do_Not_Contact__c"] is True
    assert payload["DoNotCall"] is True
    assert payload["HasOptedOutOfEmail"] is True


def test_hubspot_gets_a_phone_only_with_phone_consent(db: psycopg.Connection) -> None:
    render = default_renderer("hubspot")
    without = add_donor(db)
    consented = add_donor(db)
    set_consent(db, consented, "fundraising", "phone", "soft_opt_in")
    db.commit()
    report = queue_destination(db, "hubspot", render)
    db.commit()
    assert "phone" not in _contact(db, "hubspot", without)["payload"]  # type: ignore[index]
    assert _contact(db, "hubspot", consented)["payload"]["phone"] == "+14155550100"  # type: ignore[index]
    assert report.metrics()["gate_fields_withheld"] == 1


def test_tombstones_residency_and_sharing_block(db: psycopg.Connection) -> None:
    tombstoned = add_donor(db)
    by_column = add_donor(db, residency_region="eu")
    by_evidence = add_donor(db, country_code="US")
    shared_out = add_donor(db, country_code="US")
    free = add_donor(db, country_code="US")
    ring = KEYS.ring("tombstone")
    assert ring is not None
    email = db.execute("SELECT email FROM core.donors WHERE donor_id = %s", (tombstoned,)).fetchone()[0]  # type: ignore[index]
    db.execute(
        "INSERT INTO core.erasure_tombstones (hash_kind, hash_value, key_id, request_id)"
        " VALUES ('email', %s, %s, gen_random_uuid())",
        (ring.hmac(email.upper().strip().lower()), ring.current),
    )
    db.execute(
        "INSERT INTO core.consent_events (donor_id, purpose, channel, status, source, occurred_at, evidence,"
        " recorded_by) VALUES (%s, 'marketing', 'email', 'opt_in', 'donorbox', now(), %s, 'test')",
        (by_evidence, '{"form_version": "3", "country_code": "FR"}'),
    )
    set_consent(db, shared_out, "sharing", "all", "opt_out")
    db.commit()
    share = renderer(SHARE)
    report = queue_destination(db, SHARE, share, gate=gate(SHARE, share))
    db.commit()
    assert {r["record_key"] for r in outbox(db, SHARE)} == {free}
    metrics = report.metrics()
    assert metrics["gate_blocked_tombstoned"] == 1
    assert metrics["gate_blocked_residency"] == 2
    assert metrics["gate_blocked_do_not_share"] == 1
    eu = renderer(EU)
    queue_destination(db, EU, eu, gate=gate(EU, eu))
    assert {r["record_key"] for r in outbox(db, EU)} == {by_column, by_evidence, shared_out, free}


def test_a_household_goes_while_one_member_may(db: psycopg.Connection) -> None:
    allowed = add_donor(db)
    blocked = add_donor(db)
    other = add_donor(db)
    set_consent(db, allowed, "marketing", "email", "opt_in")
    mixed = add_household(db, "Mixed", [(allowed, "primary"), (blocked, "member")])
    alone = add_household(db, "Alone", [(other, "primary")])
    esp = gate(ESP, renderer(ESP))
    rows = [{"household_id": mixed, "name": "Mixed"}, {"household_id": alone, "name": "Alone"}]
    result = esp.apply(db, "household", rows)
    assert [r["household_id"] for r in result.rows_allowed] == [mixed]
    assert result.blocked == {"no_consent": 1}
    assert result.blocked_keys == [alone]
