"""Run Airflow locally from this repository, with the same settings for every command.

``AIRFLOW_HOME`` is the repo's git-ignored ``.airflow/`` folder, examples are off, the DAGs and
plugins folders are the repo's, the repo root is on ``PYTHONPATH`` (Airflow does not put
``include/`` there by itself), and the metadata database is a ``donor_sync_airflow`` database on
the staging server. The staging database reaches tasks as the ``donor_sync_db`` connection.
Everything is passed as environment variables, so a plain pip-installed Airflow behaves the same
as the Docker image, and nothing is written into a global ``airflow.cfg``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from donor_sync.db.url import DatabaseTarget, with_database
from donor_sync.errors import ConfigError
from donor_sync.paths import airflow_home, local_state_dir, repo_root
from donor_sync.yaml_source import duplicate_keys, read_config_text

METADATA_DATABASE = "donor_sync_airflow"
STAGING_CONN_ID = "donor_sync_db"


def connection_json_from_url(url: str) -> str:
    """Return an Airflow connection (JSON form) for a libpq URL, for ``AIRFLOW_CONN_*``."""
    params = conninfo_to_dict(url)
    extra = {k: v for k, v in params.items() if k not in {"host", "port", "user", "password", "dbname"}}
    conn: dict[str, Any] = {
        "conn_type": "postgres",
        "host": params.get("host", "127.0.0.1"),
        "port": int(params.get("port", 5432) or 5432),
        "login": params.get("user", "postgres"),
        "schema": params.get("dbname", "postgres"),
    }
    if params.get("password"):
        conn["password"] = params["password"]
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def airflow_environment(target: DatabaseTarget, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment that points Airflow at this repo and at ``target``.

    Variables already set in ``base`` (default: ``os.environ``) for the metadata database win,
    so a deployment can keep its own.
    """
    env = dict(os.environ if base is None else base)
    root = repo_root()
    home = airflow_home()
    meta_url = with_database(target.url, METADATA_DATABASE)
    params = conninfo_to_dict(meta_url)
    password = f":{params['password']}" if params.get("password") else ""
    sqlalchemy_meta = (
        f"postgresql+psycopg2://{params.get('user', 'postgres')}{password}@"
        f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{METADATA_DATABASE}"
    )
    python_path = os.pathsep.join(p for p in (str(root), str(root / "plugins"), env.get("PYTHONPATH")) if p)
    bin_dir = str(Path(sys.executable).parent)  # standalone starts its components as `airflow ...`
    path = env.get("PATH", "")
    env.update(
        {
            "PATH": path
            if path.split(os.pathsep)[:1] == [bin_dir]
            else os.pathsep.join(p for p in (bin_dir, path) if p),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "30",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
            "AIRFLOW__API__EXPOSE_CONFIG": "False",
            "PYTHONPATH": python_path,
            "DONOR_SYNC_HOME": str(root),
            "DONOR_SYNC_DB_URL": target.url,
            f"AIRFLOW_CONN_{STAGING_CONN_ID.upper()}": connection_json_from_url(target.url),
        }
    )
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", sqlalchemy_meta)
    # Trust the sandbox CA explicitly (system authorities plus it), never by disabling checks.
    from donor_sync.sandbox_support import trust_bundle

    bundle = str(trust_bundle())
    env.update({"SSL_CERT_FILE": bundle, "REQUESTS_CA_BUNDLE": bundle, "CURL_CA_BUNDLE": bundle})
    home.mkdir(parents=True, exist_ok=True)
    return env


def airflow_executable() -> str:
    """Return the ``airflow`` console script of the running interpreter's environment."""
    candidate = Path(sys.executable).with_name("airflow")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("airflow")
    if not found:
        raise ConfigError("the `airflow` command is not installed in this environment; run `make venv`")
    return found


def run_airflow(
    args: Sequence[str], env: Mapping[str, str], *, quiet: bool = False, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow ARGS`` with ``env``; with ``quiet`` its output is captured and shown only on failure."""
    result = subprocess.run(  # noqa: S603 - our own console script
        [airflow_executable(), *args],
        env=dict(env),
        text=True,
        capture_output=quiet,
        check=False,
    )
    if check and result.returncode != 0:
        tail = ""
        if quiet:
            lines = (result.stdout + result.stderr).strip().splitlines()
            tail = "\n" + "\n".join(lines[-25:])
        raise ConfigError(f"`airflow {' '.join(args[:3])}` failed with exit code {result.returncode}{tail}")
    return result


def run_dag_test(dag_id: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``airflow dags test DAG_ID`` (in-process run, no scheduler), with the deadline-alert fix.

    See :mod:`donor_sync.operators.dag_test_compat` for the upstream bug it works around.
    """
    result = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "donor_sync.operators.dag_test_compat", dag_id],
        env=dict(env),
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        raise ConfigError(
            f"`airflow dags test {dag_id}` failed with exit code {result.returncode}\n"
            + "\n".join(lines[-25:])
        )
    return result


