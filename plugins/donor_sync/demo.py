"""``make demo``: run donations_hourly end to end with ``airflow dags test`` and summarise it.

The summary is read back from ``sync.runs`` and ``sync.run_metrics`` after the run: every figure
is what the stages recorded, and a stage that did not run says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from donor_sync.db import connect
from donor_sync.errors import DonorSyncError
from donor_sync.local_airflow import run_dag_test
from donor_sync.observability.runs import format_summary, latest_run_id, load_summary
from donor_sync.progress import step
from donor_sync.retry_ladder import FAIL_FAST_ENV

DEMO_DAG = "donations_hourly"


def run_demo(env: Mapping[str, str]) -> str:
    """Run the main DAG once in-process and return the run summary to print."""
    with connect(env["DONOR_SYNC_DB_URL"]) as conn:
        before = latest_run_id(conn, DEMO_DAG)
    # A failing task must end the demo, not wait on the retry ladder (a minute up to a day).
    demo_env = {**env, FAIL_FAST_ENV: "1"}
    with step(f"airflow dags test {DEMO_DAG}"):
        run_dag_test(DEMO_DAG, demo_env)
    with connect(env["DONOR_SYNC_DB_URL"]) as conn:
        run_id = latest_run_id(conn, DEMO_DAG)
        if run_id is None or run_id == before:
            raise DonorSyncError(f"{DEMO_DAG} ran but recorded no new run in sync.runs")
        summary = load_summary(conn, run_id)
    if summary.status != "success":
        raise DonorSyncError(f"{DEMO_DAG} run {summary.airflow_run_id} ended with status {summary.status}")
    return format_summary(summary)
