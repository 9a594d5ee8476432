"""dlq_replay's task: replay, edit or discard the dead letters its params choose (over
:func:`donor_sync.delivery.dlq.replay_selection`)."""

from __future__ import annotations

import logging
from uuid import UUID

from airflow.sdk import get_current_context, task

log = logging.getLogger(__name__)


@task(pool="staging_db")
def dead_letter_action_task(sync_run_id: str) -> str:
    """Airflow task: act on the dead letters chosen by destination, error class and ids; replayed
    ones go back to the outbox (the push tasks after this one send them), each action audited as
    ``dag:dlq_replay`` with the run's note."""
    from donor_sync.db import connect
    from donor_sync.delivery.dlq import replay_selection
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs

    params = dict(get_current_context().get("params") or {})
    run_id = UUID(sync_run_id)
    with connect(StagingDbHook().conninfo()) as conn:
        report = replay_selection(
            conn,
            destination=params.get("destination"),
            error_class=params.get("error_class"),
            ids=list(params.get("dead_letter_ids") or []) or None,
            action=str(params.get("action") or "replay"),
            actor="dag:dlq_replay",
            note=params.get("note") or None,
            edits=params.get("edits") or None,
            run_id=run_id,
        )
        for metric, value in (
            ("selected", report.selected),
            ("changed", report.changed),
            ("refused", len(report.refused)),
        ):
            runs.record_metric(conn, run_id, stage="dlq", metric=metric, value=value)
        conn.commit()
    for letter, reason in sorted(report.refused.items()):
        log.warning("dead letter %s left as it is: %s", letter, reason)
    log.info(
        "%s: %s selected, %s changed, %s refused",
        report.action,
        report.selected,
        report.changed,
        len(report.refused),
    )
    return sync_run_id
