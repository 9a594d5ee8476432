"""Which staging database to use: one code path for a configured server and the embedded one."""

from __future__ import annotations

import os
from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from donor_sync.db.embedded import EmbeddedPostgres

#: The staging database created on the embedded server.
DEFAULT_DATABASE = "donor_sync"


@dataclass(frozen=True)
class DatabaseTarget:
    """A resolved staging database.

    :param url: libpq URL of the staging database.
    :param embedded: whether it lives on the embedded server (which we may start and stop).
    """

    url: str
    embedded: bool

    def with_database(self, database: str) -> str:
        """Return the URL of another database on the same server."""
        return with_database(self.url, database)


def with_database(url: str, database: str) -> str:
    """Return ``url`` pointing at ``database`` on the same server, same credentials."""
    params = conninfo_to_dict(url)
    params["dbname"] = database
    return make_conninfo("", **params)


def database_name(url: str) -> str:
    """Return the database name in ``url``."""
    return str(conninfo_to_dict(url).get("dbname") or "postgres")


def redact(url: str) -> str:
    """Return ``url`` without its password, for messages and logs."""
    params = conninfo_to_dict(url)
    if "password" in params:
        params["password"] = "***"  # noqa: S105 - a mask, not a secret
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    return f"postgresql://{params.get('user', '')}@{host}:{port}/{params.get('dbname', '')}"


def resolve_target(env_var: str = "DONOR_SYNC_DB_URL", *, start: bool = True) -> DatabaseTarget:
    """Return the staging database: ``$DONOR_SYNC_DB_URL`` when set, else the embedded server.

    :param env_var: the variable naming a server (tests pass ``DONOR_SYNC_TEST_DB_URL``).
    :param start: start the embedded server when it is the one chosen and is not running.
    """
    configured = os.environ.get(env_var, "").strip()
    if configured:
        return DatabaseTarget(url=configured, embedded=False)
    server = EmbeddedPostgres()
    admin_url = server.ensure_running() if start else server.url()
    return DatabaseTarget(url=with_database(admin_url, DEFAULT_DATABASE), embedded=True)
