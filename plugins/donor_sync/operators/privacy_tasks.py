"""Tasks of the ``privacy_requests`` DAG: process due requests, check deadlines (thin over the library).

Airflow and database code is imported inside the callables so that parsing the DAG stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import task

log = logging.getLogger(__name__)

ACTOR = "dag:privacy_requests"


def privacy_keys() -> Any:
    """Return the key source: the ``privacy_keys`` connection first, then the environment and local file."""
    from donor_sync.hooks.privacy_keys import install
    from donor_sync.privacy.keys import default_key_source

    install()
    return default_key_source()


def process_requests(sync_run_id: str, params: Mapping[str, Any]) -> dict[str, int]:
    """Carry out the due requests (or ``params['request_ids']``) with every destination's eraser."""
    from uuid import UUID

    from donor_sync.db import connect
    from donor_sync.hooks.privacy_erasers import erasers_for  # type: ignore[import-not-found,unused-ignore]
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs
    from donor_sync.privacy.requests.process import process_requests as process

    ids = list(params.get("request_ids") or []) or None
    with connect(StagingDbHook().conninfo()) as conn:
        report = process(conn, erasers=erasers_for(), keys=privacy_keys(), request_ids=ids, actor=ACTOR)
        figures = {s: report.count(s) for s in ("completed", "failed", "rejected", "in_progress")}
        for metric, value in figures.items():
            runs.record_metric(
                conn, UUID(sync_run_id), stage="privacy", metric=f"requests_{metric}", value=value
            )
        conn.commit()
    for request_id, error in report.errors.items():
        log.warning("privacy request %s: %s", request_id, error)
    return figures


def check_deadlines(sync_run_id: str | None = None) -> int:
    """Alert (Slack) on requests near or past their deadline: the ``erasure_deadline`` incidents.

    One message when a request comes within ``days_before`` (alerts.yaml, 7) of its deadline, one
    when it is overdue, one when it is done; the run's check_alerts task meets the same incidents,
    so nothing is posted twice. Returns the messages sent.
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability.alerting.rules import ERASURE_DEADLINE
    from donor_sync.operators.alert_tasks import check_alerts

    with connect(StagingDbHook().conninfo()) as conn:
        report = check_alerts(conn, sync_run_id, kinds={ERASURE_DEADLINE})
    log.info("deadline alerts: %s", report.summary())
    return report.delivery.messages


@task(task_id="process_requests", pool="staging_db", execution_timeout=timedelta(minutes=25))
def process_requests_task(sync_run_id: str, **context: Any) -> str:
    """Airflow task: carry out erasure, export and consent-change requests, receipts per system."""
    figures = process_requests(sync_run_id, context.get("params") or {})
    log.info("privacy requests: %s", figures)
    return sync_run_id


@task(task_id="check_deadlines", execution_timeout=timedelta(minutes=5))
def check_deadlines_task(sync_run_id: str) -> str:
    """Airflow task: the 30-day deadline alerts (near, overdue, done: one message each per request)."""
    log.info("%s deadline alert message(s) sent", check_deadlines(sync_run_id))
    return sync_run_id


@task(task_id="expire_consent", pool="staging_db", execution_timeout=timedelta(minutes=30))
def expire_consent_task(sync_run_id: str) -> str:
    """Airflow task: recompute the consent of donors whose deciding event has expired (audited)."""
    from uuid import UUID

    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.observability import runs
    from donor_sync.privacy.consent.state import refresh_expired

    with connect(StagingDbHook().conninfo()) as conn:
        actor = "dag:donors_nightly.expire_consent"
        refreshed = refresh_expired(conn, actor=actor, run_id=UUID(sync_run_id))
        changed = len(refreshed.changed_donors)
        runs.record_metric(conn, UUID(sync_run_id), stage="consent", metric="donors_expired", value=changed)
        conn.commit()
    log.info("consent: %s donor(s) changed by expiry", len(refreshed.changed_donors))
    return sync_run_id


@task(task_id="anchor_audit_log", execution_timeout=timedelta(minutes=30))
def anchor_audit_log_task(sync_run_id: str) -> str:
    """Airflow task: verify the audit chain since the last anchor, then anchor its head.

    The anchor token is written to this task's log, a copy outside the staging database, so a
    rewrite of the whole chain (and of the anchors table) is still detectable (docs/audit.md).
    A broken chain fails the task: the data team hears of it from the failure alert.
    """
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook
    from donor_sync.privacy.audit_chain import anchor_head, verify_chain

    with connect(StagingDbHook().conninfo()) as conn:
        report = verify_chain(conn)
        if not report.ok:
            raise RuntimeError(f"the audit log's hash chain is broken: {report.summary()}")
        anchor = anchor_head(conn, "dag:donors_nightly.anchor_audit_log")
        conn.commit()
    log.info("audit chain verified (%s rows); anchor %s", report.rows_checked, anchor.token)
    return sync_run_id
