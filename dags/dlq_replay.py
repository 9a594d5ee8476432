"""
### dlq_replay

Manual only: replay, edit or discard dead letters chosen by the params below. Replayed records
go back through the outbox (and its push: ladder, circuit breaker, dead letters) rather than
straight to the vendor.

**Stages:** `open_run` → `dead_letters` (the letters chosen by destination, error class and
ids, destination `webhooks` meaning every event subscriber's `webhook_<name>`: `replay` re-queues
each payload in `sync.outbox`, `edit` applies the `edits` param (field -> value) first, `discard`
closes them with the note; every action is audited, a letter replay must refuse -- consent-blocked,
its donor erased or merged away -- is left open and logged) → `push_salesforce`, `push_hubspot`
(send what is due now, replays included; subscribers' replays go out with the next `push_events`
of `donations_hourly`) → `close_run`.
The CLI does the same: `donor-sync dlq list|show|replay|edit|discard`.

**Alerts.** Task failures go to the `slack_alerts` connection; a replay still running an hour
after it was queued raises a deadline alert there.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from donor_sync.delivery.contracts import DEAD_LETTER_DESTINATIONS
from donor_sync.observability.notifiers import deadline_alert
from donor_sync.operators.dag_defaults import START_DATE, default_args
from donor_sync.operators.delivery_tasks import DESTINATION_POOLS, push_task
from donor_sync.operators.dlq_tasks import dead_letter_action_task
from donor_sync.operators.health_tasks import check_health_task
from donor_sync.operators.run_tasks import close_run_task, mark_run_failed, open_run_task

with DAG(
    dag_id="dlq_replay",
    description="Replay, edit or discard dead letters chosen by params",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(minutes=30)),
    dagrun_timeout=timedelta(hours=2),
    tags=["donor-sync", "dead-letters", "manual"],
    doc_md=__doc__,
    on_failure_callback=mark_run_failed,
    deadline=deadline_alert(timedelta(hours=1), "a dead-letter replay is taking too long"),
    params={
        "action": Param(
            "replay",
            type="string",
            enum=["replay", "edit", "discard"],
            title="Action",
            description="replay: back through the outbox; edit: apply `edits`, then replay; "
            "discard: close with a note.",
        ),
        "destination": Param(
            None,
            type=["null", "string"],
            enum=[None, *DEAD_LETTER_DESTINATIONS],
            title="Destination",
            description="webhooks: every event subscriber's letters (destinations webhook_<name>); "
            "they go out with the next push_events of donations_hourly.",
        ),
        "error_class": Param(
            None,
            type=["null", "string"],
            enum=[
                None,
                "transient",
                "rate_limited",
                "auth",
                "validation",
                "duplicate_rule",
                "consent_blocked",
                "permanent",
            ],
            title="Error class",
        ),
        "dead_letter_ids": Param([], type="array", items={"type": "integer"}, title="Dead letter ids"),
        "edits": Param(
            {},
            type="object",
            title="Edits",
            description="For action edit: payload field -> corrected value, applied to every chosen letter.",
        ),
        "note": Param("", type="string", maxLength=500, title="Note for the audit log"),
    },
):
    sync_run = open_run_task()
    acted = dead_letter_action_task(sync_run)
    closed = close_run_task(sync_run)
    # Whatever became of the run: record its health figures and judge the alert rules.
    health = check_health_task(sync_run)
    health >> closed
    for destination, pool in DESTINATION_POOLS.items():
        pushed = push_task.override(task_id=f"push_{destination}", pool=pool)(sync_run, destination)
        acted >> pushed >> [health, closed]
