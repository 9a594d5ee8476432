"""Versioned SQL migrations under include/sql/migrations.

Files are named ``NNNN_description.sql`` and applied in version order, each in its own
transaction, by ``donor-sync db upgrade``. Each applied version is recorded with the SHA-256 of
its file; an applied migration whose file changed afterwards stops the upgrade, because the
database would no longer match what the file says. Concurrent upgrades serialise on an advisory
lock, so two processes starting at once apply each migration exactly once.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from donor_sync.db.connect import connect
from donor_sync.errors import MigrationError
from donor_sync.paths import migrations_dir

HISTORY_TABLE = "public.donor_sync_schema_migrations"
_FILE_PATTERN = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
#: Arbitrary constant identifying donor-sync's migration lock among advisory locks.
_ADVISORY_LOCK_KEY = 0x0D0_5E_C0DE


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path
    checksum: str

    @property
    def filename(self) -> str:
        """Return the file's name."""
        return self.path.name

    def read_sql(self) -> str:
        """Return the file's SQL."""
        return self.path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class AppliedMigration:
    """A row of the migration history."""

    version: int
    name: str
    checksum: str
    applied_at: datetime
    duration_ms: int


@dataclass(frozen=True)
class MigrationStatus:
    """Applied and pending migrations of one database."""

    applied: list[AppliedMigration]
    pending: list[Migration]


def _checksum(path: Path) -> str:
    data = path.read_bytes().replace(b"\r\n", b"\n")
    return hashlib.sha256(data).hexdigest()


def discover(directory: Path | None = None) -> list[Migration]:
    """Return the migrations in ``directory`` in version order.

    :raises MigrationError: a ``.sql`` file is misnamed, or two files share a version.
    """
    directory = directory or migrations_dir()
    if not directory.is_dir():
        raise MigrationError(f"migrations folder not found: {directory}")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(
                f"{path}: migration files must be named NNNN_description.sql "
                "(four digits, lower-case words joined by underscores)"
            )
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"{path}: version {version:04d} is also used by {found[version].path.name}")
        found[version] = Migration(version, match["name"], path, _checksum(path))
    return [found[v] for v in sorted(found)]


def _ensure_history(conn: psycopg.Connection) -> None:
    conn.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
            version      integer PRIMARY KEY,
            name         text        NOT NULL,
            checksum     text        NOT NULL,
            applied_at   timestamptz NOT NULL DEFAULT now(),
            duration_ms  integer     NOT NULL
        )
        """
    )


def _applied(conn: psycopg.Connection) -> list[AppliedMigration]:
    rows = conn.execute(
        f"SELECT version, name, checksum, applied_at, duration_ms FROM {HISTORY_TABLE} ORDER BY version"
    ).fetchall()
    return [AppliedMigration(*row) for row in rows]


def _verify(applied: list[AppliedMigration], on_disk: list[Migration]) -> list[Migration]:
    """Check applied history against the files; return the pending migrations."""
    by_version = {m.version: m for m in on_disk}
    for row in applied:
        migration = by_version.get(row.version)
        if migration is None:
            raise MigrationError(
                f"migration {row.version:04d}_{row.name}.sql is applied to the database but missing "
                "from include/sql/migrations: the database is newer than this code"
            )
        if migration.checksum != row.checksum:
            raise MigrationError(
                f"{migration.path}: this migration was edited after it was applied "
                f"(recorded sha256 {row.checksum[:12]}…, file now {migration.checksum[:12]}…). "
                "Applied migrations are immutable: revert the edit and add a new migration instead."
            )
    done = {row.version for row in applied}
    return [m for m in on_disk if m.version not in done]


def status(url: str, directory: Path | None = None) -> MigrationStatus:
    """Return applied and pending migrations without changing anything (beyond the history table)."""
    on_disk = discover(directory)
    with connect(url, autocommit=True) as conn:
        _ensure_history(conn)
        applied = _applied(conn)
    return MigrationStatus(applied, _verify(applied, on_disk))


def upgrade(
    url: str,
    directory: Path | None = None,
    *,
    on_apply: Callable[[Migration], None] | None = None,
) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied.

    :param on_apply: called before each migration runs (progress display).
    :raises MigrationError: an applied migration was edited or is missing, or a migration failed
        (that migration is rolled back; earlier ones stay applied).
    """
    on_disk = discover(directory)
    applied_now: list[Migration] = []
    # Autocommit: the advisory lock is taken and released at once, and each `transaction()`
    # block below is a real BEGIN ... COMMIT of its own, not a savepoint of an outer transaction.
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            _ensure_history(conn)
            pending = _verify(_applied(conn), on_disk)
            for migration in pending:
                if on_apply:
                    on_apply(migration)
                started = time.perf_counter()
                try:
                    with conn.transaction():
                        conn.execute(migration.read_sql())
                        conn.execute(
                            f"INSERT INTO {HISTORY_TABLE} (version, name, checksum, duration_ms) "
                            "VALUES (%s, %s, %s, %s)",
                            (
                                migration.version,
                                migration.name,
                                migration.checksum,
                                int((time.perf_counter() - started) * 1000),
                            ),
                        )
                except psycopg.Error as exc:
                    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise MigrationError(f"{migration.path}: failed and was rolled back: {detail}") from exc
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return applied_now
