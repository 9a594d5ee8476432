"""Email platform tasks of donations_hourly: pull unsubscribes (and bounces) back into consent
before each email platform's queue, so the queue already sees them.

A few lines over the connectors' pull-back functions (no business logic here).
"""

from __future__ import annotations

import logging
from uuid import UUID

from airflow.sdk import task

log = logging.getLogger(__name__)


@task(pool="braze_api")
def pull_braze_unsubscribes_task(sync_run_id: str) -> str:
    """Airflow task: record the unsubscribes Braze holds for this run's slice of users as opt-outs."""
    from donor_sync.db import connect
    from donor_sync.delivery.connectors.braze.pullback import pull_unsubscribes
    from donor_sync.delivery.connectors.braze.subscriptions import group_purposes
    from donor_sync.delivery.mapping import load_destination
    from donor_sync.delivery.settings import destination_enabled
    from donor_sync.hooks.braze import BrazeHook
    from donor_sync.hooks.staging_db import StagingDbHook

    if not destination_enabled("braze"):
        log.info("braze is disabled in include/mappings/delivery.yaml: nothing to pull back")
        return sync_run_id
    groups = group_purposes(load_destination("braze"))
    with connect(StagingDbHook().conninfo()) as conn:
        report = pull_unsubscribes(
            conn,
            BrazeHook().get_client(),
            groups,
            actor="dag:donations_hourly.pull_braze_unsubscribes",
            run_id=UUID(sync_run_id),
        )
        conn.commit()
    log.info("Braze pull-back: %s", report.as_details())
    return sync_run_id


@task(pool="mailchimp_api")
def pull_mailchimp_unsubscribes_task(sync_run_id: str) -> str:
    """Airflow task: Mailchimp's unsubscribes, complaints and cleaned addresses since the last run
    become opt-outs and suppressions (docs/connectors/mailchimp.md)."""
    from donor_sync.db import connect
    from donor_sync.delivery.connectors.mailchimp.pullback import pull_back
    from donor_sync.delivery.settings import destination_enabled
    from donor_sync.hooks.mailchimp import MailchimpHook
    from donor_sync.hooks.staging_db import StagingDbHook

    if not destination_enabled("mailchimp"):
        log.info("mailchimp is disabled in include/mappings/delivery.yaml: nothing to pull back")
        return sync_run_id
    connector = MailchimpHook().get_connector()
    with connect(StagingDbHook().conninfo()) as conn:
        report = pull_back(
            conn,
            connector.client,
            connector.settings.list_id,
            actor="dag:donations_hourly.pull_mailchimp_unsubscribes",
            run_id=UUID(sync_run_id),
        )
    log.info("Mailchimp pull-back: %s", report.as_details())
    return sync_run_id


#: The pull-back task of each email platform: what donors changed there (unsubscribes, cleaned
#: addresses, complaints) reaches consent before that platform's queue and the journeys read it.
PULLBACK_TASKS = {"mailchimp": pull_mailchimp_unsubscribes_task, "braze": pull_braze_unsubscribes_task}
