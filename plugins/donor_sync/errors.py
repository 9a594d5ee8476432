"""The project's exception family.

Every error a person can act on says what to do about it; none carries a secret or a donor's PII.
"""

from __future__ import annotations


class DonorSyncError(Exception):
    """Base class of every error donor-sync raises on purpose."""


class ConfigError(DonorSyncError):
    """A configuration file or setting is invalid; the message names the file and field."""


class DatabaseError(DonorSyncError):
    """The staging database cannot be reached, started or prepared."""


class MigrationError(DatabaseError):
    """The migrations on disk and the ones applied to the database disagree."""


class PermanentError(DonorSyncError):
    """A failure that retrying cannot fix (bad credentials, invalid record, missing object)."""
