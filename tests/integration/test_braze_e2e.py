"""Braze end to end: core + consent in Postgres -> gate -> outbox -> push -> the Braze emulator,
and Braze unsubscribes pulled back into consent."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.db import connect
from donor_sync.delivery import run as delivery
from donor_sync.delivery.connectors.braze.connector import BrazeConnector
from donor_sync.delivery.connectors.braze.pullback import pull_unsubscribes
from donor_sync.delivery.connectors.braze.subscriptions import group_purposes
from donor_sync.delivery.mapping import load_destination
from donor_sync.delivery.push import PushReport
from tests.delivery.connectors.braze import conftest as braze_fixtures
from tests.delivery.connectors.braze.conftest import EMAIL_GROUP, SMS_GROUP, Admin
from tests.privacy.gate.support import add_donor, add_gift, set_consent, suppress

ACTOR = "test:braze"
# The emulator fixtures of the connector tests (pytest finds fixtures among a module's names).
box = braze_fixtures.box
braze = braze_fixtures.braze
admin = braze_fixtures.admin
make_connector = braze_fixtures.make_connector
connector = braze_fixtures.connector


def sync(conn: psycopg.Connection, connector: BrazeConnector) -> PushReport:
    delivery.queue(conn, "braze", run_id=None, actor=ACTOR, approved=True)
    return delivery.push(conn, connector, run_id=None, worker_id="test")


def outbox_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM sync.outbox WHERE destination = 'braze'").fetchone()
    return int(row[0]) if row else 0


def test_consent_gated_push_lands_the_right_users_and_groups(
    db_url: str, connector: BrazeConnector, admin: Admin
) -> None:
    with connect(db_url) as conn:
        both = add_donor(conn)
        set_consent(conn, both, "marketing", "email", "opt_in")
        set_consent(conn, both, "marketing", "sms", "opt_in")
        add_gift(conn, both, "stripe:ch_both")
        email_only = add_donor(conn)
        set_consent(conn, email_only, "marketing", "email", "soft_opt_in")
        set_consent(conn, email_only, "marketing", "sms", "opt_out")
        no_choice = add_donor(conn)
        opted_out = add_donor(conn)
        set_consent(conn, opted_out, "marketing", "email", "opt_out")
        deceased = add_donor(conn)
        set_consent(conn, deceased, "marketing", "email", "opt_in")
        suppress(conn, deceased, "deceased")
        conn.commit()

        sync(conn, connector)

        users = admin.users()
        assert set(users) == {both, email_only}
        assert users[both]["subscription_groups"] == {EMAIL_GROUP: "subscribed", SMS_GROUP: "subscribed"}
        assert users[email_only]["subscription_groups"] == {
            EMAIL_GROUP: "subscribed",
            SMS_GROUP: "unsubscribed",
        }
        assert users[both]["phone"] == "+14155550100"
        assert "phone" not in users[email_only]  # withheld without SMS consent
        assert [e["name"] for e in users[both]["events"]] == ["donation"]
        assert users[both]["events"][0]["properties"]["gift_key"] == "stripe:ch_both"
        assert no_choice not in users
        assert opted_out not in users
        assert deceased not in users

        before = len(admin.request_log())
        queued = outbox_count(conn)
        sync(conn, connector)  # a re-run queues nothing and calls nothing
        assert outbox_count(conn) == queued
        assert len(admin.request_log()) == before


def test_an_unsubscribe_in_braze_is_pulled_back_and_not_undone(
    db_url: str, connector: BrazeConnector, admin: Admin
) -> None:
    groups = group_purposes(load_destination("braze"))
    assert groups == {EMAIL_GROUP: ("marketing", "email"), SMS_GROUP: ("marketing", "sms")}
    with connect(db_url) as conn:
        donor = add_donor(conn)
        set_consent(conn, donor, "marketing", "email", "opt_in")
        other = add_donor(conn)
        set_consent(conn, other, "marketing", "email", "opt_in")
        conn.commit()
        sync(conn, connector)
        admin.set_group(donor, EMAIL_GROUP, "unsubscribed")  # the donor unsubscribes in a Braze email

        report = pull_unsubscribes(conn, connector.client, groups, actor=ACTOR)
        again = pull_unsubscribes(conn, connector.client, groups, actor=ACTOR)
        conn.commit()

        assert (report.recorded, report.unsubscribed[EMAIL_GROUP]) == (1, 1)
        assert again.recorded == 0  # the same unsubscribe is recorded once
        state = conn.execute(
            "SELECT status FROM core.consent_state WHERE donor_id = %s AND purpose = 'marketing'"
            " AND channel = 'email'",
            [donor],
        ).fetchone()
        assert state is not None
        assert state[0] == "opt_out"
        source = conn.execute(
            "SELECT source FROM core.consent_events WHERE donor_id = %s AND status = 'opt_out'", [donor]
        ).fetchone()
        assert source is not None
        assert source[0] == "braze"

        logged = len(admin.request_log())
        sync(conn, connector)

        paths = [r.get("path") for r in admin.request_log()[logged:]]
        assert "/v2/subscription/status/set" not in paths  # nothing re-subscribed the donor
        assert "/users/delete" in paths
        assert donor not in admin.users()  # no longer allowed: deleted from Braze (mirror)
        assert other in admin.users()


def test_a_bad_record_is_dead_lettered_alone(db_url: str, connector: BrazeConnector, admin: Admin) -> None:
    with connect(db_url) as conn:
        good = add_donor(conn)
        bad = add_donor(conn, email="broken@nodot")  # core takes it; Braze refuses it
        for donor in (good, bad):
            set_consent(conn, donor, "marketing", "email", "opt_in")
        conn.commit()

        sync(conn, connector)

        letters = conn.execute(
            "SELECT entity, record_key, error_class, error_code FROM sync.dead_letters"
            " WHERE destination = 'braze'"
        ).fetchall()
        assert [(e, k, c) for e, k, c, _ in letters if e == "user"] == [("user", bad, "validation")]
        assert set(admin.users()) == {good}


PAIRS = [("marketing", "email"), ("marketing", "all"), ("marketing", "sms"), ("fundraising", "email")]
STATUSES = ["opt_in", "soft_opt_in", "opt_out"]
REASONS = ["deceased", "do_not_contact", "do_not_solicit", "bounced", "complained", "minor", "manual"]
donor_spec = st.fixed_dictionaries(
    {
        "consent": st.lists(st.tuples(st.sampled_from(PAIRS), st.sampled_from(STATUSES)), max_size=3),
        "suppressions": st.lists(
            st.tuples(st.sampled_from(REASONS), st.booleans()), max_size=2, unique_by=lambda s: s[0]
        ),
        "deceased_flag": st.booleans(),
    }
)


def _latest(spec: dict[str, Any], purpose: str, channels: tuple[str, ...]) -> str | None:
    found = None
    for (p, c), status in spec["consent"]:  # later entries are newer
        if p == purpose and c in channels:
            found = status
    return found


def _allowed(spec: dict[str, Any]) -> bool:
    """The oracle: a live opt-in to marketing by email (or every channel), no active suppression
    Braze's policy lists, not deceased."""
    active = {r for r, lifted in spec["suppressions"] if not lifted}
    blocked = active & {"deceased", "do_not_contact", "do_not_solicit", "bounced", "complained", "minor"}
    email = _latest(spec, "marketing", ("email", "all"))
    return email in ("opt_in", "soft_opt_in") and not blocked and not spec["deceased_flag"]


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs=st.lists(donor_spec, min_size=1, max_size=6))
def test_property_nobody_without_consent_or_with_a_suppression_reaches_braze(
    specs: list[dict[str, Any]],
    db_factory: Callable[[], str],
    make_connector: Callable[..., BrazeConnector],
    admin: Admin,
) -> None:
    admin.running.emulator.reset()
    connector = make_connector()
    with connect(db_factory()) as conn:
        expected: set[str] = set()
        by_donor: dict[str, dict[str, Any]] = {}
        for spec in specs:
            donor = add_donor(conn, is_deceased=spec["deceased_flag"])
            add_gift(conn, donor, f"stripe:ch_{donor[:12]}")
            for (purpose, channel), status in spec["consent"]:
                set_consent(conn, donor, purpose, channel, status)
            for reason, lifted in spec["suppressions"]:
                suppress(conn, donor, reason, lifted=lifted)
            by_donor[donor] = spec
            if _allowed(spec):
                expected.add(donor)
        conn.commit()

        sync(conn, connector)

        users = admin.users()
        assert set(users) == expected
        for donor, user in users.items():  # never subscribed to a group without a choice on its channel
            spec = by_donor[donor]
            for group, channel in ((EMAIL_GROUP, "email"), (SMS_GROUP, "sms")):
                if user["subscription_groups"].get(group) == "subscribed":
                    assert _latest(spec, "marketing", (channel,)) in ("opt_in", "soft_opt_in")
            if "phone" in user:
                assert _latest(spec, "marketing", ("sms", "all")) in ("opt_in", "soft_opt_in")
            assert len(user["events"]) == 1  # the donor's gift, once


@pytest.fixture
def db_factory(server_url: str, template_url: str) -> Iterator[Callable[[], str]]:
    """A fresh migrated database per hypothesis example (the db_url fixture is per test)."""
    from tests.conftest import _fresh_database

    made: list[str] = []

    def make() -> str:
        from donor_sync.db import drop_database
        from donor_sync.db.url import database_name

        for url in made:
            drop_database(url)
        made.clear()
        name = f"ds_braze_prop_{os.getpid()}"
        url = _fresh_database(server_url, name, template=database_name(template_url))
        made.append(url)
        return url

    yield make
    for url in made:
        from donor_sync.db import drop_database

        drop_database(url)
