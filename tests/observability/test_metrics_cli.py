"""``donor-sync health show`` and ``health scorecard`` against a real database."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.delivery.contracts import QuotaState
from donor_sync.observability.metrics import collect_run_health
from tests.observability.test_metrics_support import DEST, add_donor, add_gift, finish_run, push, start_run


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    return CliRunner()


def test_show_prints_a_collected_run_and_its_json(db: psycopg.Connection, cli: CliRunner) -> None:
    donor = add_donor(db, email="jane.okafor@example.org", first_name="Jane", last_name="Okafor")
    add_gift(db, donor, "g:1", age="3 hours")
    run = start_run(db, "cli-1")
    push(db, run, ["g:1"], quota=QuotaState(remaining=40, limit=50, window="daily"))
    finish_run(db, run)
    snapshot = collect_run_health(db, run)

    shown = cli.invoke(main, ["health", "show", "--run", str(run)])
    assert shown.exit_code == 0, shown.output
    assert f"run {run} (cli-1) of donations_hourly: success" in shown.output
    assert "latency" in shown.output
    assert "quota 39 of 50 left (78.0%)" in shown.output
    assert "okafor" not in shown.output.lower()

    as_json = cli.invoke(main, ["health", "show", "--dag", "donations_hourly", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["run_id"] == str(run)
    assert data["latency"][DEST]["gifts_landed"] == 1
    assert data["api"][DEST] == {
        "calls": 1,
        "quota_limit": 50,
        "quota_remaining": 39,
        "quota_remaining_ratio": 0.78,
    }
    assert data["breakers"] == {DEST: "closed"}
    assert data == json.loads(json.dumps(snapshot.to_dict()))


def test_show_collects_on_request_and_says_when_nothing_is_recorded(
    db: psycopg.Connection, cli: CliRunner
) -> None:
    run = start_run(db, "cli-2")
    plain = cli.invoke(main, ["health", "show"])
    assert plain.exit_code == 0, plain.output
    assert "not collected yet" in plain.output
    collected = cli.invoke(main, ["health", "show", "--collect"])
    assert collected.exit_code == 0, collected.output
    assert "not collected yet" not in collected.output
    recorded = db.execute(
        "SELECT count(*) FROM sync.run_metrics WHERE run_id = %s AND task_id = 'cli:health'", (run,)
    ).fetchone()
    assert recorded is not None
    assert recorded[0] > 0


def test_show_refuses_what_it_cannot_find(db: psycopg.Connection, cli: CliRunner) -> None:
    nothing = cli.invoke(main, ["health", "show"])
    assert nothing.exit_code == 1
    assert "no run in sync.runs yet" in nothing.output
    unknown = cli.invoke(main, ["health", "show", "--run", "00000000-0000-4000-8000-000000000000"])
    assert unknown.exit_code == 1
    assert "no run 00000000-0000-4000-8000-000000000000" in unknown.output
    bad = cli.invoke(main, ["health", "show", "--run", "yesterday"])
    assert bad.exit_code == 2
    both = cli.invoke(main, ["health", "show", "--run", "x", "--dag", "y"])
    assert both.exit_code == 2
    assert cli.invoke(main, ["health", "show", "--dag", "donors_nightly"]).exit_code == 1


def test_scorecard_lists_recorded_scorecards(db: psycopg.Connection, cli: CliRunner) -> None:
    from donor_sync.observability.metrics.record import OWNED_QUALITY, Figure, write_figures

    empty = cli.invoke(main, ["health", "scorecard"])
    assert empty.exit_code == 0
    assert "no scorecard recorded yet" in empty.output
    run = start_run(db, "cli-3")
    write_figures(db, run, [Figure("quality", "", "score", 0.875, "ratio")], owned=OWNED_QUALITY)
    listed = cli.invoke(main, ["health", "scorecard"])
    assert listed.exit_code == 0, listed.output
    assert str(run) in listed.output
    assert "87.5%" in listed.output
    rows = json.loads(cli.invoke(main, ["health", "scorecard", "--json", "--dag", "donations_hourly"]).output)
    assert [(r["run_id"], r["score"], r["validity"]) for r in rows] == [(str(run), 0.875, None)]
