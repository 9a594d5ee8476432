"""Consent-gated delivery to Mailchimp end to end: core donors with consent → queue (gate,
mapping, outbox) → push (engine, connector) → the Mailchimp emulator, and Mailchimp's
unsubscribes, complaints and cleaned addresses pulled back into consent and suppressions."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from donor_sync.delivery.connectors.mailchimp.client import subscriber_hash
from donor_sync.delivery.connectors.mailchimp.connector import MailchimpConnector
from donor_sync.delivery.connectors.mailchimp.pullback import pull_back
from sandbox.emulators.mailchimp import DEFAULT_LIST_ID, MailchimpEmulator
from tests.delivery.connectors.mailchimp.conftest import (  # noqa: F401 - fixtures
    ACTOR,
    box,
    choose,
    connector,
    email_of,
    emulator,
    members,
    push,
    queue,
    statuses,
)
from tests.delivery.outbox.support import add_donor


def _writes(emulator: MailchimpEmulator) -> int:  # noqa: F811
    return sum(1 for r in emulator.request_log if r["method"] in ("POST", "PUT", "PATCH", "DELETE"))


def _consent(db: psycopg.Connection, donor: str) -> str | None:
    row = db.execute(
        "SELECT status FROM core.consent_state WHERE donor_id = %s AND purpose = 'marketing'"
        " AND channel = 'email'",
        [donor],
    ).fetchone()
    return None if row is None else str(row[0])


def test_consent_gated_members_land_once_and_an_opt_out_is_unsubscribed(
    db: psycopg.Connection,
    connector: MailchimpConnector,  # noqa: F811
    emulator: MailchimpEmulator,  # noqa: F811
) -> None:
    ada = add_donor(
        db,
        "Ada",
        "Lovelace",
        address_line1="1 Analytical Way",
        city="London",
        region="LDN",
        postal_code="N1 9GU",
        country_code="GB",
        recurring_status="active",
    )
    sam = add_donor(db, "Sam", "Soft")
    ola = add_donor(db, "Ola", "Out")
    nil = add_donor(db, "Nil", "Nochoice")
    dee = add_donor(db, "Dee", "Ceased", is_deceased=True)
    db.commit()
    choose(db, ada, "opt_in")
    choose(db, sam, "soft_opt_in")
    choose(db, ola, "opt_out")
    choose(db, dee, "opt_in")

    assert queue(db) == {"upsert": 2}
    push(db, connector)
    held = members(emulator)
    assert set(held) == {email_of(db, ada), email_of(db, sam)}
    a = held[email_of(db, ada)]
    assert a["status"] == "subscribed"
    assert a["merge_fields"]["FNAME"] == "Ada"
    assert a["merge_fields"]["DONORID"] == ada
    assert a["merge_fields"]["ADDRESS"]["city"] == "London"
    assert {t["name"] for t in a["tags"]} == {"Donor", "Monthly donor"}
    assert {p["text"]: p["enabled"] for p in a["marketing_permissions"]}["Email"] is True
    s = held[email_of(db, sam)]
    assert s["status"] == "subscribed"
    assert {t["name"] for t in s["tags"]} == {"Donor", "Soft opt-in"}
    assert {p["text"]: p["enabled"] for p in s["marketing_permissions"]}["Email"] is False
    landed = db.execute(
        "SELECT record_key, remote_id FROM sync.destination_state WHERE destination = 'mailchimp'"
    ).fetchall()
    assert sorted(landed) == sorted(
        [(ada, subscriber_hash(email_of(db, ada))), (sam, subscriber_hash(email_of(db, sam)))]
    )
    assert nil not in {k for k, _ in landed}

    # A re-run queues nothing and writes nothing to Mailchimp.
    writes = _writes(emulator)
    assert queue(db) == {}
    push(db, connector)
    assert _writes(emulator) == writes

    # Ada opts out in donor-sync: her member is unsubscribed at the next push.
    choose(db, ada, "opt_out", ago=timedelta(minutes=5))
    assert queue(db) == {"archive": 1}
    push(db, connector)
    assert statuses(emulator)[email_of(db, ada)] == "unsubscribed"
    # The pull-back sees an unsubscribe donor-sync made itself: no new opt-out is invented.
    report = pull_back(db, connector.client, DEFAULT_LIST_ID, actor=ACTOR)
    assert report.own_unsubscribes_skipped == 1
    assert report.opt_outs_recorded == 0

    # She opts in again in donor-sync: Mailchimp keeps her unsubscribed (never re-subscribed),
    # the record is consent-blocked, and the next runs leave her alone.
    choose(db, ada, "opt_in", ago=timedelta(minutes=1))
    assert queue(db) == {"upsert": 1}
    totals = push(db, connector, clean=False)
    assert totals["dead_lettered"] == 1
    assert statuses(emulator)[email_of(db, ada)] == "unsubscribed"
    letter = db.execute("SELECT error_class, error_code FROM sync.dead_letters").fetchone()
    assert letter == ("consent_blocked", "MEMBER_UNSUBSCRIBED")
    pull_back(db, connector.client, DEFAULT_LIST_ID, actor=ACTOR)
    assert _consent(db, ada) == "opt_in", "Mailchimp's old unsubscribe does not undo her new choice"
    writes = _writes(emulator)
    assert queue(db) == {}
    push(db, connector)
    assert _writes(emulator) == writes


def test_unsubscribes_complaints_and_cleaned_addresses_are_pulled_back_and_stop_the_next_push(
    db: psycopg.Connection,
    connector: MailchimpConnector,  # noqa: F811
    emulator: MailchimpEmulator,  # noqa: F811
) -> None:
    donors = {name: add_donor(db, name.title(), "Donor") for name in ("una", "cal", "spa", "stay", "pre")}
    db.commit()
    for donor in donors.values():
        choose(db, donor, "opt_in")
    # Pre was unsubscribed in the audience before donor-sync ever pushed (matched by address).
    emulator.seed("members", [{"email_address": email_of(db, donors["pre"]), "status": "unsubscribed"}])
    first = pull_back(db, connector.client, DEFAULT_LIST_ID, actor=ACTOR)
    assert first.opt_outs_recorded == 2
    assert _consent(db, donors["pre"]) == "opt_out"
    queue(db)
    push(db, connector)
    assert set(statuses(emulator).values()) == {"subscribed", "unsubscribed"}
    assert statuses(emulator)[email_of(db, donors["pre"])] == "unsubscribed"

    # In Mailchimp: Una unsubscribes, Cal's address is cleaned, Spa marks a campaign as spam.
    emulator.seed(
        "members",
        [
            {
                "email_address": email_of(db, donors["una"]),
                "status": "unsubscribed",
                "unsubscribe_reason": "No longer interested",
                "unsubscribe_campaign_id": "c42",
            },
            {"email_address": email_of(db, donors["cal"]), "status": "cleaned"},
            {
                "email_address": email_of(db, donors["spa"]),
                "status": "unsubscribed",
                "unsubscribe_reason": "abuse",
            },
        ],
    )
    report = pull_back(db, connector.client, DEFAULT_LIST_ID, actor=ACTOR)
    assert report.opt_outs_recorded == 4  # una and spa, marketing and fundraising each
    assert _consent(db, donors["una"]) == "opt_out"
    evidence = db.execute(
        "SELECT evidence FROM core.consent_events WHERE donor_id = %s AND source = 'mailchimp' LIMIT 1",
        [donors["una"]],
    ).fetchone()
    assert evidence is not None
    assert evidence[0]["unsubscribe_reason"] == "No longer interested"
    assert evidence[0]["campaign_id"] == "c42"
    assert "@" not in str(evidence[0])
    suppressions = db.execute(
        "SELECT donor_id::text, reason_code, channel::text, destination FROM core.suppressions"
        " WHERE lifted_at IS NULL ORDER BY reason_code"
    ).fetchall()
    assert suppressions == [
        (donors["cal"], "cleaned", "email", "*"),
        (donors["spa"], "complained", "email", "*"),
    ]
    # Pulled back again: nothing new (idempotent).
    again = pull_back(db, connector.client, DEFAULT_LIST_ID, actor=ACTOR)
    assert (again.opt_outs_recorded, again.suppressions_added) == (0, 0)

    # The next push does not re-subscribe or update them; Stay is untouched too (nothing changed).
    writes_before = {
        r["path"] for r in emulator.request_log if r["method"] in ("PUT", "POST") and "/members/" in r["path"]
    }
    queue(db)
    push(db, connector)
    held = statuses(emulator)
    assert held[email_of(db, donors["una"])] == "unsubscribed"
    assert held[email_of(db, donors["cal"])] == "cleaned"
    assert held[email_of(db, donors["spa"])] == "unsubscribed"
    assert held[email_of(db, donors["stay"])] == "subscribed"
    touched = {
        r["path"] for r in emulator.request_log if r["method"] in ("PUT", "POST") and "/members/" in r["path"]
    }
    assert touched == writes_before, "no write reached a pulled-back member"

    # Cal changes address: the cleaned suppression of the old one is lifted at the next pull-back.
    db.execute("UPDATE core.donors SET email = 'cal.new@example.org' WHERE donor_id = %s", [donors["cal"]])
    db.commit()
    assert pull_back(db, connector.client, DEFAULT_LIST_ID, actor=ACTOR).suppressions_lifted == 1
