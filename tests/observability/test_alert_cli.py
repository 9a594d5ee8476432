"""``donor-sync alerts``: list, check (dry run and for real), validate, docs."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.observability.alerting import open_incidents
from tests.observability.test_alert_engine import metric, new_run


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    # Slack is unreachable: a real check records its incidents and leaves the messages owed.
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "password": "http://127.0.0.1:1/x"}),
    )
    return CliRunner()


def _breach(db: psycopg.Connection) -> None:
    run = new_run(db)
    metric(db, run, "push", "salesforce", "pushed", 400)
    metric(db, run, "push", "salesforce", "failed", 100)


def test_check_dry_run_shows_the_plan_and_writes_nothing(cli: CliRunner, db: psycopg.Connection) -> None:
    _breach(db)
    result = cli.invoke(main, ["alerts", "check", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "open            failed_share:salesforce" in result.output
    assert "100 of 400 records pushed failed (25.0%" in result.output
    assert "dry run: nothing written or posted; 0 message(s) owed" in result.output
    assert open_incidents(db) == []


def test_check_records_incidents_and_list_shows_them(cli: CliRunner, db: psycopg.Connection) -> None:
    _breach(db)
    result = cli.invoke(main, ["alerts", "check", "--kind", "failed_share"])
    assert result.exit_code == 0, result.output
    assert "opened 1 (failed_share:salesforce)" in result.output
    assert "0 message(s) sent, 1 still owed (delivery stopped: send_failed)" in result.output
    listed = cli.invoke(main, ["alerts", "list"])
    assert "failed_share:salesforce" in listed.output
    assert "open, unsent" in listed.output
    as_json = json.loads(cli.invoke(main, ["alerts", "list", "--json"]).output)
    assert [i["key"] for i in as_json] == ["failed_share:salesforce"]
    assert as_json[0]["notify_failures"] == 1
    assert cli.invoke(main, ["alerts", "list", "--all"]).exit_code == 0


def test_check_refuses_an_unknown_run_or_kind(cli: CliRunner) -> None:
    result = cli.invoke(main, ["alerts", "check", "--run-id", "00000000-0000-0000-0000-000000000001"])
    assert result.exit_code == 2
    assert "no run 00000000-0000-0000-0000-000000000001" in result.output
    assert cli.invoke(main, ["alerts", "check", "--kind", "nope"]).exit_code == 2


def test_validate_and_docs(cli: CliRunner, tmp_path: Path) -> None:
    ok = cli.invoke(main, ["alerts", "validate"])
    assert ok.exit_code == 0
    assert "alert rules valid: 6 of 6 enabled" in ok.output
    bad = tmp_path / "alerts.yaml"
    bad.write_text("rules:\n  quota_reserve:\n    reserve_share: 2\n")
    result = cli.invoke(main, ["alerts", "validate", "--rules", str(bad)])
    assert result.exit_code == 1
    assert (
        f"{bad}: line 3, rules.quota_reserve.reserve_share: Input should be less than or equal to 1"
        in result.output
    )
    docs = cli.invoke(main, ["alerts", "docs", "--check"])
    assert docs.exit_code == 0, docs.output
