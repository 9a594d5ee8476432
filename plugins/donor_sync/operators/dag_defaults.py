"""What every donor-sync DAG and task shares: owner, retries on the ladder, timeouts, alerts."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum

from donor_sync.observability.logging import bind_task_context
from donor_sync.observability.notifiers import failure_notifier, success_notifier
from donor_sync.operators.retry_policy import LADDER_POLICY
from donor_sync.retry_ladder import FAIL_FAST_ENV

OWNER = "data-team"
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
#: Tasks that touch vendors are bounded by this unless they set their own.
DEFAULT_TASK_TIMEOUT = timedelta(minutes=30)


def default_args(*, execution_timeout: timedelta = DEFAULT_TASK_TIMEOUT) -> dict[str, Any]:
    """Return the ``default_args`` of a donor-sync DAG.

    Every task: the data team as owner, six retries on the 1m/5m/15m/1h/4h/24h ladder, an
    execution timeout, and a Slack notification when it finally fails. With
    ``DONOR_SYNC_FAIL_FAST=1`` (demo and tests only) tasks do not retry.
    """
    fail_fast = os.environ.get(FAIL_FAST_ENV, "") == "1"
    return {
        "owner": OWNER,
        "retries": 0 if fail_fast else len(LADDER_POLICY.ladder),
        "retry_policy": LADDER_POLICY,
        "execution_timeout": execution_timeout,
        "on_failure_callback": [failure_notifier()],
        # Ends the task's failure incident, if one is open (one indexed query; Slack only then).
        "on_success_callback": [success_notifier()],
        "on_execute_callback": [bind_task_context],  # run, task and record ids on every log line
    }
