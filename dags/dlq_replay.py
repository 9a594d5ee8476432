"""
### dlq_replay

Manual only: replay, edit or discard dead letters chosen by the params below. Replayed records
go back through the outbox (and the consent gate) rather than straight to the vendor, so a
replay can never send what consent no longer allows.

**Stages live today:** run bookkeeping (`open_run` → `close_run`); selecting and acting on dead
letters is wired in between when the delivery engine lands.

**Alerts.** Task failures go to the `slack_alerts` connection; a replay still running an hour
after it was queued raises a deadline alert there.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from donor_sync.observability.notifiers import deadline_alert
from donor_sync.operators.dag_defaults import START_DATE, default_args
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
            enum=["replay", "discard"],
            title="Action",
            description="replay: back through the outbox; discard: close with a note.",
        ),
        "destination": Param(
            None,
            type=["null", "string"],
            enum=[None, "salesforce", "hubspot", "mailchimp", "braze", "webhooks"],
            title="Destination",
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
        "note": Param("", type="string", maxLength=500, title="Note for the audit log"),
    },
):
    close_run_task(open_run_task())
