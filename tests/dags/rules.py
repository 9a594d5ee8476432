"""The rules every donor-sync DAG and task must follow, as a checker the tests apply.

Kept apart from the tests so the tests can also prove the checker catches a DAG that breaks them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

from donor_sync.observability.notifiers import SLACK_CONN_ID
from donor_sync.operators.retry_policy import LadderRetryPolicy
from donor_sync.operators.run_tasks import mark_run_failed
from donor_sync.retry_ladder import RETRY_LADDER

MAX_ACTIVE_RUNS = 3


def _callbacks(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _is_slack_failure_notifier(callback: Any) -> bool:
    return isinstance(callback, SlackWebhookNotifier) and callback.slack_webhook_conn_id == SLACK_CONN_ID


def dag_rule_violations(dag: Any) -> list[str]:
    """Return every rule ``dag`` breaks, one line each (empty when it follows them all)."""
    problems: list[str] = []
    name = dag.dag_id
    if not dag.tags:
        problems.append(f"{name}: no tags")
    if not (dag.doc_md or "").strip():
        problems.append(f"{name}: no doc_md")
    if dag.catchup is not False:
        problems.append(f"{name}: catchup must be False")
    if not (1 <= (dag.max_active_runs or 0) <= MAX_ACTIVE_RUNS):
        problems.append(f"{name}: max_active_runs must be between 1 and {MAX_ACTIVE_RUNS}")
    if mark_run_failed not in _callbacks(dag.on_failure_callback):
        problems.append(f"{name}: on_failure_callback must record the failure in sync.runs")
    deadlines = _callbacks(getattr(dag, "deadline", None))
    if not deadlines:
        problems.append(f"{name}: no deadline alert")
    for alert in deadlines:
        callback = getattr(alert, "callback", None)
        target = getattr(callback, "path", "") or ""
        kwargs = getattr(callback, "kwargs", {}) or {}
        if "SlackWebhookNotifier" not in str(target) or kwargs.get("slack_webhook_conn_id") != SLACK_CONN_ID:
            problems.append(f"{name}: deadline alert does not notify Slack ({SLACK_CONN_ID})")
    for task in dag.tasks:
        where = f"{name}.{task.task_id}"
        if task.owner in (None, "", "airflow"):
            problems.append(f"{where}: no owner")
        if task.execution_timeout is None:
            problems.append(f"{where}: no execution_timeout")
        elif dag.dagrun_timeout and task.execution_timeout > dag.dagrun_timeout:
            problems.append(f"{where}: execution_timeout exceeds the DAG's dagrun_timeout")
        if task.retries != len(RETRY_LADDER):
            problems.append(f"{where}: retries must be {len(RETRY_LADDER)} (one per ladder rung)")
        policy = task.retry_policy
        if not isinstance(policy, LadderRetryPolicy) or policy.ladder != RETRY_LADDER:
            problems.append(f"{where}: retry_policy must be the 1m/5m/15m/1h/4h/24h ladder")
        if not any(_is_slack_failure_notifier(cb) for cb in _callbacks(task.on_failure_callback)):
            problems.append(f"{where}: no Slack failure notifier")
    return problems


__all__ = ["MAX_ACTIVE_RUNS", "dag_rule_violations", "timedelta"]
