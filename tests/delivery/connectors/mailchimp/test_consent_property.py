"""Property: nobody without consent or with a suppression reaches Mailchimp as subscribed.

Random histories of a few donors over several runs (consent choices, suppressions on any
destination, lifts, unsubscribes made in Mailchimp) → each run pulls back, queues and pushes as
donations_hourly does → the emulator holds exactly the members a simple model says: subscribed
while core allows them, unsubscribed once taken back or unsubscribed in Mailchimp, and never
re-subscribed afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import psycopg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from donor_sync.delivery.connectors.mailchimp.connector import MailchimpConnector
from donor_sync.delivery.connectors.mailchimp.pullback import pull_back
from sandbox.common.runner import Sandbox
from sandbox.emulators.mailchimp import DEFAULT_LIST_ID, MailchimpEmulator
from tests.delivery.connectors.mailchimp.conftest import (
    ACTOR,
    choose,
    email_of,
    make_connector,
    push,
    queue,
    statuses,
)
from tests.delivery.outbox.support import add_donor

#: The reasons include/mappings/privacy/destinations.yaml lists for mailchimp, and two it does not.
BLOCKING = ("do_not_contact", "do_not_solicit", "bounced", "cleaned", "complained", "minor")
REASONS = (*BLOCKING, "manual", "in_memoriam_only")

action = st.one_of(
    st.tuples(st.just("consent"), st.sampled_from(["opt_in", "soft_opt_in", "opt_out"])),
    st.tuples(
        st.just("suppress"), st.tuples(st.sampled_from(REASONS), st.sampled_from(["*", "mailchimp", "braze"]))
    ),
    st.tuples(st.just("lift"), st.none()),
    st.tuples(st.just("mc_unsubscribe"), st.none()),
    st.tuples(st.just("nothing"), st.none()),
)
history = st.lists(st.lists(action, min_size=3, max_size=3), min_size=1, max_size=4)  # donors x runs
_refs = count()


class Model:
    """What core allows and what Mailchimp should hold, per donor."""

    def __init__(self) -> None:
        self.consent: str | None = None
        self.suppressions: set[tuple[str, str]] = set()
        self.mailchimp: str | None = None

    def allowed(self) -> bool:
        blocked = any(r in BLOCKING and d in ("*", "mailchimp") for r, d in self.suppressions)
        return self.consent in ("opt_in", "soft_opt_in") and not blocked

    def after_push(self) -> None:
        if self.mailchimp is None and self.allowed():
            self.mailchimp = "subscribed"
        elif self.mailchimp == "subscribed" and not self.allowed():
            self.mailchimp = "unsubscribed"


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=history)
@example(
    plan=[
        [("consent", "opt_in"), ("suppress", ("bounced", "*")), ("lift", None)],
        [("consent", "soft_opt_in"), ("mc_unsubscribe", None), ("consent", "opt_in")],
        [("consent", "opt_in"), ("suppress", ("complained", "braze")), ("consent", "opt_out")],
        [("suppress", ("minor", "mailchimp")), ("consent", "opt_in"), ("lift", None)],
    ]
)
def test_only_consenting_unsuppressed_donors_are_subscribed(
    db: psycopg.Connection, box: Sandbox, emulator: MailchimpEmulator, plan: list[list[tuple[str, object]]]
) -> None:
    emulator.reset()
    connector: MailchimpConnector = make_connector(box)
    donors = [add_donor(db, f"P{n}", "Donor") for n in range(len(plan))]
    db.commit()
    models = {d: Model() for d in donors}
    for run in range(3):
        for donor, steps in zip(donors, plan, strict=True):
            kind, arg = steps[run]
            model = models[donor]
            if kind == "consent":
                choose(db, donor, str(arg), ago=timedelta(hours=5 - run), ref=f"p{next(_refs)}")
                model.consent = str(arg)
            elif kind == "suppress":
                reason, destination = str(arg[0]), str(arg[1])  # type: ignore[index]
                db.execute(
                    "INSERT INTO core.suppressions (donor_id, reason_code, destination, source, created_by)"
                    " VALUES (%s, %s, %s, 'salesforce', %s) ON CONFLICT DO NOTHING",
                    [donor, reason, destination, ACTOR],
                )
                model.suppressions.add((reason, destination))
            elif kind == "lift":
                db.execute(
                    "UPDATE core.suppressions SET lifted_at = now(), lifted_by = %s, lift_reason = 'test'"
                    " WHERE donor_id = %s AND lifted_at IS NULL",
                    [ACTOR, donor],
                )
                model.suppressions.clear()
            elif kind == "mc_unsubscribe" and model.mailchimp == "subscribed":
                emulator.seed("members", [{"email_address": email_of(db, donor), "status": "unsubscribed"}])
                model.mailchimp = "unsubscribed"
                model.consent = "opt_out"  # the pull-back records it
            db.commit()
        pull_back(db, connector.client, DEFAULT_LIST_ID, actor=ACTOR)
        queue(db)
        push(db, connector, clean=False)
        for model in models.values():
            model.after_push()
        held = statuses(emulator)
        for donor, model in models.items():
            assert held.get(email_of(db, donor)) == model.mailchimp, (run, plan)
        subscribed = {e for e, s in held.items() if s == "subscribed"}
        assert subscribed == {
            email_of(db, d) for d, m in models.items() if m.allowed() and m.mailchimp == "subscribed"
        }
