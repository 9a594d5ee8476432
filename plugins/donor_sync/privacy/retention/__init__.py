"""Retention: purge, blank or pseudonymize what the policies in retention.yaml say has expired.

* :mod:`.settings` -- ``include/mappings/privacy/retention.yaml``, validated (ledgers refused).
* :mod:`.purge` -- run every policy in batches, counted and audited (docs/retention.md).
"""

from __future__ import annotations

from donor_sync.privacy.retention.purge import PolicyResult, RetentionReport, run_retention
from donor_sync.privacy.retention.settings import Policy, RetentionSettings, load_retention_settings

__all__ = [
    "Policy",
    "PolicyResult",
    "RetentionReport",
    "RetentionSettings",
    "load_retention_settings",
    "run_retention",
]
