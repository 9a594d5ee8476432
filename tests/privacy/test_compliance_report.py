"""``donor-sync compliance report``: the counts match the rows of the period, ids only."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.errors import DonorSyncError
from donor_sync.observability.audit import record
from donor_sync.privacy.compliance_report import build_report, period_bounds

IN = "2025-03-10 12:00+00"  # inside the period 2025-03-01 .. 2025-03-31
BEFORE = "2025-02-27 12:00+00"
AFTER = "2025-04-01 00:00+00"  # the first instant after the period


def _donor(db: psycopg.Connection) -> uuid.UUID:
    row = db.execute(
        "INSERT INTO core.donors (first_name, email) VALUES ('Ada', 'ada@example.org') RETURNING donor_id"
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _consent(
    db: psycopg.Connection, donor: uuid.UUID, source: str, purpose: str, status: str, at: str
) -> None:
    db.execute(
        "INSERT INTO core.consent_events (donor_id, purpose, channel, status, source, occurred_at,"
        " recorded_at, recorded_by) VALUES (%s, %s, 'email', %s, %s, %s, %s, 'test')",
        (donor, purpose, status, source, at, at),
    )


def _suppression(
    db: psycopg.Connection, donor: uuid.UUID, reason: str, created: str, lifted: str | None
) -> None:
    db.execute(
        "INSERT INTO core.suppressions (donor_id, reason_code, source, created_by, created_at, lifted_at,"
        " lifted_by) VALUES (%s, %s, 'staff', 'test', %s, %s, %s)",
        (donor, reason, created, lifted, "test" if lifted else None),
    )


def _run(db: psycopg.Connection, metrics: list[tuple[str, str, float]], at: str) -> None:
    row = db.execute(
        "INSERT INTO sync.runs (dag_id, run_type) VALUES ('donations_hourly', 'test') RETURNING run_id"
    )
    run = row.fetchone()
    assert run is not None
    for metric, scope, value in metrics:
        db.execute(
            "INSERT INTO sync.run_metrics (run_id, stage, scope, metric, value, unit, recorded_at)"
            " VALUES (%s, 'gate', %s, %s, %s, 'records', %s)",
            (run[0], scope, metric, value, at),
        )


def _request(
    db: psycopg.Connection,
    donor: uuid.UUID,
    kind: str,
    status: str,
    received: str,
    due: str,
    completed: str | None = None,
) -> uuid.UUID:
    row = db.execute(
        "INSERT INTO sync.privacy_requests (kind, donor_id, channel, requested_by, received_at, due_at,"
        " status, completed_at) VALUES (%s, %s, 'cli', 'test', %s, %s, %s, %s) RETURNING request_id",
        (kind, donor, received, due, status, completed),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _receipt(
    db: psycopg.Connection, request: uuid.UUID, system: str, status: str, verified: bool, at: str
) -> None:
    db.execute(
        "INSERT INTO sync.privacy_receipts (request_id, system, action, status, verified, done_at)"
        " VALUES (%s, %s, 'deleted', %s, %s, %s)",
        (request, system, status, verified, at),
    )


@pytest.fixture
def seeded(db: psycopg.Connection) -> dict[str, uuid.UUID]:
    donor = _donor(db)
    _consent(db, donor, "donorbox", "marketing", "opt_in", IN)
    _consent(db, donor, "donorbox", "marketing", "opt_in", "2025-03-31 23:59:59+00")
    _consent(db, donor, "mailchimp", "marketing", "opt_out", IN)
    _consent(db, donor, "mailchimp", "marketing", "opt_out", BEFORE)  # outside
    _consent(db, donor, "hubspot", "fundraising", "opt_in", AFTER)  # outside
    _suppression(db, donor, "bounced", IN, None)
    _suppression(db, donor, "deceased", BEFORE, None)  # active throughout, not added in the period
    _suppression(db, donor, "manual", BEFORE, IN)  # lifted in the period
    _suppression(db, donor, "complained", IN, AFTER)  # added in, lifted after: active at end
    _run(db, [("gate_blocked_no_consent", "mailchimp", 4), ("gate_fields_withheld", "hubspot", 7)], IN)
    _run(db, [("gate_blocked_no_consent", "mailchimp", 2), ("gate_blocked_sharing", "braze", 1)], IN)
    _run(db, [("gate_blocked_no_consent", "mailchimp", 100), ("pushed", "mailchimp", 50)], AFTER)
    _run(db, [("pushed", "mailchimp", 9)], IN)  # not a gate metric
    on_time = _request(
        db, donor, "erasure", "completed", "2025-03-01 00:00+00", "2025-03-31 00:00+00", "2025-03-03 00:00+00"
    )
    late = _request(
        db, donor, "erasure", "completed", "2025-02-01 00:00+00", "2025-03-03 00:00+00", "2025-03-11 00:00+00"
    )
    overdue = _request(db, donor, "export", "in_progress", "2025-03-01 00:00+00", "2025-03-20 00:00+00")
    _request(db, donor, "erasure", "received", "2025-03-25 00:00+00", "2025-04-24 00:00+00")  # not yet due
    _request(
        db, donor, "export", "rejected", "2025-03-02 00:00+00", "2025-03-05 00:00+00"
    )  # rejected: not overdue
    _receipt(db, on_time, "salesforce", "done", True, IN)
    _receipt(db, on_time, "mailchimp", "done", False, IN)
    _receipt(db, late, "salesforce", "failed", False, IN)
    _receipt(db, late, "mailchimp", "done", True, BEFORE)  # outside
    _receipt(db, overdue, "staging", "done", True, IN)  # an export's receipt: not an erasure
    for count, at in ((120, IN), (30, IN), (999, AFTER)):
        db.execute(
            "INSERT INTO sync.audit_log (at, actor, action, object_type, details)"
            " VALUES (%s, 'dag:donors_nightly.retention', 'retention.purged', 'raw.records', %s)",
            (at, json.dumps({"count": count, "policy": "raw_payloads"})),
        )
    record(
        db,
        actor="test",
        action="retention.purged",
        object_type="sync.dead_letters",
        object_id=None,
        details={"count": 5},
    )  # now: outside the period
    db.commit()
    return {"overdue": overdue, "donor": donor}


def test_report_counts_match_the_rows_of_the_period(
    db: psycopg.Connection, seeded: dict[str, uuid.UUID]
) -> None:
    report = build_report(db, since=date(2025, 3, 1), until=date(2025, 3, 31))
    consent = {(c.source, c.purpose, c.channel, c.status): c.events for c in report.consent_events}
    assert consent == {
        ("donorbox", "marketing", "email", "opt_in"): 2,
        ("mailchimp", "marketing", "email", "opt_out"): 1,
    }
    suppressions = {s.reason_code: (s.added, s.lifted, s.active_at_end) for s in report.suppressions}
    assert suppressions == {
        "bounced": (1, 0, 1),
        "complained": (1, 0, 1),
        "deceased": (0, 0, 1),
        "manual": (0, 1, 0),
    }
    gate = {(g.metric, g.scope): (g.total, g.runs) for g in report.gate}
    assert gate == {
        ("gate_blocked_no_consent", "mailchimp"): (6.0, 2),
        ("gate_blocked_sharing", "braze"): (1.0, 1),
        ("gate_fields_withheld", "hubspot"): (7.0, 1),
    }
    requests = {(r.kind, r.status): r.requests for r in report.requests}
    assert requests == {
        ("erasure", "completed"): 1,
        ("erasure", "received"): 1,
        ("export", "in_progress"): 1,
        ("export", "rejected"): 1,
    }
    assert [o.request_id for o in report.overdue] == [str(seeded["overdue"])]
    assert report.overdue[0].days_overdue == pytest.approx(12.0)  # due 03-20, period ends 04-01
    assert (report.completed, report.completed_late) == (2, 1)
    assert report.median_days_to_complete == pytest.approx((2 + 38) / 2)
    assert report.max_days_to_complete == pytest.approx(38)
    receipts = {r.system: (r.done, r.failed, r.verified, r.unverified) for r in report.erasure_receipts}
    assert receipts == {"mailchimp": (1, 0, 0, 1), "salesforce": (1, 1, 1, 1)}
    assert [(p.table, p.purges, p.rows) for p in report.retention_purges] == [("raw.records", 2, 150)]
    assert report.audit_chain is not None
    assert report.audit_chain.ok


def test_text_and_json_carry_ids_and_counts_but_no_pii(
    db: psycopg.Connection, seeded: dict[str, uuid.UUID]
) -> None:
    report = build_report(db, since=date(2025, 3, 1), until=date(2025, 3, 31))
    text = report.as_text()
    as_json = json.dumps(report.as_json())
    for rendered in (text, as_json):
        assert "ada@example.org" not in rendered
        assert "Ada" not in rendered
        assert str(seeded["donor"]) not in rendered  # donors are counted, not listed
        assert str(seeded["overdue"]) in rendered  # overdue requests are named by id
    assert "Consent events recorded: 3" in text
    assert "gate_blocked_no_consent" in text
    assert "mailchimp" in text
    assert "overdue at period end: 1" in text
    assert "audit chain ok" in text


def test_a_broken_audit_chain_shows_in_the_report(
    db: psycopg.Connection, seeded: dict[str, uuid.UUID]
) -> None:
    db.execute("ALTER TABLE sync.audit_log DISABLE TRIGGER USER")
    db.execute("UPDATE sync.audit_log SET details = '{\"count\": 1}' WHERE details ->> 'count' = '120'")
    db.execute("ALTER TABLE sync.audit_log ENABLE TRIGGER USER")
    db.commit()
    report = build_report(db, since=date(2025, 3, 1), until=date(2025, 3, 31))
    assert report.audit_chain is not None
    assert not report.audit_chain.ok
    assert "BROKEN" in report.as_text()
    assert report.retention_purges[0].rows == 31  # the report shows what the tables hold now


def test_an_empty_period_and_a_reversed_one(db: psycopg.Connection) -> None:
    report = build_report(db, since=date(2020, 1, 1), until=date(2020, 1, 1))
    assert report.consent_events == []
    assert report.requests == []
    assert report.overdue == []
    assert report.median_days_to_complete is None
    assert "none completed" in report.as_text()
    with pytest.raises(DonorSyncError, match="before --since"):
        period_bounds(date(2020, 1, 2), date(2020, 1, 1))


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    return CliRunner()


def test_cli_report_text_json_and_file(seeded: dict[str, uuid.UUID], cli: CliRunner, tmp_path: Path) -> None:
    text = cli.invoke(main, ["compliance", "report", "--since", "2025-03-01", "--until", "2025-03-31"])
    assert text.exit_code == 0, text.output
    assert "Compliance report 2025-03-01 .. 2025-03-31" in text.output
    out = tmp_path / "report.json"
    written = cli.invoke(
        main,
        [
            "compliance",
            "report",
            "--since",
            "2025-03-01",
            "--until",
            "2025-03-31",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert written.exit_code == 0, written.output
    data = json.loads(out.read_text())
    assert data["completed"] == 2
    assert data["audit_chain"]["ok"] is True
    assert data["overdue"][0]["request_id"] == str(seeded["overdue"])
    reversed_period = cli.invoke(
        main, ["compliance", "report", "--since", "2025-03-02", "--until", "2025-03-01"]
    )
    assert reversed_period.exit_code == 1
    assert "before --since" in reversed_period.output
    bad_date = cli.invoke(main, ["compliance", "report", "--since", "March", "--until", "2025-03-01"])
    assert bad_date.exit_code == 2
