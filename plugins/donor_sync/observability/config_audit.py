"""Configuration changes in the audit log: which files under include/ changed since the last record.

Every DAG run's ``open_run`` fingerprints the configuration (SHA-256 of each YAML, CSV and SQL file
under ``include/``) and compares it with the fingerprint of the last ``config.changed`` audit row.
When anything was added, changed or removed, it writes one ``config.changed`` row naming the files
and their new digests (configuration holds no donor data). The audit log's hash chain then makes
the history of what configuration each run used tamper-evident (docs/audit.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

from donor_sync.observability import audit

SUFFIXES = frozenset({".yaml", ".yml", ".csv", ".sql"})


@dataclass(frozen=True)
class ConfigChange:
    """What changed since the last recorded fingerprint (paths relative to include/)."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def any(self) -> bool:
        """Whether anything changed."""
        return bool(self.added or self.changed or self.removed)


def fingerprint(root: Path | None = None) -> dict[str, str]:
    """Return ``{path relative to include/: sha256 hex}`` of every configuration file."""
    if root is None:
        from donor_sync.paths import include_dir

        root = include_dir()
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in SUFFIXES
    }


def last_recorded(conn: psycopg.Connection) -> dict[str, str] | None:
    """Return the fingerprint of the newest ``config.changed`` row (``None``: never recorded)."""
    row = conn.execute(
        "SELECT details->'fingerprint' FROM sync.audit_log WHERE action = 'config.changed'"
        " ORDER BY audit_id DESC LIMIT 1"
    ).fetchone()
    return None if row is None or row[0] is None else {str(k): str(v) for k, v in dict(row[0]).items()}


def diff(before: Mapping[str, str], after: Mapping[str, str]) -> ConfigChange:
    """Return what changed from ``before`` to ``after``."""
    return ConfigChange(
        added=tuple(sorted(set(after) - set(before))),
        changed=tuple(sorted(p for p in set(after) & set(before) if after[p] != before[p])),
        removed=tuple(sorted(set(before) - set(after))),
    )


def record_config_changes(
    conn: psycopg.Connection, *, actor: str, run_id: object = None, root: Path | None = None
) -> ConfigChange:
    """Write a ``config.changed`` audit row when the configuration differs from the last one recorded.

    The first call records the whole configuration as added. Serialized with other callers by a
    transaction-scoped advisory lock, so two runs starting together record a change once. Not
    committed.
    """
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('donor_sync.config_audit'))")
    current = fingerprint(root)
    previous = last_recorded(conn)
    change = diff(previous or {}, current)
    if change.any:
        audit.record(
            conn,
            actor=actor,
            action="config.changed",
            object_type="config",
            object_id="include",
            details={
                "added": list(change.added),
                "changed": list(change.changed),
                "removed": list(change.removed),
                "fingerprint": current,
            },
            run_id=run_id,
        )
    return change
