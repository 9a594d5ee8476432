"""Where the repository's folders are, for code that runs from a checkout or the Docker image."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """Return the repository root (the folder holding dags/, plugins/ and include/).

    ``DONOR_SYNC_HOME`` overrides it; otherwise it is two levels above this package, which holds
    both for a checkout (``<repo>/plugins/donor_sync``) and for the image (``/opt/airflow``).
    """
    override = os.environ.get("DONOR_SYNC_HOME")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[2]


def include_dir() -> Path:
    """Return ``include/``: YAML configuration and SQL."""
    return repo_root() / "include"


def migrations_dir() -> Path:
    """Return the folder of versioned SQL migrations."""
    return include_dir() / "sql" / "migrations"


def local_state_dir(*, create: bool = True) -> Path:
    """Return the git-ignored folder for local state (embedded Postgres data, sandbox certificates).

    ``DONOR_SYNC_STATE_DIR`` overrides it. ``create=False`` only names it (nothing is made).
    """
    override = os.environ.get("DONOR_SYNC_STATE_DIR")
    path = Path(override).resolve() if override else repo_root() / ".local"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def airflow_home() -> Path:
    """Return the repo-local, git-ignored ``AIRFLOW_HOME`` (``AIRFLOW_HOME`` wins when set)."""
    override = os.environ.get("AIRFLOW_HOME")
    return Path(override).resolve() if override else repo_root() / ".airflow"
