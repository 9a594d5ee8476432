"""Journeys and the email platforms' pull-backs, against real Postgres: which journeys a failed
pull-back defers, what the run records, and that a deferred journey is decided later, once."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg
import pytest

from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass
from donor_sync.journeys import decide, load_rules
from donor_sync.journeys import pullbacks as pb
from donor_sync.observability import runs
from tests.journeys.support import (
    add_donor,
    add_gift,
    decide_kwargs,
    enrollments,
    journey,
    rules,
    set_consent,
    suppress,
    triggers,
)

#: A Mailchimp and a Braze journey on fundraising email (the defaults), and a Braze journey on
#: marketing SMS, which no Mailchimp data gates.
MIXED = rules(
    journey("welcome", {"type": "first_gift"}),
    journey("thanks", {"type": "first_gift"}, braze=True),
    journey(
        "sms_thanks",
        {"type": "first_gift"},
        braze=True,
        consent={"purpose": "marketing", "channel": "sms", "status_in": ["opt_in"]},
        suppressions=["deceased"],
    ),
)


def _run(db: psycopg.Connection) -> UUID:
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id=None, run_type="test")
    db.commit()
    return run_id


def _watermark(db: psycopg.Connection) -> datetime | None:
    row = db.execute(
        "SELECT cursor_ts FROM sync.watermarks WHERE source = 'journeys' AND stream = 'gifts'"
    ).fetchone()
    return row[0] if row else None


def test_what_each_failed_pull_back_defers() -> None:
    mailchimp, braze = pb.scope_of("mailchimp"), pb.scope_of("braze")
    # Mailchimp's unsubscribes and complaints are email opt-outs for every destination: every
    # email journey waits, Braze's too; the SMS journey does not.
    assert pb.deferrals(MIXED, [mailchimp]) == {"welcome": ("mailchimp",), "thanks": ("mailchimp",)}
    # Braze's groups (marketing email and SMS): its own journeys wait; a Mailchimp journey on
    # fundraising email does not.
    assert pb.deferrals(MIXED, [braze]) == {"thanks": ("braze",), "sms_thanks": ("braze",)}
    marketing_email = rules(
        journey(
            "news",
            {"type": "first_gift"},
            consent={"purpose": "marketing", "channel": "email", "status_in": ["opt_in"]},
            suppressions=["deceased"],
        )
    )
    assert pb.deferrals(marketing_email, [braze]) == {"news": ("braze",)}, "a Braze group records it"
    # Only a suppression Mailchimp records makes a journey on another channel wait for it.
    sms = {"purpose": "fundraising", "channel": "sms", "status_in": ["opt_in"]}
    no_mailchimp_data = rules(
        journey("sms", {"type": "first_gift"}, braze=True, consent=sms, suppressions=["cleaned"])
    )
    assert pb.deferrals(no_mailchimp_data, [mailchimp]) == {}
    # The shipped journeys: Mailchimp's failure defers them all, Braze's only Braze's.
    shipped = load_rules()
    assert set(pb.deferrals(shipped, [mailchimp])) == {j.id for j in shipped.journeys if j.enabled}
    assert set(pb.deferrals(shipped, [braze])) == {
        j.id for j in shipped.journeys if j.enabled and j.destination.name == "braze"
    }
    with pytest.raises(ValueError, match="no pull-back"):
        pb.scope_of("salesforce")


def test_the_run_records_each_outcome_and_only_success_or_switched_off_counts(db: psycopg.Connection) -> None:
    run_id = _run(db)
    assert pb.stale_platforms(db, run_id) == {"mailchimp": "not run", "braze": "not run"}
    pb.record_disabled(db, run_id, "braze", task_id="pull_braze_unsubscribes")
    error = DestinationUnavailableError(
        "Mailchimp GET /lists/{id}/members kept failing (HTTP_503) after 5 attempts",
        error_class=FailureClass.TRANSIENT,
        error_code="HTTP_503",
        http_status=503,
    )
    db.execute("SELECT 1")  # a transaction the failure rolls back
    what = pb.record_failed(db, run_id, "mailchimp", error, task_id="pull_mailchimp_unsubscribes")
    assert what.startswith("mailchimp pull-back failed (transient, HTTP_503, HTTP 503)")
    assert pb.stale_platforms(db, run_id) == {"mailchimp": "failed"}
    rows = db.execute(
        "SELECT scope, metric, value FROM sync.run_metrics WHERE run_id = %s AND stage = 'pullback'",
        (run_id,),
    ).fetchall()
    figures = {(scope, metric): int(value) for scope, metric, value in rows}
    assert figures == {("mailchimp", "succeeded"): 0, ("mailchimp", "failed"): 1, ("braze", "disabled"): 1}
    # A later try that succeeds (the task cleared by hand) makes it current.
    pb.record_succeeded(db, run_id, "mailchimp", task_id="pull_mailchimp_unsubscribes")
    db.commit()
    assert pb.stale_platforms(db, run_id) == {}
    assert pb.deferrals_for_run(db, run_id, MIXED) == {}


def test_a_deferred_journey_is_decided_by_the_next_run_and_only_once(db: psycopg.Connection) -> None:
    donor = add_donor(db)
    set_consent(db, donor, "opt_in", purpose="marketing", channel="sms")
    gift = add_gift(db, donor)
    db.commit()
    run_id = _run(db)
    pb.record_succeeded(db, run_id, "mailchimp", task_id="t")
    db.commit()
    defer = pb.deferrals_for_run(db, run_id, MIXED)
    assert defer == {"thanks": ("braze",), "sms_thanks": ("braze",)}, "Braze's pull-back did not run"

    report = decide(db, rules=MIXED, defer=defer, **decide_kwargs())
    assert report.deferred == defer
    assert "deferred 2 journey(s): sms_thanks, thanks" in report.summary()
    assert enrollments(db) == [(gift, "welcome", "pending", None)]
    assert [d for d, _, _ in triggers(db)] == ["mailchimp"]
    assert _watermark(db) is None, "the watermark waits for the deferred journeys"

    # The next run, every pull-back current: the Braze journeys enter; Mailchimp's is not again.
    again = decide(db, rules=MIXED, **decide_kwargs())
    assert again.deferred == {}
    assert enrollments(db) == [
        (gift, "sms_thanks", "pending", None),
        (gift, "thanks", "pending", None),
        (gift, "welcome", "pending", None),
    ]
    assert sorted(d for d, _, _ in triggers(db)) == ["braze", "braze", "mailchimp"]
    assert _watermark(db) is not None


def test_a_deferred_journey_leaves_its_pending_triggers_as_they_are(db: psycopg.Connection) -> None:
    donor = add_donor(db)
    add_gift(db, donor)
    decide(db, rules=MIXED, **decide_kwargs())
    assert len(triggers(db)) == 2  # welcome (Mailchimp) and thanks (Braze), queued
    suppress(db, donor, "cleaned", channel="email")  # what a pull-back would bring back
    db.commit()

    # Deferred, the re-check of pending enrollments is not made either: nothing is decided on
    # consent the failed pull-back left stale (and Mailchimp's push does not run this run).
    decide(db, rules=MIXED, defer={"welcome": ("mailchimp",), "thanks": ("mailchimp",)}, **decide_kwargs())
    assert [s for _, _, s in triggers(db)] == ["pending", "pending"]
    # Once decided again, the suppression cancels both.
    decide(db, rules=MIXED, **decide_kwargs())
    assert [s for _, _, s in triggers(db)] == ["canceled", "canceled"]
    assert {(j, s, r) for _, j, s, r in enrollments(db)} == {
        ("welcome", "suppressed", "cleaned"),
        ("thanks", "suppressed", "cleaned"),
        ("sms_thanks", "suppressed", "no_consent"),  # decided at first, never deferred
    }
