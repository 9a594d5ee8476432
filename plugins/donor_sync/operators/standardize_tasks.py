"""Standardize task: raw batches of the run into staging (a few lines over ``donor_sync.standardize``).

Stripe's expected mode (``test_payments.expect_livemode: auto`` in standardize.yaml) is resolved
here from the ``stripe`` connection's key prefix: a live key means a livemode=false payment is a
test payment; the sandbox's test key means none is. The key itself is never logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from airflow.sdk import task

if TYPE_CHECKING:
    from donor_sync.standardize.settings import StandardizeSettings

log = logging.getLogger(__name__)


def resolve_livemode(settings: StandardizeSettings) -> StandardizeSettings:
    """Return ``settings`` with every 'auto' expected mode decided from the source's connection key."""
    from donor_sync.standardize.settings import livemode_from_api_key

    for source, mode in settings.test_payments.expect_livemode.items():
        if mode != "auto" or source != "stripe":
            continue
        try:
            from donor_sync.hooks.stripe import StripeHook

            key = StripeHook().get_connection(StripeHook.default_conn_name).password or ""
        except Exception:
            log.warning(
                "no %s connection to tell live from test keys; test-mode payments count as tests", source
            )
            continue
        live = livemode_from_api_key(key)
        if live is not None:
            settings = settings.with_expect_livemode(source, live)
            log.info("%s payments are expected to be %s", source, "live" if live else "test mode")
    return settings


@task(pool="staging_db")
def standardize_task(sync_run_id: str) -> str:
    """Airflow task: standardize the run's loaded batches (and earlier ones left loaded), record
    staged/quarantined/skipped per source, and fail loudly when a batch does not reconcile.
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.standardize.run import standardize_run
    from donor_sync.standardize.settings import load_settings

    settings = resolve_livemode(load_settings())
    with connect(StagingDbHook().conninfo()) as conn:
        result = standardize_run(conn, UUID(sync_run_id), settings=settings, now=datetime.now(UTC))
    log.info(
        "standardized %s batches: %s staged, %s quarantined, %s skipped",
        len(result.batches),
        result.staged,
        result.quarantined,
        result.skipped,
    )
    return sync_run_id
