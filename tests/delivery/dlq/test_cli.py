"""``donor-sync dlq``: outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.delivery.contracts import FailureClass
from donor_sync.delivery.dlq import get_dead_letter
from tests.delivery.dlq.test_store import dead_letter
from tests.delivery.push.support import DEST, outbox, scalar


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    return CliRunner()


def test_list_and_show(db: psycopg.Connection, cli: CliRunner) -> None:
    a = dead_letter(db, "a", payload={"Email": "jane@example.org"})
    dead_letter(db, "b", FailureClass.DUPLICATE_RULE)
    listed = cli.invoke(main, ["dlq", "list"])
    assert listed.exit_code == 0, listed.output
    assert "2 of 2 dead letter(s) shown" in listed.output
    assert f"{DEST}/contact a" in listed.output
    assert "validation/INVALID_FIELD" in listed.output
    assert "jane@example.org" not in listed.output  # no payloads in a listing
    only = cli.invoke(main, ["dlq", "list", "--class", "duplicate_rule"])
    assert "1 of 1" in only.output
    assert "duplicate_rule" in only.output
    none = cli.invoke(main, ["dlq", "list", "--status", "discarded"])
    assert none.exit_code == 0
    assert "no dead letters" in none.output
    bad = cli.invoke(main, ["dlq", "list", "--class", "flaky"])
    assert bad.exit_code == 2
    shown = cli.invoke(main, ["dlq", "show", str(a)])
    assert shown.exit_code == 0, shown.output
    assert "jane@example.org" in shown.output  # the operator sees the payload
    assert FailureClass.VALIDATION.remediation[:40] in shown.output
    as_json = cli.invoke(main, ["dlq", "show", str(a), "--json"])
    assert json.loads(as_json.output)["payload"] == {"Email": "jane@example.org"}
    missing = cli.invoke(main, ["dlq", "show", "999"])
    assert missing.exit_code == 1
    assert "no dead letter 999" in missing.output


def test_replay_by_id_and_by_destination(db: psycopg.Connection, cli: CliRunner) -> None:
    a = dead_letter(db, "a")
    b = dead_letter(db, "b", FailureClass.DUPLICATE_RULE)
    first = cli.invoke(main, ["dlq", "replay", str(a), "--note", "fixed the picklist"])
    assert first.exit_code == 0, first.output
    assert f"dead letter {a} replayed" in first.output
    again = cli.invoke(main, ["dlq", "replay", str(a)])
    assert again.exit_code == 0
    assert "already replayed" in again.output
    by_dest = cli.invoke(main, ["dlq", "replay", "--destination", DEST, "--class", "duplicate_rule"])
    assert by_dest.exit_code == 0, by_dest.output
    assert "1 dead letter(s) selected: 1 replayed" in by_dest.output
    assert get_dead_letter(db, b).status == "replayed"
    assert scalar(db, "SELECT count(*) FROM sync.outbox WHERE state = 'pending'") == 2
    actors = db.execute("SELECT DISTINCT actor FROM sync.audit_log WHERE action LIKE 'dlq.%%'").fetchall()
    assert len(actors) == 1
    assert actors[0][0].startswith("cli:")
    assert cli.invoke(main, ["dlq", "replay"]).exit_code == 2
    assert cli.invoke(main, ["dlq", "replay", str(a), "--destination", DEST]).exit_code == 2


def test_a_refused_replay_exits_1(db: psycopg.Connection, cli: CliRunner) -> None:
    blocked = dead_letter(db, "k", FailureClass.CONSENT_BLOCKED)
    result = cli.invoke(main, ["dlq", "replay", str(blocked), "424242"])
    assert result.exit_code == 1
    assert "refused" in result.output
    assert "consent" in result.output
    assert "no dead letter 424242" in result.output


def test_edit_with_set_and_with_file_then_replay(
    db: psycopg.Connection, cli: CliRunner, tmp_path: Path
) -> None:
    letter_id = dead_letter(db, "k", payload={"Amount": "abc", "properties": {"email": "x"}})
    edited = cli.invoke(
        main, ["dlq", "edit", str(letter_id), "--set", "Amount=50", "--set", "properties.email=j@x.org"]
    )
    assert edited.exit_code == 0, edited.output
    assert get_dead_letter(db, letter_id).edited_payload == {"Amount": 50, "properties": {"email": "j@x.org"}}
    file = tmp_path / "payload.json"
    file.write_text(json.dumps({"Amount": 51, "properties": {"email": "j@x.org"}}))
    replaced = cli.invoke(main, ["dlq", "edit", str(letter_id), "--file", str(file), "--replay"])
    assert replaced.exit_code == 0, replaced.output
    assert "replayed with its edited payload" in replaced.output
    letter = get_dead_letter(db, letter_id)
    assert letter.status == "edited"
    assert outbox(db, letter.replay_outbox_id or 0)["payload"] == {
        "Amount": 51,
        "properties": {"email": "j@x.org"},
    }
    closed = cli.invoke(main, ["dlq", "edit", str(letter_id), "--set", "Amount=52"])
    assert closed.exit_code == 1
    assert "only open letters can be edited" in closed.output


def test_edit_usage_errors(db: psycopg.Connection, cli: CliRunner, tmp_path: Path) -> None:
    letter_id = dead_letter(db, "k")
    assert cli.invoke(main, ["dlq", "edit", str(letter_id)]).exit_code == 2
    assert cli.invoke(main, ["dlq", "edit", str(letter_id), "--set", "novalue"]).exit_code == 2
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    not_object = cli.invoke(main, ["dlq", "edit", str(letter_id), "--file", str(array)])
    assert not_object.exit_code == 1
    assert "must be a JSON object" in not_object.output
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert cli.invoke(main, ["dlq", "edit", str(letter_id), "--file", str(broken)]).exit_code == 1


def test_discard_requires_a_note(db: psycopg.Connection, cli: CliRunner) -> None:
    a, b = dead_letter(db, "a"), dead_letter(db, "b")
    assert cli.invoke(main, ["dlq", "discard", str(a)]).exit_code == 2
    done = cli.invoke(main, ["dlq", "discard", str(a), str(b), "--note", "test records"])
    assert done.exit_code == 0, done.output
    assert "2 dead letter(s) selected: 2 discarded" in done.output
    assert scalar(db, "SELECT count(*) FROM sync.audit_log WHERE action = 'dlq.discarded'") == 2


def test_webhooks_chooses_every_event_subscriber(db: psycopg.Connection, cli: CliRunner) -> None:
    a = dead_letter(db, "evt-1", destination="webhook_a")
    b = dead_letter(db, "evt-2", destination="webhook_b")
    dead_letter(db, "crm", destination=DEST)
    listed = cli.invoke(main, ["dlq", "list", "--destination", "webhooks"])
    assert listed.exit_code == 0, listed.output
    assert "2 of 2 dead letter(s) shown" in listed.output
    assert "webhook_a/contact evt-1" in listed.output
    assert "webhook_b/contact evt-2" in listed.output
    replayed = cli.invoke(main, ["dlq", "replay", "--destination", "webhooks", "--note", "receiver fixed"])
    assert replayed.exit_code == 0, replayed.output
    assert {get_dead_letter(db, i).status for i in (a, b)} == {"replayed"}
    assert "1 of 1" in cli.invoke(main, ["dlq", "list"]).output
    unknown = cli.invoke(main, ["dlq", "list", "--destination", "webhook"])
    assert unknown.exit_code == 2
