"""donor-sync: move a nonprofit's donors and gifts from donation platforms into CRMs and email platforms.

The package is plain Python: only ``donor_sync.operators``, ``donor_sync.hooks``,
``donor_sync.observability.notifiers`` and ``donor_sync.airflow_plugin`` import Airflow, so the
library runs from tests, the CLI and benchmarks without a scheduler.
"""

from __future__ import annotations

__version__ = "0.1.0"
