"""The staging database: where it is, how to reach it, and its schema migrations."""

from __future__ import annotations

from donor_sync.db.connect import connect, database_exists, drop_database, ensure_database
from donor_sync.db.url import DatabaseTarget, redact, resolve_target, with_database

__all__ = [
    "DatabaseTarget",
    "connect",
    "database_exists",
    "drop_database",
    "ensure_database",
    "redact",
    "resolve_target",
    "with_database",
]
