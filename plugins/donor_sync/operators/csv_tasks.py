"""CSV drop task: load the drop folder's ready files into ``raw`` (a few lines over ``sources.csv_drop``).

The folder comes from the ``csv_drop`` connection, Airflow's File (path) type (``fs``) read
through ``FSHook``: its extra holds ``path`` and, optionally, ``quiet_period_seconds`` and
``archive_path``. Without that connection the task uses ``<repo>/.local/csv_drop``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from airflow.sdk import task

log = logging.getLogger(__name__)

#: Airflow connection (type ``fs``) naming the drop folder.
DROP_CONN_ID: Final = "csv_drop"


@dataclass(frozen=True)
class DropSettings:
    """Where the drop folder is and how the loader treats it."""

    path: Path
    quiet_period: timedelta
    archive_dir: Path | None = None


def settings_from_extra(
    extra: dict[str, Any], *, default_path: Path, default_quiet: timedelta
) -> DropSettings:
    """Return drop settings from an ``fs`` connection's extra (``path``, ``quiet_period_seconds``,
    ``archive_path``); missing keys take the defaults, relative paths are taken from the project
    folder. The input is not modified.

    :raises ValueError: ``quiet_period_seconds`` is not a non-negative number.
    """
    quiet = extra.get("quiet_period_seconds")
    quiet_period = default_quiet if quiet in (None, "") else timedelta(seconds=float(quiet))
    if quiet_period < timedelta(0):
        raise ValueError("quiet_period_seconds must not be negative")
    archive = extra.get("archive_path")
    return DropSettings(
        _project_path(str(extra.get("path") or default_path)),
        quiet_period,
        _project_path(str(archive)) if archive else None,
    )


def _project_path(value: str) -> Path:
    """Expand ``~``; a relative path is taken from the project folder, not the worker's cwd."""
    from donor_sync.paths import repo_root

    path = Path(value).expanduser()
    return path if path.is_absolute() else repo_root() / path


def drop_settings(conn_id: str = DROP_CONN_ID) -> DropSettings:
    """Return the drop settings from the ``csv_drop`` connection, or the local default folder."""
    from airflow.providers.standard.hooks.filesystem import FSHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from donor_sync.sources.csv_drop import DEFAULT_QUIET_PERIOD, default_drop_dir

    try:
        hook = FSHook(fs_conn_id=conn_id)
    except AirflowNotFoundException:
        path = default_drop_dir()
        path.mkdir(parents=True, exist_ok=True)
        log.info("no %s connection: using %s", conn_id, path)
        return DropSettings(path, DEFAULT_QUIET_PERIOD)
    extra = dict(hook.conn.extra_dejson)
    extra["path"] = hook.get_path() or None
    return settings_from_extra(extra, default_path=default_drop_dir(), default_quiet=DEFAULT_QUIET_PERIOD)


@task(pool="staging_db")
def extract_csv_task(sync_run_id: str) -> str:
    """Airflow task: load the CSV drop folder into ``raw`` and record files and rows per source.

    A file that cannot be loaded is moved to ``rejected/`` with an error sidecar and counted
    (``extract/csv_drop/files_rejected``); it does not fail the task, so the other sources flow.
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.sources.csv_drop import formats_dir, load_drop_folder, load_formats

    settings = drop_settings()
    formats = load_formats(formats_dir())
    with connect(StagingDbHook().conninfo()) as conn:
        results = load_drop_folder(
            conn,
            settings.path,
            formats,
            run_id=UUID(sync_run_id),
            quiet_period=settings.quiet_period,
            archive_dir=settings.archive_dir,
        )
    for result in results:
        log.info("%s %s: %s", result.status, result.path.name, result.error or result.detail or result.rows)
    rejected = sum(r.status == "rejected" for r in results)
    if rejected:
        log.warning("%s CSV file(s) rejected; see %s", rejected, settings.path / "rejected")
    return sync_run_id
