"""Quarantine operations: fix, release as is and discard round trips, audit, the CLI, and re-runs
that honour the operators' decisions.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.standardize import quarantine
from donor_sync.standardize.pipeline import standardize_batches
from donor_sync.standardize.reconcile import reconcile
from donor_sync.standardize.routing import CannotReleaseError
from tests.standardize.test_pipeline_support import NOW, disposition, donation, land, rules


def _quarantined(db: psycopg.Connection, source_id: str) -> quarantine.QuarantinedRecord:
    rows = [r for r in quarantine.list_quarantined(db, include_closed=True) if r.source_id == source_id]
    assert len(rows) == 1, rows
    return rows[0]


def _setup(db: psycopg.Connection, *payloads: dict[str, Any]) -> int:
    batch = land(db, "donorbox", [("donation", p) for p in payloads])
    standardize_batches(db, [batch], settings=rules(), now=NOW)
    return batch


def _audit(db: psycopg.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (str(a), str(o), d)
        for a, o, d in db.execute("SELECT action, object_id, details FROM sync.audit_log ORDER BY audit_id")
    ]


def test_fix_stages_the_record_and_a_rerun_keeps_the_fix(db: psycopg.Connection) -> None:
    batch = _setup(db, donation(1, donor={"email": "jane at example.org"}), donation(2))
    row = _quarantined(db, "1")
    assert row.codes == ["invalid_email"]
    assert row.reasons[0]["value"] == "jane at example.org"

    outcome = quarantine.fix(
        db,
        row.quarantine_id,
        {"email": "jane@example.org"},
        actor="cli:ops",
        settings=rules(),
        now=NOW,
        note="typo on the form",
    )
    assert outcome.disposition == "staged"
    assert outcome.reasons == []
    closed = _quarantined(db, "1")
    assert (closed.resolution, closed.released_by, closed.fix) == (
        "fixed",
        "cli:ops",
        {"email": "jane@example.org"},
    )
    assert db.execute("SELECT email FROM staging.donors WHERE source_id = %s", ("2000001",)).fetchone() == (
        "jane@example.org",
    )
    assert disposition(db, "donorbox", "donation", "1") == [("staged", None)]
    assert reconcile(db, [batch]) == []
    action, object_id, details = _audit(db)[-1]
    assert (action, object_id) == ("quarantine.fixed", str(row.quarantine_id))
    assert details["fields"] == ["email"]
    assert "jane" not in str(details["fields"])

    standardize_batches(db, [batch], settings=rules(), now=NOW)  # the raw record still has the typo
    assert disposition(db, "donorbox", "donation", "1") == [("staged", None)]
    assert db.execute("SELECT count(*) FROM staging.quarantine WHERE released_at IS NULL").fetchone() == (0,)


def test_a_fix_that_does_not_fix_keeps_it_quarantined_with_the_new_reasons(db: psycopg.Connection) -> None:
    _setup(db, donation(3, amount="twenty"))
    row = _quarantined(db, "3")
    assert "malformed_amount" in row.codes
    outcome = quarantine.fix(
        db, row.quarantine_id, {"amount": "-5"}, actor="cli:ops", settings=rules(), now=NOW
    )
    assert outcome.disposition == "quarantined"
    assert [r["code"] for r in outcome.reasons] == ["negative_amount"]
    still = _quarantined(db, "3")
    assert still.released_at is None
    assert still.quarantine_id == row.quarantine_id
    assert _audit(db)[-1][0] == "quarantine.fix_failed"
    with pytest.raises(quarantine.QuarantineError, match="not intake fields: amount_usd"):
        quarantine.fix(db, row.quarantine_id, {"amount_usd": "5"}, actor="cli:ops", settings=rules(), now=NOW)


def test_release_stages_what_parses_and_flags_the_rest(db: psycopg.Connection) -> None:
    batch = _setup(db, donation(4, donor={"email": "not-an-email"}))
    row = _quarantined(db, "4")
    outcome = quarantine.release(
        db, row.quarantine_id, actor="cli:ops", settings=rules(), now=NOW, note="known donor"
    )
    assert outcome.disposition == "staged"
    donor = db.execute("SELECT email, first_name, review_flags FROM staging.donors").fetchone()
    assert donor is not None
    assert donor[0] is None
    assert donor[1] == "Jacob"
    assert any(f["code"] == "invalid_email" and f["field"] == "email" for f in donor[2])
    assert _quarantined(db, "4").resolution == "released_as_is"
    standardize_batches(db, [batch], settings=rules(), now=NOW)
    assert disposition(db, "donorbox", "donation", "4") == [("staged", None)]
    assert _audit(db)[-1][0] == "quarantine.released"


def test_release_is_refused_when_a_record_rule_still_fails(db: psycopg.Connection) -> None:
    _setup(db, donation(5, amount="N/A"))
    row = _quarantined(db, "5")
    with pytest.raises(CannotReleaseError, match="missing_amount"):
        quarantine.release(db, row.quarantine_id, actor="cli:ops", settings=rules(), now=NOW)
    assert _quarantined(db, "5").released_at is None
    assert disposition(db, "donorbox", "donation", "5") == [("quarantined", None)]


def test_discard_closes_it_for_good(db: psycopg.Connection) -> None:
    batch = _setup(db, donation(6, currency="xyz"))
    row = _quarantined(db, "6")
    with pytest.raises(quarantine.QuarantineError, match="say why"):
        quarantine.discard(db, row.quarantine_id, actor="cli:ops", note=" ")
    quarantine.discard(db, row.quarantine_id, actor="cli:ops", note="test donation")
    assert _quarantined(db, "6").resolution == "discarded"
    standardize_batches(db, [batch], settings=rules(), now=NOW)
    assert _quarantined(db, "6").resolution == "discarded"  # no new open row
    assert disposition(db, "donorbox", "donation", "6") == [("quarantined", None)]
    assert reconcile(db, [batch]) == []
    with pytest.raises(quarantine.QuarantineError, match="already closed"):
        quarantine.discard(db, row.quarantine_id, actor="cli:ops", note="again")
    assert _audit(db)[-1] == (
        "quarantine.discarded",
        str(row.quarantine_id),
        {"raw_record_id": row.raw_record_id, "codes": ["unknown_currency"], "note": "test donation"},
    )


def test_cli_lists_shows_fixes_and_discards(
    db: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    _setup(db, donation(7, donor={"email": "x@@example.org"}), donation(8, currency="btc"))
    db.commit()
    runner = CliRunner()
    listed = runner.invoke(main, ["quarantine", "list", "--code", "invalid_email"])
    assert listed.exit_code == 0, listed.output
    assert "donorbox/donation 7" in listed.output
    assert "donation 8" not in listed.output
    assert "x@@example.org" not in listed.output  # no values in a list
    first = _quarantined(db, "7").quarantine_id
    shown = runner.invoke(main, ["quarantine", "show", str(first)])
    assert "invalid_email" in shown.output
    assert "x@@example.org" in shown.output
    fixed = runner.invoke(main, ["quarantine", "fix", str(first), "email=x@example.org", "--note", "typo"])
    assert fixed.exit_code == 0, fixed.output
    assert "staged" in fixed.output
    second = _quarantined(db, "8").quarantine_id
    refused = runner.invoke(main, ["quarantine", "fix", str(second), "currency"])
    assert refused.exit_code == 2
    assert "field=value" in refused.output
    missing = runner.invoke(main, ["quarantine", "show", "999999"])
    assert missing.exit_code == 1
    assert "no quarantine row 999999" in missing.output
    discarded = runner.invoke(main, ["quarantine", "discard", str(second), "--note", "crypto test"])
    assert discarded.exit_code == 0, discarded.output
    assert runner.invoke(main, ["quarantine", "list"]).output.strip() == "nothing quarantined"
