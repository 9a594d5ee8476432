"""Airflow connections as the smoke test finds them, outside any task.

The lookup is Airflow's own (``BaseHook.get_connection``), so ``donor-sync smoke`` run in a
scheduler or worker container sees exactly what tasks see: ``AIRFLOW_CONN_*`` variables, then
the configured secrets backend, then the metadata database. ``--settings-file`` adds the
connections of an ``airflow_settings.yaml`` (the local sandbox's) as ``AIRFLOW_CONN_*`` variables
of this process only, the way ``airflow connections import`` would read them.

This is the only module of :mod:`donor_sync.smoke` that touches Airflow, and only when called.
Every connection looked up hands its secrets to the :class:`~donor_sync.smoke.redact.Redactor`, so
no reason can print them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from donor_sync.smoke.redact import Redactor, secret_values

__all__ = [
    "AirflowConnections",
    "ConnectionInfo",
    "ConnectionLookup",
    "airflow_api_base_url",
    "settings_file_environment",
]


@dataclass(frozen=True)
class ConnectionInfo:
    """The fields of one Airflow connection (secrets kept out of ``repr``)."""

    conn_id: str
    conn_type: str | None
    host: str | None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)


#: Returns the connection called ``conn_id``, or None when it is not defined anywhere.
ConnectionLookup = Callable[[str], ConnectionInfo | None]


class AirflowConnections:
    """Look connections up through Airflow (once each) and teach ``redactor`` their secrets."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._found: dict[str, ConnectionInfo | None] = {}
        self._lock = threading.Lock()

    def __call__(self, conn_id: str) -> ConnectionInfo | None:
        """Return ``conn_id``'s connection, or None when no backend defines it.

        :raises Exception: a secrets backend or the metadata database failed (not "not found").
        """
        with self._lock:
            if conn_id not in self._found:
                self._found[conn_id] = self._lookup(conn_id)
            return self._found[conn_id]

    def _lookup(self, conn_id: str) -> ConnectionInfo | None:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return None
        extra = dict(conn.extra_dejson or {})
        self.redactor.add(secret_values(conn.password, extra))
        return ConnectionInfo(conn_id, conn.conn_type, conn.host, conn.login, conn.password, extra)


def settings_file_environment(path: Path, *, state_dir: Path | None = None) -> dict[str, str]:
    """Return ``AIRFLOW_CONN_<ID>`` variables for the connections of an ``airflow_settings.yaml``.

    Extras naming the local state folder (``.local/...``) become absolute paths, as
    ``donor-sync airflow settings`` imports them.

    :raises ConfigError: the file is unreadable or invalid (naming the file and field).
    """
    from donor_sync.local_airflow import load_settings, resolve_local_paths
    from donor_sync.paths import local_state_dir

    state = state_dir or local_state_dir()
    env: dict[str, str] = {}
    for c in load_settings(path).airflow.connections:
        fields: dict[str, Any] = {
            "conn_type": c.conn_type,
            "host": c.conn_host,
            "schema": c.conn_schema,
            "login": c.conn_login,
            "password": c.conn_password,
            "port": c.conn_port,
            "extra": resolve_local_paths(c.conn_extra, state) if c.conn_extra is not None else None,
        }
        env[f"AIRFLOW_CONN_{c.conn_id.upper()}"] = json.dumps(
            {k: v for k, v in fields.items() if v is not None}
        )
    return env


def airflow_api_base_url() -> str | None:
    """Return Airflow's ``[api] base_url`` (where the API server, and so the receiver, is reached)."""
    from airflow.configuration import conf

    value = conf.get("api", "base_url", fallback=None)
    return str(value) if value else None
