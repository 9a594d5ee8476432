"""``donor-sync review``: list, show, approve, reject, defer and unmerge from the command line."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from tests.resolve.test_donors_support import JANE
from tests.resolve.test_review import MARCUS, review_pair


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    return CliRunner()


def test_list_show_and_decide_from_the_command_line(db: psycopg.Connection, cli: CliRunner) -> None:
    _, _, jane_review = review_pair(db, JANE, "j")
    _, _, marcus_review = review_pair(db, MARCUS, "m")
    db.commit()
    listed = cli.invoke(main, ["review", "list"])
    assert listed.exit_code == 0, listed.output
    assert str(jane_review) in listed.output
    assert "2 of 2 review(s) shown" in listed.output
    assert "Okafor" not in listed.output  # the listing carries no names
    shown = cli.invoke(main, ["review", "show", str(jane_review)])
    assert shown.exit_code == 0, shown.output
    assert "Okafor" in shown.output  # both records, for the reviewer
    assert "j@other.example.com" in shown.output
    assert "email" in shown.output
    assert "score" in shown.output
    viewed = db.execute(
        "SELECT object_id, details FROM sync.audit_log"
        " WHERE action = 'pii.accessed' AND object_type = 'review'"
    ).fetchall()
    assert [(v[0], v[1]["via"]) for v in viewed] == [(str(jane_review), "cli")], "the view is audited"
    assert "Okafor" not in str(viewed)
    deferred = cli.invoke(main, ["review", "defer", str(marcus_review)])
    assert "deferred" in deferred.output
    rejected = cli.invoke(main, ["review", "reject", str(marcus_review), "--note", "father and son"])
    assert rejected.exit_code == 0, rejected.output
    approved = cli.invoke(main, ["review", "approve", str(jane_review)])
    assert approved.exit_code == 0, approved.output
    assert "approved" in approved.output
    merged = db.execute("SELECT count(*) FROM core.donors WHERE merged_into IS NOT NULL").fetchone()
    assert merged == (1,)
    again = cli.invoke(main, ["review", "approve", str(jane_review)])
    assert again.exit_code == 1
    assert "cannot be decided again" in again.output
    decision = db.execute(
        "SELECT decision_id::text FROM core.merge_decisions WHERE review_id = %s", (jane_review,)
    )
    row = decision.fetchone()
    assert row is not None
    undone = cli.invoke(main, ["review", "unmerge", row[0]])
    assert undone.exit_code == 0, undone.output
    assert "undone" in undone.output
    db.rollback()
    assert db.execute("SELECT count(*) FROM core.donors WHERE merged_into IS NOT NULL").fetchone() == (0,)
    actors = db.execute(
        "SELECT DISTINCT actor FROM sync.audit_log WHERE action <> 'donors.resolved'"
    ).fetchall()
    assert all(actor.startswith("cli:") for (actor,) in actors)
