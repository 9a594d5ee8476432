"""Alert incidents against a real Postgres: each rule opens one incident and posts one message;
repeats are silent; clearing posts one resolution; failed sends are retried; concurrent checks
post once; a storm becomes a digest; no PII reaches a message."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.observability.alerting import (
    AlertRules,
    Links,
    evaluate_and_notify,
    open_incidents,
    plan_alerts,
    resolve_deadline_incident,
)
from donor_sync.observability.alerting.engine import open_event_incident
from donor_sync.observability.alerting.store import get_incident

LINKS = Links(
    airflow_base_url="https://airflow.example.org", docs_base_url="https://git.example.org/docs/runbooks"
)
DAG = "donations_hourly"


class Slack:
    """A sender that records what it delivered; ``fail`` sends fail first (False or an exception)."""

    def __init__(self, fail: int = 0, raise_with: type[Exception] | None = None, delay_s: float = 0) -> None:
        self.messages: list[str] = []
        self.fail = fail
        self.raise_with = raise_with
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, text: str) -> bool:
        time.sleep(self.delay_s)
        with self.lock:
            if self.fail:
                self.fail -= 1
                if self.raise_with:
                    raise self.raise_with("jane.doe@example.org refused")  # a message that must not leak
                return False
            self.messages.append(text)
        return True


def rules(slack: dict[str, Any] | None = None) -> AlertRules:
    """The shipped defaults, except that dead letters resolve after one clear check."""
    return AlertRules.model_validate(
        {"slack": slack or {}, "rules": {"dead_letter_growth": {"clear_after_runs": 1}}}
    )


def new_run(db: psycopg.Connection, *, dag_id: str = DAG, started_at: datetime | None = None) -> UUID:
    row = db.execute(
        "INSERT INTO sync.runs (dag_id, airflow_run_id, run_type, started_at)"
        " VALUES (%s, %s, 'scheduled', COALESCE(%s, clock_timestamp())) RETURNING run_id",
        (dag_id, f"scheduled__{uuid4().hex[:10]}", started_at),
    ).fetchone()
    db.commit()
    assert row is not None
    return UUID(str(row[0]))


def metric(
    db: psycopg.Connection,
    run_id: UUID,
    stage: str,
    scope: str,
    name: str,
    value: float,
    unit: str = "records",
) -> None:
    db.execute(
        "INSERT INTO sync.run_metrics (run_id, stage, scope, metric, value, unit)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (run_id, stage, scope, name, value, unit),
    )
    db.commit()


def airflow_run_id(db: psycopg.Connection, run_id: UUID) -> str:
    row = db.execute("SELECT airflow_run_id FROM sync.runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row is not None
    return str(row[0])


def request(db: psycopg.Connection, due_in: timedelta, *, donor_id: UUID | None = None) -> str:
    row = db.execute(
        "INSERT INTO sync.privacy_requests (kind, donor_id, subject_hashes, channel, requested_by, due_at)"
        " VALUES ('erasure', %s, %s::jsonb, 'api', 'api:test', now() + %s) RETURNING request_id",
        (donor_id, '[{"kind": "email", "key_id": "t1", "hash": "ab"}]', due_in),
    ).fetchone()
    db.commit()
    assert row is not None
    return str(row[0])


def check(
    db: psycopg.Connection,
    run_id: UUID | None,
    slack: Slack,
    alert_rules: AlertRules | None = None,
    **kw: Any,
):  # type: ignore[no-untyped-def]
    return evaluate_and_notify(db, run_id=run_id, send=slack, links=LINKS, rules=alert_rules or rules(), **kw)


# -- one case per rule: how to breach it, how to clear it, what its message says -------------------


Seed = Callable[[psycopg.Connection, UUID], None]


def _nothing(db: psycopg.Connection, run: UUID) -> None:
    """Live-table rules: the breach is still there."""


@dataclass
class Case:
    key: str
    breach: Seed
    clear: Seed
    says: tuple[str, ...]
    runbook: str
    again: Seed = _nothing


def _push(db: psycopg.Connection, run: UUID, pushed: int, failed: int, dead: int = 0) -> None:
    metric(db, run, "push", "hubspot", "pushed", pushed)
    metric(db, run, "push", "hubspot", "failed", failed)
    metric(db, run, "push", "hubspot", "dead_lettered", dead)


def _letters(db: psycopg.Connection, run: UUID, new: int, depth: int) -> None:
    metric(db, run, "dead_letters", "salesforce", "new", new)
    metric(db, run, "dead_letters", "salesforce", "open", depth, "count")


def _growth_breach(db: psycopg.Connection, run: UUID) -> None:
    earlier = new_run(db, started_at=datetime.now(UTC) - timedelta(hours=3))
    _letters(db, earlier, 0, 10)
    _letters(db, run, 5, 160)


def _quota(db: psycopg.Connection, run: UUID, ratio: float) -> None:
    metric(db, run, "api", "hubspot", "quota_remaining_ratio", ratio, "ratio")
    metric(db, run, "api", "hubspot", "quota_remaining", round(ratio * 250_000), "count")
    metric(db, run, "api", "hubspot", "quota_limit", 250_000, "count")


def _breaker(db: psycopg.Connection, run: UUID) -> None:
    db.execute(
        "INSERT INTO sync.circuit_breakers (destination, state, opened_at, next_probe_at, last_error_class)"
        " VALUES ('salesforce', 'open', now(), now() + interval '60 seconds', 'rate_limited')"
    )
    db.commit()


def _close_breaker(db: psycopg.Connection, run: UUID) -> None:
    db.execute("UPDATE sync.circuit_breakers SET state = 'closed', opened_at = NULL, next_probe_at = NULL")
    db.commit()


def _scores(db: psycopg.Connection, run: UUID, score: float, validity: float) -> None:
    if not db.execute(
        "SELECT 1 FROM sync.run_metrics WHERE stage = 'quality' AND run_id <> %s", (run,)
    ).fetchone():
        for hours in range(1, 6):
            earlier = new_run(db, started_at=datetime.now(UTC) - timedelta(hours=hours))
            metric(db, earlier, "quality", "", "score", 0.95, "ratio")
            metric(db, earlier, "quality", "", "validity", 0.97, "ratio")
            metric(db, earlier, "quality", "", "duplicate_rate", 0.02, "ratio")
    metric(db, run, "quality", "", "score", score, "ratio")
    metric(db, run, "quality", "", "validity", validity, "ratio")
    metric(db, run, "quality", "", "duplicate_rate", 0.02, "ratio")


_REQUEST: dict[str, str] = {}


def _due_request(db: psycopg.Connection, run: UUID) -> None:
    _REQUEST["id"] = request(db, timedelta(days=3))


def _complete_request(db: psycopg.Connection, run: UUID) -> None:
    db.execute("UPDATE sync.privacy_requests SET status = 'completed', completed_at = now()")
    db.commit()


CASES = [
    pytest.param(
        Case(
            "failed_share:hubspot",
            lambda db, r: _push(db, r, 200, 30, 5),
            lambda db, r: _push(db, r, 200, 2),
            ("Push failures above threshold", "30 of 200 records pushed failed (15.0%", "threshold 5.0%"),
            "sync-failure.md",
            again=lambda db, r: _push(db, r, 300, 40),
        ),
        id="failed_share",
    ),
    pytest.param(
        Case(
            "dead_letter_growth:salesforce",
            lambda db, r: _letters(db, r, 40, 40),
            lambda db, r: _letters(db, r, 0, 40),
            ("Dead letters piling up", "40 new dead letter(s) in this run (limit 25)"),
            "dead-letter-review.md",
            again=lambda db, r: _letters(db, r, 41, 81),
        ),
        id="dead_letters_new",
    ),
    pytest.param(
        Case(
            "dead_letter_growth:salesforce",
            _growth_breach,
            lambda db, r: _letters(db, r, 0, 30),
            ("160 open", "+150 over 24h (limit 100)"),
            "dead-letter-review.md",
            again=lambda db, r: _letters(db, r, 5, 200),
        ),
        id="dead_letters_growth",
    ),
    pytest.param(
        Case(
            "quota_reserve:hubspot",
            lambda db, r: _quota(db, r, 0.04),
            lambda db, r: _quota(db, r, 0.6),
            (
                "API quota below the reserve",
                "4.0% of the API quota left (10,000 of 250,000 calls); reserve 10%",
            ),
            "rate-limits-and-quota.md",
            again=lambda db, r: _quota(db, r, 0.02),
        ),
        id="quota_reserve",
    ),
    pytest.param(
        Case(
            "circuit_open:salesforce",
            _breaker,
            _close_breaker,
            (
                "Circuit breaker open",
                "salesforce: circuit breaker open since",
                "last error class rate_limited",
            ),
            "open-circuit.md",
        ),
        id="circuit_open",
    ),
    pytest.param(
        Case(
            "scorecard_drop:score",
            lambda db, r: _scores(db, r, 0.85, 0.80),
            lambda db, r: _scores(db, r, 0.95, 0.97),
            (
                "Data quality score dropped",
                "quality score 85.0%, 10.0 points below the median of the previous 5 run(s)",
                "validity moved most: 97.0% to 80.0%",
            ),
            "vendor-schema-change.md",
            again=lambda db, r: _scores(db, r, 0.85, 0.80),
        ),
        id="scorecard_drop",
    ),
    pytest.param(
        Case(
            "erasure_deadline:{request}",
            _due_request,
            _complete_request,
            ("Privacy request deadline near", "erasure request", "(received) is due", "in 3.0 day(s)"),
            "erasure-request.md",
        ),
        id="erasure_deadline",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_each_rule_opens_one_incident_posts_once_and_resolves_once(
    db: psycopg.Connection, case: Case
) -> None:
    slack = Slack()
    first = new_run(db)
    case.breach(db, first)
    report = check(db, first, slack)
    key = case.key.format(request=_REQUEST.get("id", ""))
    assert report.opened == [key]
    assert len(slack.messages) == 1
    text = slack.messages[0]
    for phrase in case.says:
        assert phrase in text, text
    assert f"Incident `{key}`" in text
    assert f"<https://git.example.org/docs/runbooks/{case.runbook}|{case.runbook}>" in text
    run_link = f"https://airflow.example.org/dags/{DAG}/runs/{airflow_run_id(db, first)}"
    assert run_link in text

    # The same breach seen by the next run: counted, not posted.
    second = new_run(db)
    case.again(db, second)
    report = check(db, second, slack)
    assert report.opened == []
    assert report.continuing == [key]
    assert len(slack.messages) == 1
    [incident] = open_incidents(db)
    assert incident.times_seen == 2
    # Checked again for the same run (a retried task): not counted twice.
    check(db, second, slack)
    assert open_incidents(db)[0].times_seen == 2

    # Cleared: one resolution message, linking the run that found it clear.
    third = new_run(db)
    case.clear(db, third)
    report = check(db, third, slack)
    assert report.resolved == [key]
    assert len(slack.messages) == 2
    resolution = slack.messages[1]
    assert resolution.startswith(":white_check_mark: *Resolved: ")
    assert f"Incident `{key}`" in resolution
    assert f"runs/{airflow_run_id(db, third)}" in resolution
    assert open_incidents(db) == []

    # And nothing more while it stays clear.
    fourth = new_run(db)
    case.clear(db, fourth)
    check(db, fourth, slack)
    assert len(slack.messages) == 2


def test_a_figure_the_run_did_not_record_leaves_the_incident_as_it_is(db: psycopg.Connection) -> None:
    slack = Slack()
    first = new_run(db)
    _push(db, first, 200, 50)
    check(db, first, slack)
    quiet = new_run(db)  # nothing pushed to hubspot in this run
    _push(db, quiet, 10, 0)  # too few to judge (min_pushed 50)
    report = check(db, quiet, slack)
    assert report.resolved == []
    assert report.continuing == []
    assert [i.incident_key for i in open_incidents(db)] == ["failed_share:hubspot"]
    assert len(slack.messages) == 1


def test_per_destination_limits_and_critical_share(db: psycopg.Connection) -> None:
    slack = Slack()
    run = new_run(db)
    for destination, pushed, failed in (("mailchimp", 100, 8), ("salesforce", 100, 60)):
        metric(db, run, "push", destination, "pushed", pushed)
        metric(db, run, "push", destination, "failed", failed)
    shipped = AlertRules.model_validate(
        {"rules": {"failed_share": {"destinations": {"mailchimp": {"max_share": 0.1}}}}}
    )
    report = check(db, run, slack, shipped)
    assert report.opened == ["failed_share:salesforce"]  # mailchimp's 8% is within its own 10%
    assert slack.messages[0].startswith(":rotating_light: *Push failures above threshold*")
    assert open_incidents(db)[0].severity == "critical"


def test_dead_letters_resolve_only_after_clear_after_runs_clear_checks(db: psycopg.Connection) -> None:
    slack = Slack()
    shipped = AlertRules()  # dead_letter_growth.clear_after_runs = 3
    run = new_run(db)
    _letters(db, run, 40, 40)
    check(db, run, slack, shipped)
    for expected in ("clearing", "clearing", "resolved"):
        run = new_run(db)
        _letters(db, run, 0, 40)
        report = check(db, run, slack, shipped)
        assert getattr(report, expected) == ["dead_letter_growth:salesforce"]
    assert len(slack.messages) == 2
    # A breach in the middle of a clear streak starts it again.
    run = new_run(db)
    _letters(db, run, 30, 70)
    check(db, run, slack, shipped)
    run = new_run(db)
    _letters(db, run, 0, 70)
    check(db, run, slack, shipped)
    run = new_run(db)
    _letters(db, run, 26, 96)
    check(db, run, slack, shipped)
    [incident] = open_incidents(db)
    assert incident.clear_streak == 0
    assert incident.times_seen == 2


@pytest.mark.parametrize(
    "failure", [pytest.param(None, id="send-returns-false"), pytest.param(ConnectionError, id="send-raises")]
)
def test_a_failed_send_leaves_the_message_owed_and_the_next_check_sends_it(
    db: psycopg.Connection, failure: type[Exception] | None
) -> None:
    down = Slack(fail=1, raise_with=failure)
    run = new_run(db)
    _push(db, run, 100, 40)
    report = check(db, run, down)
    assert report.opened == ["failed_share:hubspot"]
    assert down.messages == []
    assert report.delivery.error == ("ConnectionError" if failure else "send_failed")
    assert report.delivery.pending == 1
    [incident] = open_incidents(db)
    assert incident.notified_at is None
    assert incident.notify_failures == 1
    assert incident.last_notify_error == report.delivery.error  # the class, never the exception's text

    up = Slack()
    later = new_run(db)
    _push(db, later, 100, 40)
    report = check(db, later, up)
    assert report.continuing == ["failed_share:hubspot"]
    assert len(up.messages) == 1
    assert up.messages[0].startswith(":warning: *Push failures above threshold*")
    check(db, later, up)
    assert len(up.messages) == 1


def test_two_checks_at_once_post_once(db_url: str, db: psycopg.Connection) -> None:
    run = new_run(db)
    _push(db, run, 100, 40)
    request(db, timedelta(days=2))
    slack = Slack(delay_s=0.3)  # holds the claimed rows while the other check runs
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def one() -> None:
        with connect(db_url) as conn:
            barrier.wait()
            reports.append(evaluate_and_notify(conn, run_id=run, send=slack, links=LINKS, rules=rules()))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(slack.messages) == 2, slack.messages  # one per incident, not one per check
    assert sorted(len(r.opened) for r in reports) in ([0, 2], [1, 1])
    assert sum(len(r.opened) for r in reports) == 2
    assert all(i.notified_at is not None for i in open_incidents(db))
    assert len(open_incidents(db)) == 2


def test_a_storm_becomes_a_handful_of_messages_and_one_digest(db: psycopg.Connection) -> None:
    slack = Slack()
    ids = [request(db, timedelta(days=d)) for d in (1, 2, 3, 4, 5, 6)]
    report = check(db, None, slack, rules(slack={"max_messages_per_evaluation": 3}))
    assert len(report.opened) == 6
    assert len(slack.messages) == 3
    assert report.delivery.digests == 1
    digest = slack.messages[2]
    assert digest.startswith(":rotating_light: *4 more alert change(s)*")
    assert sum(1 for i in ids if i in digest) == 4
    assert report.delivery.pending == 0
    check(db, None, slack, rules(slack={"max_messages_per_evaluation": 3}))
    assert len(slack.messages) == 3


def test_an_overdue_request_escalates_once_then_resolves(db: psycopg.Connection) -> None:
    slack = Slack()
    rid = request(db, timedelta(days=3))
    now = datetime.now(UTC)
    check(db, None, slack, now=now)
    check(db, None, slack, now=now + timedelta(days=1))
    assert len(slack.messages) == 1
    report = check(db, None, slack, now=now + timedelta(days=4))
    assert report.continuing == [f"erasure_deadline:{rid}"]
    assert len(slack.messages) == 2
    assert slack.messages[1].startswith(":rotating_light: *Privacy request deadline near, now critical*")
    assert "is OVERDUE" in slack.messages[1]
    check(db, None, slack, now=now + timedelta(days=5))
    assert len(slack.messages) == 2
    _complete_request(db, new_run(db))
    check(db, None, slack, now=now + timedelta(days=5))
    assert len(slack.messages) == 3
    assert f"erasure request {rid} is completed" in slack.messages[2]


def test_no_pii_reaches_any_message(db: psycopg.Connection) -> None:
    emails = ["jane.doe@example.org", "tomás.pérez@example.net"]
    donors = [
        db.execute(
            "INSERT INTO core.donors (first_name, last_name, email)"
            " VALUES ('Jane', 'Doe', %s) RETURNING donor_id",
            (email,),
        ).fetchone()[0]  # type: ignore[index]
        for email in emails
    ]
    db.commit()
    request(db, timedelta(days=-2), donor_id=donors[0])
    request(db, timedelta(days=2), donor_id=donors[1])
    run = new_run(db)
    _push(db, run, 100, 90, 20)
    _letters(db, run, 50, 50)
    _quota(db, run, 0.01)
    _breaker(db, run)
    _scores(db, run, 0.5, 0.5)
    slack = Slack()
    check(db, run, slack, rules(slack={"max_messages_per_evaluation": 20}))
    assert len(slack.messages) == 7
    check(db, run, slack, rules(slack={"max_messages_per_evaluation": 20}))
    everything = "\n".join(slack.messages).lower()
    for needle in (*emails, "jane", "doe", "pérez"):
        assert needle not in everything


def test_a_dry_run_plans_without_writing_or_posting(db: psycopg.Connection) -> None:
    run = new_run(db)
    _push(db, run, 100, 40)
    changes, owed = plan_alerts(db, run_id=run, rules=rules())
    assert [(c.observation.key, c.action) for c in changes] == [
        ("failed_share:hubspot", "open"),
        ("dead_letter_growth:hubspot", "ok"),  # no dead letters: judged clear, nothing open
    ]
    assert owed == 0
    assert open_incidents(db) == []
    check(db, run, Slack())
    clear = new_run(db)
    _push(db, clear, 100, 0)
    changes, _ = plan_alerts(db, run_id=clear, rules=rules())
    assert [c.action for c in changes] == ["resolve", "ok"]
    assert len(open_incidents(db)) == 1


def test_the_deadline_incident_is_resolved_by_a_successful_run(db: psycopg.Connection) -> None:
    slack = Slack()
    late = new_run(db)
    incident_id, opened = open_event_incident(
        db,
        kind="deadline_missed",
        scope=DAG,
        summary=f"*{DAG}* run late",
        dag_id=DAG,
        airflow_run_id=airflow_run_id(db, late),
    )
    assert opened
    incident = get_incident(db, incident_id)
    assert incident is not None
    assert incident.first_run_id == late
    # Its opening is owed (say the triggerer could not post): the next check posts it.
    check(db, None, slack, kinds=["circuit_open"])
    assert len(slack.messages) == 1
    assert slack.messages[0].startswith(":alarm_clock: *Run missed its deadline*")
    done = new_run(db)
    assert resolve_deadline_incident(db, DAG, done, send=slack, links=LINKS)
    assert len(slack.messages) == 2
    assert f"{DAG} run {airflow_run_id(db, done)} succeeded" in slack.messages[1]
    assert not resolve_deadline_incident(db, DAG, done, send=slack, links=LINKS)
    assert len(slack.messages) == 2


def test_unknown_kinds_and_runs_are_refused(db: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="unknown alert kind"):
        check(db, None, Slack(), kinds=["nope"])
    with pytest.raises(LookupError, match="no run"):
        check(db, uuid4(), Slack())
