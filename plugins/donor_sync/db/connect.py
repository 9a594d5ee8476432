"""Connections to the staging database and the few server-level operations the project needs."""

from __future__ import annotations

import psycopg
from psycopg import sql

from donor_sync.db.url import database_name, redact, with_database
from donor_sync.errors import DatabaseError

_CONNECT_TIMEOUT_S = 10


def connect(
    url: str, *, autocommit: bool = False, application_name: str = "donor-sync"
) -> psycopg.Connection:
    """Open a psycopg 3 connection, turning failures into a :class:`DatabaseError` with the target named."""
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=_CONNECT_TIMEOUT_S,
            application_name=application_name,
        )
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot connect to {redact(url)}: {first_line}") from exc


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def database_exists(url: str) -> bool:
    """Return whether the database ``url`` names exists on its server."""
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        return _exists(conn, database_name(url))


def ensure_database(url: str, *, template: str | None = None) -> bool:
    """Create the database ``url`` names when it does not exist; return whether it was created.

    :param template: an existing database to copy (tests clone a migrated template).
    """
    name = database_name(url)
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        if _exists(conn, name):
            return False
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        try:
            conn.execute(statement)
        except psycopg.errors.DuplicateDatabase:
            return False  # another process created it between our check and our create
        return True


def drop_database(url: str) -> None:
    """Drop the database ``url`` names, disconnecting its sessions first (Postgres 13+)."""
    name = database_name(url)
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
