"""The migration runner against a real Postgres: order, idempotence, checksums, rollback, locking."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from donor_sync.db import connect
from donor_sync.db.migrations import HISTORY_TABLE, discover, status, upgrade
from donor_sync.errors import MigrationError


def _write(directory: Path, name: str, sql: str) -> Path:
    path = directory / name
    path.write_text(sql.replace("; ", ";\n") + "\n")
    return path


def _tables(url: str, schema: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def mig_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    _write(directory, "0001_first.sql", "CREATE SCHEMA t; CREATE TABLE t.a (id int PRIMARY KEY);")
    _write(directory, "0002_second.sql", "CREATE TABLE t.b (id int PRIMARY KEY, note text DEFAULT '100%');")
    return directory


def test_discover_orders_by_version_and_ignores_other_files(mig_dir: Path) -> None:
    _write(mig_dir, "0010_tenth.sql", "SELECT 1;")
    _write(mig_dir, "README.md", "not a migration")
    assert [m.version for m in discover(mig_dir)] == [1, 2, 10]


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        pytest.param("1_short.sql", "must be named NNNN_description.sql", id="short-version"),
        pytest.param("0003_Upper.sql", "must be named NNNN_description.sql", id="upper-case"),
        pytest.param(
            "0002_again.sql",
            r"0002_second\.sql: version 0002 is also used by 0002_again\.sql",
            id="duplicate",
        ),
    ],
)
def test_discover_rejects_bad_names(mig_dir: Path, filename: str, message: str) -> None:
    _write(mig_dir, filename, "SELECT 1;")
    with pytest.raises(MigrationError, match=message):
        discover(mig_dir)


def test_upgrade_applies_in_order_then_is_idempotent(empty_db_url: str, mig_dir: Path) -> None:
    applied = upgrade(empty_db_url, mig_dir)
    assert [m.name for m in applied] == ["first", "second"]
    assert _tables(empty_db_url, "t") == {"a", "b"}
    assert upgrade(empty_db_url, mig_dir) == []
    with connect(empty_db_url) as conn:
        rows = conn.execute(f"SELECT version, checksum FROM {HISTORY_TABLE} ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [1, 2]
    assert [r[1] for r in rows] == [m.checksum for m in discover(mig_dir)]


def test_new_migration_is_applied_on_next_upgrade(empty_db_url: str, mig_dir: Path) -> None:
    upgrade(empty_db_url, mig_dir)
    _write(mig_dir, "0003_third.sql", "CREATE TABLE t.c (id int);")
    assert [m.version for m in status(empty_db_url, mig_dir).pending] == [3]
    assert [m.version for m in upgrade(empty_db_url, mig_dir)] == [3]
    assert status(empty_db_url, mig_dir).pending == []


def test_edited_applied_migration_refuses_to_run(empty_db_url: str, mig_dir: Path) -> None:
    upgrade(empty_db_url, mig_dir)
    _write(mig_dir, "0001_first.sql", "CREATE SCHEMA t; CREATE TABLE t.a (id bigint PRIMARY KEY);")
    _write(mig_dir, "0003_third.sql", "CREATE TABLE t.c (id int);")
    with pytest.raises(
        MigrationError, match=r"0001_first\.sql: this migration was edited after it was applied"
    ):
        upgrade(empty_db_url, mig_dir)
    assert "c" not in _tables(empty_db_url, "t"), "nothing may run after a checksum mismatch"


def test_line_ending_change_alone_is_not_an_edit(empty_db_url: str, mig_dir: Path) -> None:
    upgrade(empty_db_url, mig_dir)
    path = mig_dir / "0002_second.sql"
    assert b"\n" in path.read_bytes()
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert upgrade(empty_db_url, mig_dir) == []


def test_applied_migration_missing_on_disk_is_reported(empty_db_url: str, mig_dir: Path) -> None:
    upgrade(empty_db_url, mig_dir)
    (mig_dir / "0002_second.sql").unlink()
    with pytest.raises(MigrationError, match=r"0002_second\.sql is applied to the database but missing"):
        upgrade(empty_db_url, mig_dir)


def test_failing_migration_rolls_back_alone(empty_db_url: str, mig_dir: Path) -> None:
    _write(mig_dir, "0003_broken.sql", "CREATE TABLE t.c (id int); SELECT * FROM t.does_not_exist;")
    with pytest.raises(MigrationError, match=r"0003_broken\.sql: failed and was rolled back") as exc:
        upgrade(empty_db_url, mig_dir)
    assert "does_not_exist" in str(exc.value)
    assert _tables(empty_db_url, "t") == {"a", "b"}, "0003's CREATE TABLE must be rolled back"
    assert [m.version for m in status(empty_db_url, mig_dir).pending] == [3]


def test_concurrent_upgrades_apply_each_migration_once(empty_db_url: str, mig_dir: Path) -> None:
    _write(mig_dir, "0003_slow.sql", "SELECT pg_sleep(0.3); CREATE TABLE t.c (id int);")
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append([m.version for m in upgrade(empty_db_url, mig_dir)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v for r in results for v in r) == [1, 2, 3]


def test_project_migrations_create_the_stage_schemas(db_url: str) -> None:
    with connect(db_url) as conn:
        schemas = {
            r[0] for r in conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
        }
    assert {"raw", "staging", "core", "sync"} <= schemas
    assert {"runs", "run_metrics", "outbox", "dead_letters", "watermarks"} <= _tables(db_url, "sync")
    assert {"donors", "gifts", "consent_events", "erasure_tombstones"} <= _tables(db_url, "core")


def test_project_migrations_are_applied_once(db_url: str) -> None:
    assert upgrade(db_url) == []
