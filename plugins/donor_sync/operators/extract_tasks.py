"""Extract tasks: one per source, each a few lines over ``donor_sync.sources``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from uuid import UUID

from airflow.sdk import task

if TYPE_CHECKING:
    import psycopg

    from donor_sync.sources.extract import StreamResult

log = logging.getLogger(__name__)

#: Sources with an API extractor, in the order their tasks appear.
API_SOURCES: tuple[str, ...] = ("stripe", "donorbox", "classy")


def _extract(source: str, conn: psycopg.Connection, run_id: UUID) -> list[StreamResult]:
    if source == "stripe":
        from donor_sync.hooks.stripe import StripeHook
        from donor_sync.sources.stripe import extract_stripe

        return extract_stripe(conn, StripeHook().get_api(), run_id=run_id)
    if source == "donorbox":
        from donor_sync.hooks.donorbox import DonorboxHook
        from donor_sync.sources.donorbox import extract_donorbox

        return extract_donorbox(conn, DonorboxHook().get_api(), run_id=run_id)
    if source == "classy":
        from donor_sync.hooks.classy import ClassyHook
        from donor_sync.sources.classy import extract_classy

        return extract_classy(conn, ClassyHook().get_api(), run_id=run_id)
    raise ValueError(f"no extractor for source {source!r}")


@task(pool="source_api")
def extract_source_task(sync_run_id: str, source: str) -> str:
    """Airflow task: read one source's streams into ``raw`` and record what was read and loaded."""
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs

    run_id = UUID(sync_run_id)
    with connect(StagingDbHook().conninfo()) as conn:
        results = _extract(source, conn, run_id)
        figures = {
            "read": sum(r.read for r in results),
            "loaded": sum(r.loaded for r in results),
            "unreconciled": sum(r.unreconciled for r in results),
        }
        for metric, value in figures.items():
            runs.record_metric(conn, run_id, stage="extract", scope=source, metric=metric, value=value)
    if figures["unreconciled"]:
        log.warning(
            "%s reported %s more records than were read; the overlap re-reads them next run",
            source,
            figures["unreconciled"],
        )
    return sync_run_id
