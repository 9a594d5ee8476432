"""The Airflow task over the CSV drop: its folder from the ``csv_drop`` fs connection, its run metrics."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from donor_sync.local_airflow import connection_json_from_url
from donor_sync.observability import runs
from donor_sync.operators.csv_tasks import drop_settings, extract_csv_task, settings_from_extra
from donor_sync.sources.csv_drop.rows import count_rows, source_rows


def test_settings_from_extra_reads_path_quiet_period_and_archive_without_changing_input() -> None:
    extra = {"path": "/data/drop", "quiet_period_seconds": "15", "archive_path": "/data/archive"}
    settings = settings_from_extra(extra, default_path=Path("/d"), default_quiet=timedelta(seconds=60))
    assert settings.path == Path("/data/drop")
    assert settings.quiet_period == timedelta(seconds=15)
    assert settings.archive_dir == Path("/data/archive")
    assert extra == {"path": "/data/drop", "quiet_period_seconds": "15", "archive_path": "/data/archive"}
    defaults = settings_from_extra({}, default_path=Path("/d"), default_quiet=timedelta(seconds=60))
    assert (defaults.path, defaults.quiet_period, defaults.archive_dir) == (
        Path("/d"),
        timedelta(seconds=60),
        None,
    )
    with pytest.raises(ValueError, match="negative"):
        settings_from_extra({"quiet_period_seconds": -1}, default_path=Path("/d"), default_quiet=timedelta(0))


def test_without_a_connection_the_local_drop_folder_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DONOR_SYNC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("AIRFLOW_CONN_CSV_DROP", raising=False)
    settings = drop_settings()
    assert settings.path == (tmp_path / "state" / "csv_drop").resolve()
    assert settings.path.is_dir()
    assert settings.quiet_period == timedelta(seconds=60)


def test_task_loads_the_connection_folder_and_records_metrics(
    db: psycopg.Connection, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    header = "Order ID,Attendee ID,Order Date,First Name,Last Name,Email Address,Mobile,Street,Street 2,Town,"
    header += "Region,Zip,Country Code,Event Name,Ticket Type,Donation Amount,Currency,Marketing Opt-In,"
    header += "SMS Opt-In,Landing Page,Dedication,Preferences"
    rows = [f"ORD-{i},A{i},2024-05-01 10:00:00" + "," * 19 for i in range(3)]
    (drop / "event_platform_export.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(db_url))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CSV_DROP",
        json.dumps({"conn_type": "fs", "extra": {"path": str(drop), "quiet_period_seconds": 0}}),
    )
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="manual__csv_task", run_type="test")

    assert extract_csv_task.function(str(run_id)) == str(run_id)

    landed = source_rows(db, "event_platform")
    assert [(r.source_id, r.line, r.cells["Attendee ID"]) for r in landed] == [
        (f"ORD-{i}", i + 2, f"A{i}") for i in range(3)
    ]
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    value = db.execute(
        "SELECT value FROM sync.run_metrics"
        " WHERE run_id = %s AND scope = 'event_platform' AND metric = 'read'",
        (run_id,),
    ).fetchone()
    assert value == (3,)
    assert [p.name for p in drop.iterdir()] == ["archive"]


def test_cli_load_prints_each_file_and_exits_1_on_a_rejected_file(
    db: psycopg.Connection, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from donor_sync.cli import main

    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "volunteers.csv").write_text("Name,Shift\nAda,Monday\n", encoding="utf-8")
    (drop / "late.csv.part").write_text("partial", encoding="utf-8")
    result = CliRunner().invoke(main, ["csv", "load", "--drop", str(drop), "--quiet-period", "0"])
    assert result.exit_code == 1, result.output
    assert "rejected   volunteers.csv  [-]  file volunteers.csv" in result.output
    assert "not_ready  late.csv.part" in result.output
    assert "0 loaded, 0 duplicate, 1 rejected, 1 not ready" in result.output
    assert (drop / "rejected" / "volunteers.csv.error.txt").exists()
    assert count_rows(db) == 0
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
