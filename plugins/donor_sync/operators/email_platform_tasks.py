"""Email platform tasks of donations_hourly: pull unsubscribes (and bounces) back into consent
before each email platform's queue, so the queue already sees them.

A few lines over the connectors' pull-back functions (no business logic here). Each records its
outcome for the run (:mod:`donor_sync.journeys.pullbacks`): the ``journeys`` task decides only the
journeys whose pull-backs are current. When the vendor fails (a :class:`DeliveryError`, after the
client's own retries) the task fails at once with :class:`PullbackFailed`, without the retry
ladder: the platform's queue and push do not run this run (its unsubscribes are not known), the
journeys that rely on it are deferred, and the other destinations go on instead of waiting hours
for the ladder. The next hourly run reads from the same watermark. Any other error (the database,
a bug) climbs the ladder as usual.
"""

from __future__ import annotations

import logging
from uuid import UUID

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)


class PullbackFailed(AirflowFailException):
    """An email platform's pull-back failed at the vendor: fail the task now, no retries (the next
    run is the retry). The message names the platform, the error class and code, never donor data."""


@task(pool="braze_api")
def pull_braze_unsubscribes_task(sync_run_id: str) -> str:
    """Airflow task: record the unsubscribes Braze holds for this run's slice of users as opt-outs."""
    from donor_sync.db import connect
    from donor_sync.delivery.connectors.braze.pullback import pull_unsubscribes
    from donor_sync.delivery.connectors.braze.subscriptions import group_purposes
    from donor_sync.delivery.contracts import BRAZE, DeliveryError
    from donor_sync.delivery.mapping import load_destination
    from donor_sync.delivery.settings import destination_enabled
    from donor_sync.hooks.braze import BrazeHook
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.journeys import pullbacks

    run_id = UUID(sync_run_id)
    task_id = "pull_braze_unsubscribes"
    with connect(StagingDbHook().conninfo()) as conn:
        if not destination_enabled(BRAZE):
            log.info("braze is disabled in include/mappings/delivery.yaml: nothing to pull back")
            pullbacks.record_disabled(conn, run_id, BRAZE, task_id=task_id)
            return sync_run_id
        groups = group_purposes(load_destination(BRAZE))
        client = BrazeHook().get_client()
        try:
            report = pull_unsubscribes(
                conn, client, groups, actor=f"dag:donations_hourly.{task_id}", run_id=run_id
            )
        except DeliveryError as exc:
            raise PullbackFailed(pullbacks.record_failed(conn, run_id, BRAZE, exc, task_id=task_id)) from exc
        pullbacks.record_succeeded(conn, run_id, BRAZE, task_id=task_id)
        conn.commit()
    log.info("Braze pull-back: %s", report.as_details())
    return sync_run_id


@task(pool="mailchimp_api")
def pull_mailchimp_unsubscribes_task(sync_run_id: str) -> str:
    """Airflow task: Mailchimp's unsubscribes, complaints and cleaned addresses since the last run
    become opt-outs and suppressions (docs/connectors/mailchimp.md)."""
    from donor_sync.db import connect
    from donor_sync.delivery.connectors.mailchimp.pullback import pull_back
    from donor_sync.delivery.contracts import MAILCHIMP, DeliveryError
    from donor_sync.delivery.settings import destination_enabled
    from donor_sync.hooks.mailchimp import MailchimpHook
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.journeys import pullbacks

    run_id = UUID(sync_run_id)
    task_id = "pull_mailchimp_unsubscribes"
    with connect(StagingDbHook().conninfo()) as conn:
        if not destination_enabled(MAILCHIMP):
            log.info("mailchimp is disabled in include/mappings/delivery.yaml: nothing to pull back")
            pullbacks.record_disabled(conn, run_id, MAILCHIMP, task_id=task_id)
            return sync_run_id
        connector = MailchimpHook().get_connector()
        try:
            report = pull_back(
                conn,
                connector.client,
                connector.settings.list_id,
                actor=f"dag:donations_hourly.{task_id}",
                run_id=run_id,
            )
        except DeliveryError as exc:
            raise PullbackFailed(
                pullbacks.record_failed(conn, run_id, MAILCHIMP, exc, task_id=task_id)
            ) from exc
        pullbacks.record_succeeded(conn, run_id, MAILCHIMP, task_id=task_id)
        conn.commit()
    log.info("Mailchimp pull-back: %s", report.as_details())
    return sync_run_id


#: The pull-back task of each email platform: what donors changed there (unsubscribes, cleaned
#: addresses, complaints) reaches consent before that platform's queue and the journeys read it.
PULLBACK_TASKS = {"mailchimp": pull_mailchimp_unsubscribes_task, "braze": pull_braze_unsubscribes_task}
