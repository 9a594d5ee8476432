"""donors_nightly's reconcile tasks: staff edits and merges pulled back from each CRM, drift counted,
then every record recomputed into the outbox (the nightly full pass: mirror removals, drift fixes)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from airflow.sdk import task

from donor_sync.delivery.contracts import HUBSPOT, SALESFORCE

log = logging.getLogger(__name__)

#: CRMs donors_nightly reconciles, with the pool of each vendor.
CRM_POOLS: dict[str, str] = {SALESFORCE: "salesforce_api", HUBSPOT: "hubspot_api"}


def reader_for(destination: str) -> Any:
    """Return the reconcile reader of ``destination`` over its Airflow connection."""
    if destination == SALESFORCE:
        from donor_sync.delivery.connectors.salesforce.reader import SalesforceReader
        from donor_sync.hooks.salesforce_npsp import SalesforceNpspHook

        return SalesforceReader(SalesforceNpspHook().get_connector().client)
    if destination == HUBSPOT:
        from donor_sync.delivery.connectors.hubspot.reader import HubSpotReader
        from donor_sync.hooks.hubspot import HubSpotHook

        return HubSpotReader(HubSpotHook().get_connector())
    raise ValueError(f"no reconcile reader for {destination!r}")


@task
def reconcile_task(sync_run_id: str, destination: str) -> str:
    """Airflow task: pull the CRM's changes since its watermark into core (staff-owned fields through
    survivorship, merges made in the CRM followed), count drift, then queue every record of the
    destination again (full recompute: what drifted or left core is fixed by the next push)."""
    from donor_sync.db import connect
    from donor_sync.delivery import run as delivery
    from donor_sync.delivery.outbox import Scope
    from donor_sync.delivery.reconcile import load_reconcile_settings, pull_destination
    from donor_sync.delivery.settings import destination_enabled
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs
    from donor_sync.resolve import load_resolve_rules

    if not destination_enabled(destination):
        log.info("%s is disabled in include/mappings/delivery.yaml: nothing to reconcile", destination)
        return sync_run_id
    run_id = UUID(sync_run_id)
    settings = load_reconcile_settings().destinations[destination]
    with connect(StagingDbHook().conninfo()) as conn:
        report = pull_destination(
            conn,
            reader_for(destination),
            destination,
            settings,
            rules=load_resolve_rules(),
            actor=f"crm:{destination}",
            now=datetime.now(UTC),
        )
        for metric, value in report.metrics().items():
            runs.record_metric(conn, run_id, stage="reconcile", scope=destination, metric=metric, value=value)
        conn.commit()
        queued = delivery.queue(
            conn,
            destination,
            run_id=run_id,
            actor=f"dag:donors_nightly.reconcile_{destination}",
            scope=Scope.full(),
        )
    log.info(
        "%s: %s changed records read (%s matched, %s unknown), %s merges, %s golden records changed,"
        " drift %s; %s records queued by the full pass",
        destination,
        report.read,
        report.matched,
        report.unmatched,
        report.merges,
        report.donors_changed,
        dict(report.drift),
        queued.queued,
    )
    return sync_run_id