# -- airflow_settings.yaml (the Astro CLI format) ----------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SettingsConnection(_Strict):
    """One connection in airflow_settings.yaml."""

    conn_id: str = Field(min_length=1)
    conn_type: str = Field(min_length=1)
    conn_host: str | None = None
    conn_schema: str | None = None
    conn_login: str | None = None
    conn_password: str | None = None
    conn_port: int | None = None
    conn_extra: dict[str, Any] | None = None
    conn_description: str | None = None


class SettingsPool(_Strict):
    """One pool in airflow_settings.yaml."""

    pool_name: str = Field(min_length=1)
    pool_slot: int = Field(ge=1)
    pool_description: str = ""


class SettingsVariable(_Strict):
    """One variable in airflow_settings.yaml."""

    variable_name: str = Field(min_length=1)
    variable_value: str
    variable_description: str | None = None


class _AirflowSection(_Strict):
    connections: list[SettingsConnection] = Field(default_factory=list)
    pools: list[SettingsPool] = Field(default_factory=list)
    variables: list[SettingsVariable] = Field(default_factory=list)


class AirflowSettings(_Strict):
    """The whole airflow_settings.yaml file."""

    airflow: _AirflowSection


def load_settings(path: Path | None = None) -> AirflowSettings:
    """Read and validate airflow_settings.yaml.

    :raises ConfigError: naming the file and the offending field.
    """
    path = path or repo_root() / "airflow_settings.yaml"
    text = read_config_text(path)
    try:
        raw = yaml.safe_load(text)
        twice = duplicate_keys(yaml.compose(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if twice:
        raise ConfigError("; ".join(f"{path}: line {line}, {key}: written twice" for line, key in twice))
    try:
        return AirflowSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


#: How airflow_settings.yaml names the local state folder in connection extras.
LOCAL_STATE_PREFIX = ".local/"


def resolve_local_paths(extra: Mapping[str, Any], state_dir: Path) -> dict[str, Any]:
    """Return a copy of ``extra`` whose ``.local/...`` values are absolute paths in ``state_dir``.

    The shipped connections name sandbox files (the Salesforce JWT key, the CA certificate) under
    ``.local/``; a task's working directory is not the repository, and ``DONOR_SYNC_STATE_DIR``
    may move the folder, so they are imported as absolute paths. ``extra`` is not changed.
    """
    return {
        key: str(state_dir / value.removeprefix(LOCAL_STATE_PREFIX))
        if isinstance(value, str) and value.startswith(LOCAL_STATE_PREFIX)
        else value
        for key, value in extra.items()
    }


def settings_import_files(
    settings: AirflowSettings, directory: Path, *, state_dir: Path | None = None
) -> dict[str, Path]:
    """Write the JSON files ``airflow connections|variables|pools import`` read; return their paths.

    :param state_dir: the local state folder ``.local/`` extras point into (default
        :func:`donor_sync.paths.local_state_dir`).
    """
    state = state_dir or local_state_dir()
    connections = {
        c.conn_id: {
            "conn_type": c.conn_type,
            "host": c.conn_host,
            "schema": c.conn_schema,
            "login": c.conn_login,
            "password": c.conn_password,
            "port": c.conn_port,
            "extra": json.dumps(resolve_local_paths(c.conn_extra, state))
            if c.conn_extra is not None
            else None,
            "description": c.conn_description,
        }
        for c in settings.airflow.connections
    }
    variables = {v.variable_name: v.variable_value for v in settings.airflow.variables}
    pools = {
        p.pool_name: {"slots": p.pool_slot, "description": p.pool_description, "include_deferred": False}
        for p in settings.airflow.pools
    }
    files = {}
    for kind, payload in (("connections", connections), ("variables", variables), ("pools", pools)):
        file = directory / f"{kind}.json"
        file.write_text(json.dumps(payload, indent=2))
        file.chmod(0o600)
        files[kind] = file
    return files


def import_settings(env: Mapping[str, str], path: Path | None = None) -> AirflowSettings:
    """Load airflow_settings.yaml into the local Airflow metadata database with Airflow's own importers."""
    settings = load_settings(path)
    with tempfile.TemporaryDirectory(prefix="donor-sync-settings-") as tmp:
        files = settings_import_files(settings, Path(tmp))
        if settings.airflow.connections:
            run_airflow(["connections", "import", "--overwrite", str(files["connections"])], env, quiet=True)
        if settings.airflow.variables:
            run_airflow(
                ["variables", "import", "--action-on-existing-key", "overwrite", str(files["variables"])],
                env,
                quiet=True,
            )
        if settings.airflow.pools:
            run_airflow(["pools", "import", str(files["pools"])], env, quiet=True)
    return settings
