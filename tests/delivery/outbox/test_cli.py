"""``donor-sync outbox plan|status`` and ``donor-sync merges list|done``."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync import cli_outbox
from donor_sync.cli import main
from donor_sync.delivery.outbox import queue_destination
from tests.delivery.outbox.support import HandRenderer, add_donor, add_gift, land, merge, table_counts


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    monkeypatch.setattr(cli_outbox, "renderer_factory", lambda destination: HandRenderer())
    return CliRunner()


def test_plan_prints_counts_and_masked_samples_and_writes_nothing(
    db: psycopg.Connection, cli: CliRunner
) -> None:
    jane = add_donor(db, "Jane", "Okafor")
    add_gift(db, jane, "stripe:ch_1")
    db.commit()
    before = table_counts(db)
    result = cli.invoke(main, ["outbox", "plan", "--destination", "hubspot", "--samples", "1"])
    assert result.exit_code == 0, result.output
    assert table_counts(db) == before
    contact_line = next(line for line in result.output.splitlines() if line.strip().startswith("contact"))
    assert contact_line.split()[1:3] == ["1", "0"]  # one create, no update
    assert "within limits" in result.output
    assert "Okafor" not in result.output
    assert "Jane" not in result.output
    assert jane in result.output  # ids are shown
    as_json = cli.invoke(main, ["outbox", "plan", "-d", "hubspot", "--json"])
    plan = json.loads(as_json.output)
    assert plan["entities"]["opportunity"]["creates"] == 1
    assert plan["pii_revealed"] is False


def test_plan_with_pii_shown_is_audited(db: psycopg.Connection, cli: CliRunner) -> None:
    add_donor(db, "Jane", "Okafor")
    db.commit()
    result = cli.invoke(main, ["outbox", "plan", "-d", "hubspot", "--show-pii"])
    assert result.exit_code == 0, result.output
    assert "Okafor" in result.output
    audit = db.execute("SELECT action, object_id FROM sync.audit_log").fetchall()
    assert audit == [("pii.accessed", "hubspot")]


def test_plan_without_a_mapping_engine_says_what_is_missing(
    db: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)

    def missing(destination: str) -> HandRenderer:
        from donor_sync.delivery.outbox import MappingUnavailableError

        raise MappingUnavailableError(f"no mapping engine to render {destination} records with")

    monkeypatch.setattr(cli_outbox, "renderer_factory", missing)
    result = CliRunner().invoke(main, ["outbox", "plan", "-d", "hubspot"])
    assert result.exit_code == 1
    assert "no mapping engine to render hubspot records" in result.output


def test_status_counts_rows_by_destination_entity_and_state(db: psycopg.Connection, cli: CliRunner) -> None:
    assert "the outbox is empty" in cli.invoke(main, ["outbox", "status"]).output
    jane = add_donor(db, "Jane")
    add_gift(db, jane, "stripe:ch_1")
    add_gift(db, jane, "stripe:ch_2")
    db.commit()
    queue_destination(db, "salesforce", HandRenderer())
    db.commit()
    result = cli.invoke(main, ["outbox", "status", "-d", "salesforce"])
    assert result.exit_code == 0, result.output
    lines = [line.split()[:4] for line in result.output.splitlines()[1:]]
    assert lines == [["salesforce", "contact", "pending", "1"], ["salesforce", "opportunity", "pending", "2"]]


def test_merges_list_and_done(db: psycopg.Connection, cli: CliRunner) -> None:
    jane = add_donor(db, "Jane")
    old = add_donor(db, "Jane", "Old")
    land(db, "salesforce", "contact", jane, {"a": 1}, "003KEEP", donor_id=jane)
    land(db, "salesforce", "contact", old, {"a": 2}, "003AWAY", donor_id=old)
    merge(db, jane, old)
    db.commit()
    queue_destination(db, "salesforce", HandRenderer())
    db.commit()
    listed = cli.invoke(main, ["merges", "list", "-d", "salesforce"])
    assert listed.exit_code == 0, listed.output
    assert "keep 003KEEP" in listed.output
    assert "merge away 003AWAY" in listed.output
    merge_id = listed.output.split()[0]
    done = cli.invoke(main, ["merges", "done", merge_id])
    assert done.exit_code == 0, done.output
    assert "marked merged" in done.output
    assert "no merges to show" in cli.invoke(main, ["merges", "list"]).output
    again = cli.invoke(main, ["merges", "done", merge_id])
    assert again.exit_code == 1
    assert "not pending" in again.output
