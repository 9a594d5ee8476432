"""The staging database as an Airflow connection (``donor_sync_db``)."""

from __future__ import annotations

from typing import Any

from airflow.providers.postgres.hooks.postgres import PostgresHook
from psycopg.conninfo import make_conninfo

#: libpq parameters an extra may carry through to the driver.
_PASSED_EXTRAS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options", "target_session_attrs"}
)


def conninfo_from_connection(
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    schema: str | None,
    extra: dict[str, Any] | None,
) -> str:
    """Return a libpq conninfo string for an Airflow Postgres connection's fields.

    Extras other than libpq parameters (e.g. Airflow's ``cursor`` or IAM options) are dropped.
    The input is not modified.
    """
    params: dict[str, Any] = {
        "host": host or "127.0.0.1",
        "port": port or 5432,
        "user": login or "postgres",
        "dbname": schema or "postgres",
    }
    if password:
        params["password"] = password
    params.update({k: v for k, v in (extra or {}).items() if k in _PASSED_EXTRAS})
    return make_conninfo("", **params)


def conninfo_of(conn: Any) -> str:
    """Return the libpq conninfo of an Airflow connection object (sync or async lookup)."""
    return conninfo_from_connection(
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        extra=conn.extra_dejson,
    )


class StagingDbHook(PostgresHook):
    """Postgres hook whose default connection is the staging database.

    Library code takes a libpq conninfo and opens psycopg 3 connections itself, so tasks call
    :meth:`conninfo` and pass it on.
    """

    default_conn_name = "donor_sync_db"
    hook_name = "donor-sync staging database"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("postgres_conn_id", self.default_conn_name)
        super().__init__(*args, **kwargs)

    def conninfo(self) -> str:
        """Return the staging database's libpq conninfo from the Airflow connection."""
        return conninfo_of(self.get_connection(self.get_conn_id()))
