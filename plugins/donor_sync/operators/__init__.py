"""Thin Airflow shells over the library: retry policy, DAG defaults and task callables.

Importing the package installs the ``privacy_keys`` connection as the first key source of the
process (:mod:`donor_sync.hooks.privacy_keys`; lazy, no I/O), so every task's field encryption,
tombstone checks and signed links use the deployment's keys rather than a local development file.
It also puts the bound log ids and the PII safety net on the ``donor_sync`` logger
(:func:`donor_sync.observability.logging.install`; no I/O).
"""

from donor_sync.hooks.privacy_keys import install as _install_privacy_keys
from donor_sync.observability.logging import install as _install_logging

_install_privacy_keys()
_install_logging()
