"""Reconciliation with the CRMs (donors_nightly): staff edits and merges pulled back into core.

``settings`` reads include/mappings/reconcile.yaml; ``records`` defines what a destination reader
yields; ``standardize`` turns CRM values into the standardized fields survivorship compares;
``pull`` writes them to core and follows merges made in the CRM.
"""

from donor_sync.delivery.reconcile.pull import PullReport, pull_destination
from donor_sync.delivery.reconcile.records import RemoteReader, RemoteRecord
from donor_sync.delivery.reconcile.settings import (
    DestinationReconcile,
    ReconcileSettings,
    load_reconcile_settings,
)

__all__ = [
    "DestinationReconcile",
    "PullReport",
    "ReconcileSettings",
    "RemoteReader",
    "RemoteRecord",
    "load_reconcile_settings",
    "pull_destination",
]
