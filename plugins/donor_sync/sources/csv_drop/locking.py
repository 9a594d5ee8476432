"""One loader per drop folder at a time, across processes and machines: a Postgres advisory lock.

Two runs reading the same folder at once could both load a file before either archives it; the
unique hash in raw.csv_files would refuse the second, but the lock keeps the work (and the
archive moves) from being done twice at all. The lock lives in the staging database, so workers
on several machines that share the folder and the database exclude each other; the key is the
folder's resolved path, so they must mount it at the same path (as one Airflow connection does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Final

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from donor_sync.sources.csv_drop.errors import DropFolderBusy

#: How long a loader waits for another one of the same folder before giving up.
DEFAULT_LOCK_WAIT: Final = timedelta(minutes=10)


def lock_key(drop_dir: Path) -> int:
    """Return the advisory lock key of a drop folder (a signed 64-bit hash of its resolved path)."""
    digest = hashlib.sha256(b"donor_sync.csv_drop:" + str(drop_dir.resolve()).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def drop_folder_lock(conn: psycopg.Connection, drop_dir: Path, *, wait: timedelta) -> Iterator[None]:
    """Hold the folder's session-level advisory lock for the block (commits inside do not release it).

    :raises DropFolderBusy: another session kept the lock for longer than ``wait``.
    """
    key = lock_key(drop_dir)
    timeout_ms = max(1, int(wait.total_seconds() * 1000))
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{timeout_ms}ms",))
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    except pg_errors.LockNotAvailable:
        raise DropFolderBusy(
            f"another loader has held the CSV drop folder {drop_dir} for over {wait.total_seconds():.0f} s"
        ) from None
    try:
        yield
    finally:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        conn.commit()
