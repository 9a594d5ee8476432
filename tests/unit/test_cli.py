"""The donor-sync command line: help everywhere, clear errors, exit codes, quiet when piped."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.db import connect
from tests.conftest import REPO_ROOT


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "donor_sync", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins"), **(env or {})},
        cwd=REPO_ROOT,
        check=False,
    )


@pytest.mark.parametrize("path", _all_commands(main), ids=lambda p: " ".join(p) or "donor-sync")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert len(result.output.splitlines()) > 2


def test_expected_commands_exist() -> None:
    commands = {" ".join(p) for p in _all_commands(main)}
    assert {
        "db upgrade",
        "db status",
        "db stop",
        "db url",
        "demo",
        "bench",
        "airflow up",
        "airflow settings",
    } <= commands


def test_db_upgrade_applies_migrations_to_the_configured_database(empty_db_url: str) -> None:
    result = _cli("db", "upgrade", env={"DONOR_SYNC_DB_URL": empty_db_url})
    assert result.returncode == 0, result.stderr
    assert "migration(s) applied" in result.stdout
    assert result.stderr == "", "progress is for terminals only; piped output stays quiet"
    with connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM sync.runs").fetchone() == (0,)
    again = _cli("db", "upgrade", env={"DONOR_SYNC_DB_URL": empty_db_url})
    assert again.returncode == 0
    assert again.stdout.startswith("0 migration(s) applied")


def test_unreachable_database_is_one_clear_line_without_the_password() -> None:
    result = _cli("db", "upgrade", env={"DONOR_SYNC_DB_URL": "postgresql://etl:hunter2@127.0.0.1:1/stage"})
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot connect to postgresql://etl@127.0.0.1:1/stage")
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_usage_errors_exit_2() -> None:
    assert _cli("no-such-command").returncode == 2
    assert _cli("db", "upgrade", "--bogus").returncode == 2


def test_unknown_benchmark_is_an_error_listing_the_known_ones() -> None:
    result = _cli("bench", "no_such_bench")
    assert result.returncode == 1
    assert "unknown benchmark(s) no_such_bench; available: " in result.stderr
    assert "dag_parse" in result.stderr.split("available: ", 1)[1]


def test_library_core_does_not_import_airflow() -> None:
    """Business logic runs from tests, the CLI and benchmarks without Airflow (and its logging setup)."""
    modules = [
        "donor_sync.cli",
        "donor_sync.demo",
        "donor_sync.db",
        "donor_sync.db.migrations",
        "donor_sync.db.embedded",
        "donor_sync.observability.runs",
        "donor_sync.local_airflow",
        "donor_sync.retry_ladder",
        "donor_sync.bench_runner",
    ]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('airflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
        check=True,
    )
    assert result.stdout.strip() == "False"


def test_progress_is_shown_on_a_terminal(empty_db_url: str) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "donor_sync", "db", "upgrade"],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins"), "DONOR_SYNC_DB_URL": empty_db_url},
            cwd=REPO_ROOT,
            check=False,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode()
    assert result.returncode == 0
    assert "applying 0001_schemas.sql" in shown
    assert "migrations (" in shown
