"""The real Airflow components as subprocesses, for tests that ``dag.test()`` cannot cover.

Deadline alerts are checked only by the scheduler loop and their ``AsyncCallback`` runs in the
triggerer; task failures reach Slack from the task runner. So these tests start, with the repo's
Airflow environment (:func:`donor_sync.local_airflow.airflow_environment`) over a Postgres metadata
database of their own:

- ``airflow api-server`` (one worker): LocalExecutor tasks talk to its execution API, and runs are
  triggered through its REST API;
- ``airflow scheduler`` (LocalExecutor), ``airflow dag-processor`` and ``airflow triggerer``.

Each runs in its own process group with stdout and stderr in ``<log_dir>/<component>.log``; a
timeout in a wait helper quotes the tail of every log. :meth:`AirflowServices.stop` sends SIGTERM
to every process group, then SIGKILL to whatever is left, task processes included.

Airflow 3.3.2 settings the services need (all as environment variables, see
:func:`services_environment`):

- ``[scheduler] use_job_schedule = False``: with ``catchup=False`` a ``CronTriggerTimetable`` DAG
  gets a scheduled run for the last cron tick as soon as it is parsed unpaused; with
  ``max_active_runs=1`` that run would hold back the run a test triggers.
- ``[core] execution_api_server_url``: LocalExecutor workers reach the task execution API there
  (default ``http://localhost:8080/execution/``, which may be anything on a shared machine).
- ``[api_auth] jwt_secret``, ``[core] fernet_key``, ``[api] secret_key``: set explicitly, because
  each component that finds no ``airflow.cfg`` would otherwise write one with secrets of its own,
  and a task token signed by the scheduler must verify in the API server.
- the worker and triggerer log servers on free ports (defaults 8793 and 8794 clash with any other
  Airflow on the machine).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import certifi
import psutil
import psycopg
import requests
from psycopg.conninfo import conninfo_to_dict

from donor_sync.db.url import DatabaseTarget
from donor_sync.local_airflow import (
    airflow_environment,
    airflow_executable,
    load_settings,
    run_airflow,
    settings_import_files,
)

#: The components, in start order (the API server first: tasks need its execution API).
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

#: Run states after which a run changes no more.
TERMINAL_RUN_STATES = frozenset({"success", "failed"})

#: How long :meth:`AirflowServices.stop` waits after SIGTERM before SIGKILL.
STOP_GRACE_S = 5.0

_POLL_S = 0.5
_T = TypeVar("_T")

#: Every started and not yet stopped instance, so a failing test's report can quote their logs.
RUNNING: list[AirflowServices] = []


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metadata_sqlalchemy_url(url: str) -> str:
    """Return the SQLAlchemy URL (psycopg2 driver, as the repo's local Airflow uses) of libpq ``url``."""
    params = conninfo_to_dict(url)
    user = quote(str(params.get("user", "postgres")), safe="")
    password = f":{quote(str(params['password']), safe='')}" if params.get("password") else ""
    host = params.get("host", "127.0.0.1")
    port = params.get("port", 5432)
    return f"postgresql+psycopg2://{user}{password}@{host}:{port}/{params.get('dbname', 'postgres')}"


def write_trust_bundle(ca_cert: Path, path: Path) -> Path:
    """Write the system's authorities plus ``ca_cert`` (the test sandbox's CA) to ``path``.

    The Slack provider's async webhook client (aiohttp, in the triggerer) takes no CA from its
    connection; it trusts ``SSL_CERT_FILE``, which must therefore name the CA of the emulators the
    test started (not the project's ``.local`` sandbox CA that ``airflow_environment`` points at).
    """
    path.write_text(Path(certifi.where()).read_text().rstrip("\n") + "\n" + ca_cert.read_text())
    return path


def generate_secrets() -> dict[str, str]:
    """Return fresh values for the settings every component must share (see the module docstring)."""
    return {
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
    }


def _pristine_base() -> dict[str, str]:
    """``os.environ`` without connections and variables other tests may have left in it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}


def _prepare_home(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "airflow.cfg"
    if not config.exists():
        # Present, so no component writes one of its own (with its own secrets) at start-up.
        config.write_text("# Every setting comes from AIRFLOW__* variables (tests/observability).\n")


def migrate_metadata(metadata_url: str, *, staging_url: str, home: Path) -> None:
    """Run ``airflow db migrate`` on ``metadata_url`` and import the pools of airflow_settings.yaml.

    The scheduler queues no task of a pool that does not exist, and donations_hourly's pushes run in
    the per-destination pools. Connections and variables are not imported: the services get their
    connections as ``AIRFLOW_CONN_*``.
    """
    _prepare_home(home)
    env = airflow_environment(
        DatabaseTarget(url=staging_url, embedded=False),
        base={
            **_pristine_base(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_sqlalchemy_url(metadata_url),
        },
    )
    env.update({"AIRFLOW_HOME": str(home), **generate_secrets()})
    run_airflow(["db", "migrate"], env, quiet=True)
    with tempfile.TemporaryDirectory(prefix="airflow-pools-") as tmp:
        files = settings_import_files(load_settings(), Path(tmp), state_dir=Path(tmp))
        run_airflow(["pools", "import", str(files["pools"])], env, quiet=True)


def services_environment(
    *,
    staging_url: str,
    metadata_url: str,
    home: Path,
    ca_bundle: Path,
    connections: Mapping[str, Mapping[str, Any]],
    api_port: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the environment of every component.

    :param staging_url: the staging database (the ``donor_sync_db`` connection).
    :param metadata_url: libpq URL of a migrated Airflow metadata database.
    :param home: ``AIRFLOW_HOME`` (task logs land in ``home/logs``).
    :param ca_bundle: what ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` name (see :func:`write_trust_bundle`).
    :param connections: Airflow connections (JSON form) by id, passed as ``AIRFLOW_CONN_*``.
    :param extra: more variables, winning over everything here.
    """
    env = airflow_environment(
        DatabaseTarget(url=staging_url, embedded=False),
        base={
            **_pristine_base(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_sqlalchemy_url(metadata_url),
        },
    )
    bundle = str(ca_bundle)
    api = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "DONOR_SYNC_FAIL_FAST": "1",
            "PYTHONUNBUFFERED": "1",
            "SSL_CERT_FILE": bundle,
            "REQUESTS_CA_BUNDLE": bundle,
            "CURL_CA_BUNDLE": bundle,
            **generate_secrets(),
        }
    )
    for conn_id, conn in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    env.update(extra or {})
    return env


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class AirflowServices:
    """The API server, scheduler, dag-processor and triggerer over one metadata database.

    :param env: the components' environment (:func:`services_environment`).
    :param metadata_url: libpq URL of their metadata database, which the helpers query directly.
    :param log_dir: where each component's output goes.
    :param api_port: the API server's port (the one in ``env``).
    :param staging_url: the staging database the DAGs write to (``donor_sync_db``).
    """

    env: dict[str, str]
    metadata_url: str
    staging_url: str
    log_dir: Path
    api_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_at: float = 0.0
    ready_s: float = 0.0
    stop_s: float = 0.0
    _token: str | None = None
    _family: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        """Return the API server's base URL."""
        return f"http://127.0.0.1:{self.api_port}"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> AirflowServices:
        """Start every component; return once the API server reports all of them healthy."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _prepare_home(Path(self.env["AIRFLOW_HOME"]))
        self.started_at = time.monotonic()
        RUNNING.append(self)
        try:
            for name in COMPONENTS:
                self._spawn(name)
            self.wait_until(self._all_healthy, timeout, "the Airflow components to report healthy")
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.monotonic() - self.started_at
        return self

    def _spawn(self, name: str) -> None:
        args = {
            "api-server": [
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--workers",
                "1",
            ],
        }.get(name, [name])
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(  # our own console script
                [airflow_executable(), *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.env["AIRFLOW_HOME"],
                start_new_session=True,  # its own process group: stop() reaches its children too
            )

    def stop(self, *, grace: float = STOP_GRACE_S) -> dict[str, int | None]:
        """Stop every component and everything it started; return each component's exit code.

        SIGTERM goes to each component's process group, then, after ``grace`` seconds, SIGKILL to
        those groups and to every process seen below a component (task processes, which the task
        supervisor puts in process groups of their own, included). Idempotent.
        """
        began = time.monotonic()
        self._remember_family()
        for proc in self.processes.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        self._remember_family()
        for proc in self.processes.values():
            _signal_group(proc.pid, signal.SIGKILL)
        for member in self._family.values():
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(list(self._family.values()), timeout=5)
        codes: dict[str, int | None] = {}
        for name, proc in self.processes.items():
            try:
                codes[name] = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                codes[name] = None
        if self in RUNNING:
            RUNNING.remove(self)
        self.stop_s = time.monotonic() - began
        return codes

    def _remember_family(self) -> None:
        for proc in self.processes.values():
            try:
                root = psutil.Process(proc.pid)
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            self._family.update({p.pid: p for p in members})

    def survivors(self) -> list[int]:
        """Return the pids of the components and their descendants still alive (after :meth:`stop`)."""
        self._remember_family()
        alive = []
        for pid, proc in self._family.items():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.Error:
                continue
        return sorted(alive)

    # -- diagnostics ------------------------------------------------------------------------------

    def log_tails(self, lines: int = 40) -> str:
        """Return the last ``lines`` of every component's log (for failure messages)."""
        parts = []
        for name in COMPONENTS:
            path = self.log_dir / f"{name}.log"
            parts.append(f"----- {name} ({path}) -----\n{_tail(path, lines)}")
        return "\n".join(parts)

    def task_log_tails(self, dag_id: str, run_id: str, lines: int = 30) -> str:
        """Return the last ``lines`` of each task log of one run."""
        root = Path(self.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        parts = [f"----- {p.relative_to(root)} -----\n{_tail(p, lines)}" for p in sorted(root.rglob("*.log"))]
        return "\n".join(parts) or f"(no task logs under {root})"

    def check_alive(self) -> None:
        """Raise AssertionError, quoting the logs, when a component has exited."""
        dead = {name: proc.returncode for name, proc in self.processes.items() if proc.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow components exited: {dead}\n{self.log_tails()}")

    def wait_until(self, probe: Callable[[], _T | None], timeout: float, what: str) -> _T:
        """Poll ``probe`` until it returns something other than None/False; return that.

        :raises AssertionError: after ``timeout`` seconds or when a component dies, quoting the logs.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            self._remember_family()  # a task process seen once is killed on stop() even if orphaned
            result = probe()
            if result is not None and result is not False:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}")
            time.sleep(_POLL_S)

    # -- the API server ---------------------------------------------------------------------------

    def _all_healthy(self) -> bool:
        try:
            health = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            # simple_auth_manager_all_admins: the token endpoint answers GET without credentials.
            response = requests.get(f"{self.api_url}/auth/token", timeout=10)
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Trigger a manual run of ``dag_id`` through the REST API; return its run id."""
        response = requests.post(
            f"{self.api_url}/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})},
            headers=self._headers(),
            timeout=30,
        )
        if response.status_code != 200:
            raise AssertionError(f"trigger {dag_id} answered {response.status_code}: {response.text}")
        return str(response.json()["dag_run_id"])

    # -- the metadata database --------------------------------------------------------------------

    def query(self, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement on the metadata database (autocommit); return its rows, if any."""
        with psycopg.connect(self.metadata_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params or {})
            return cursor.fetchall() if cursor.description else []

    def wait_for_dag(self, dag_id: str, timeout: float = 90.0) -> None:
        """Wait until the dag-processor has serialized ``dag_id``; fail if it is paused or broken."""

        def parsed() -> bool:
            errors = self.query("SELECT filename, stacktrace FROM import_error")
            if errors:
                raise AssertionError(f"DAG import errors: {errors}")
            rows = self.query(
                "SELECT d.is_paused FROM dag d JOIN serialized_dag s USING (dag_id) WHERE d.dag_id = %(d)s",
                {"d": dag_id},
            )
            if rows and rows[0][0]:
                raise AssertionError(f"{dag_id} is paused: DAGS_ARE_PAUSED_AT_CREATION did not apply")
            return bool(rows)

        self.wait_until(parsed, timeout, f"the dag-processor to serialize {dag_id}")

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """Return the state of one run (None before it exists)."""
        rows = self.query(
            "SELECT state FROM dag_run WHERE dag_id = %(d)s AND run_id = %(r)s", {"d": dag_id, "r": run_id}
        )
        return str(rows[0][0]) if rows else None

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Return the state of each (unmapped) task instance of one run, by task id."""
        rows = self.query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = %(d)s AND run_id = %(r)s"
            " AND map_index = -1",
            {"d": dag_id, "r": run_id},
        )
        return {str(task): (str(state) if state is not None else None) for task, state in rows}

    def wait_for_run_state(
        self, dag_id: str, run_id: str, states: Iterable[str] = TERMINAL_RUN_STATES, timeout: float = 120.0
    ) -> str:
        """Wait until the run is in one of ``states``; return the state."""
        wanted = set(states)

        def reached() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in wanted else None

        try:
            return self.wait_until(reached, timeout, f"run {run_id} of {dag_id} to be {sorted(wanted)}")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\ntask states: {self.task_states(dag_id, run_id)}\n"
                f"{self.task_log_tails(dag_id, run_id)}"
            ) from None

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float = 120.0
    ) -> str:
        """Wait until one task instance is in one of ``states``; return the state."""
        wanted = set(states)

        def reached() -> str | None:
            state = self.task_states(dag_id, run_id).get(task_id)
            return state if state in wanted else None

        try:
            return self.wait_until(reached, timeout, f"{dag_id}.{task_id} in {run_id} to be {sorted(wanted)}")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\ntask states: {self.task_states(dag_id, run_id)}\n"
                f"{self.task_log_tails(dag_id, run_id)}"
            ) from None

    def deadlines(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return the deadline rows of one run with their callback's state."""
        rows = self.query(
            "SELECT dl.id, dl.deadline_time, dl.missed, cb.state, dr.queued_at FROM deadline dl"
            " JOIN dag_run dr ON dr.id = dl.dagrun_id JOIN callback cb ON cb.id = dl.callback_id"
            " WHERE dr.dag_id = %(d)s AND dr.run_id = %(r)s ORDER BY dl.deadline_time",
            {"d": dag_id, "r": run_id},
        )
        keys = ("id", "deadline_time", "missed", "callback_state", "queued_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def fast_forward_deadline(self, dag_id: str, run_id: str) -> int:
        """Move the run's pending deadlines to now; return how many rows moved.

        Only the time changes: the row, its callback and the scheduler loop that finds it missed
        and the triggerer that runs the callback are Airflow's own.
        """
        rows = self.query(
            "UPDATE deadline dl SET deadline_time = now(), last_updated_at = now() FROM dag_run dr"
            " WHERE dr.id = dl.dagrun_id AND dr.dag_id = %(d)s AND dr.run_id = %(r)s AND NOT dl.missed"
            " RETURNING dl.id",
            {"d": dag_id, "r": run_id},
        )
        return len(rows)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the component is its group's leader (start_new_session)


__all__ = [
    "COMPONENTS",
    "RUNNING",
    "TERMINAL_RUN_STATES",
    "AirflowServices",
    "free_port",
    "metadata_sqlalchemy_url",
    "migrate_metadata",
    "services_environment",
    "write_trust_bundle",
]
