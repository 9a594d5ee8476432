"""The ``privacy_keys`` Airflow connection as a key source (its extra holds the key rings document).

A secrets backend serves the connection in production. :func:`install` puts it first in every
:func:`~donor_sync.privacy.keys.default_key_source` chain of the process, so tasks, the API
server's plugins and the library code they call (field encryption, tombstone checks, signed links)
all use it without passing it around. :func:`install_for_cli` does the same for the
``donor-sync`` command line, which Airflow did not start: it looks the connection up as
``airflow connections get`` does (secrets backend, ``$AIRFLOW_CONN_PRIVACY_KEYS``, metadata
database), so a shell on a worker or scheduler pod hashes, seals and opens with the deployment's
keys, as the tasks do. Lookups are lazy and cached for ``ttl_s`` seconds, so a rotation is seen
within that time and importing this module (or installing a source) does no I/O and imports no
Airflow.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from donor_sync.privacy.keys import KeyRing, StaticKeys, install_source, key_source_from_document

KEYS_CONNECTION = "privacy_keys"
LOOKUP_TTL_S = 30.0

#: Environment variables that give a process Airflow's secrets backend or metadata database.
_AIRFLOW_SETTINGS_PREFIXES = ("AIRFLOW__SECRETS__BACKEND", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")


class AirflowConnectionKeys:
    """Key rings from the ``privacy_keys`` connection's extra; no rings when there is no such connection.

    Looked up with the Task SDK (``BaseHook.get_connection``): in a task, through the supervisor;
    in the API server, through its secrets backends and metadata database.
    """

    def __init__(self, conn_id: str = KEYS_CONNECTION, ttl_s: float = LOOKUP_TTL_S) -> None:
        self.conn_id = conn_id
        self.ttl_s = ttl_s
        self._cached: tuple[float, StaticKeys | None] | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """Name this source in errors."""
        return (
            f"the {self.conn_id} Airflow connection (secrets backend, "
            f"$AIRFLOW_CONN_{self.conn_id.upper()} or metadata database)"
        )

    def _extra(self) -> str | None:
        """Return the connection's extra (``None``: no such connection)."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return BaseHook.get_connection(self.conn_id).extra
        except AirflowNotFoundException:
            return None

    def _source(self) -> StaticKeys | None:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl_s:
                return self._cached[1]
        extra = self._extra()
        found = key_source_from_document(extra, where=f"connection {self.conn_id} extra") if extra else None
        with self._lock:
            self._cached = (time.monotonic(), found)
        return found

    def forget(self) -> None:
        """Drop the cached lookup: the next ring is looked up again."""
        with self._lock:
            self._cached = None

    def ring(self, purpose: str) -> KeyRing | None:
        """Return the connection's ring of ``purpose`` (``None`` when it has none)."""
        source = self._source()
        return None if source is None else source.ring(purpose)


def airflow_configured(conn_id: str = KEYS_CONNECTION, environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process has an Airflow configuration to look ``conn_id`` up in.

    Yes when ``$AIRFLOW_CONN_<CONN_ID>`` is set, a secrets backend or metadata database is set in
    the environment (``AIRFLOW__SECRETS__BACKEND``, ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` and
    their ``_CMD`` / ``_SECRET`` forms), or an ``airflow.cfg`` exists (``$AIRFLOW_CONFIG``, else
    ``$AIRFLOW_HOME/airflow.cfg``, ``~/airflow`` by default). Otherwise Airflow is not asked: it
    would make a home and a SQLite database of its own to find nothing in.
    """
    env = os.environ if environ is None else environ
    if env.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return True
    if any(name.startswith(_AIRFLOW_SETTINGS_PREFIXES) and value for name, value in env.items()):
        return True
    config = env.get("AIRFLOW_CONFIG") or str(
        Path(env.get("AIRFLOW_HOME") or Path("~/airflow")).expanduser() / "airflow.cfg"
    )
    return Path(config).expanduser().is_file()


class CliConnectionKeys(AirflowConnectionKeys):
    """The ``privacy_keys`` connection for a process Airflow did not start (the ``donor-sync`` CLI).

    Found the way ``airflow connections get`` finds it: the configured secrets backend, then
    ``$AIRFLOW_CONN_PRIVACY_KEYS``, then the metadata database -- the places the tasks' lookup
    reads, in the same order. Not looked up when the shell has no Airflow configuration
    (:func:`airflow_configured`).
    """

    @property
    def where(self) -> str:
        """Name this source in errors, saying when it was not looked up."""
        if airflow_configured(self.conn_id):
            return super().where
        return (
            f"the {self.conn_id} Airflow connection (not looked up: this shell has no "
            f"$AIRFLOW_CONN_{self.conn_id.upper()}, secrets backend, metadata database or airflow.cfg)"
        )

    def _extra(self) -> str | None:
        runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
        if getattr(runner, "SUPERVISOR_COMMS", None) is not None:  # inside a task after all
            return super()._extra()
        if not airflow_configured(self.conn_id):
            return None
        with _command_line_logging_kept():
            try:
                from airflow.models.connection import Connection
            except ImportError:  # only the Task SDK is installed: its lookup (no metadata database)
                return super()._extra()
            from airflow.sdk.exceptions import AirflowNotFoundException  # what airflow.models raises

            quiet = logging.getLogger("airflow")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # e.g. "empty cryptography key" of a local Airflow
            try:
                extra = Connection.get_connection_from_secrets(self.conn_id).extra
            except AirflowNotFoundException:
                return None
            finally:
                quiet.setLevel(level)
        return str(extra) if extra else None


@contextmanager
def _command_line_logging_kept() -> Iterator[None]:
    """Keep the command line's logging through a first import of Airflow.

    Importing Airflow sets up an Airflow process's logging: its own handler on the root logger,
    writing to standard output, in place of the command's (standard error, redacted), and Python
    warnings sent there too. The command's handlers, level and warnings are put back afterwards.
    """
    root = logging.getLogger()
    handlers, level, show_warning = list(root.handlers), root.level, warnings.showwarning
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        warnings.showwarning = show_warning


_installed: AirflowConnectionKeys | None = None
_installed_for_cli: CliConnectionKeys | None = None


def install() -> AirflowConnectionKeys:
    """Install the connection source once per process; return it."""
    global _installed  # noqa: PLW0603 - one source per process
    if _installed is None:
        _installed = AirflowConnectionKeys()
        install_source(_installed)
    return _installed


def install_for_cli() -> CliConnectionKeys:
    """Install the command line's connection source once per process, with no cached lookup; return it.

    The ``donor-sync`` group calls it at every command, so a command never reuses the keys an
    earlier command in the same process (a test) looked up.
    """
    global _installed_for_cli  # noqa: PLW0603 - one source per process
    if _installed_for_cli is None:
        _installed_for_cli = CliConnectionKeys()
        install_source(_installed_for_cli)
    _installed_for_cli.forget()
    return _installed_for_cli
