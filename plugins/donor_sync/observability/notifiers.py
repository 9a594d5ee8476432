"""Slack alerts through the Slack provider's notifiers: task failures and missed deadlines.

Messages carry DAG, task and run ids, the try number, the exception's class and a link to the
log; never an exception message, which could quote a donor's data.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

#: The Slack incoming-webhook connection alerts go to.
SLACK_CONN_ID = "slack_alerts"

FAILURE_TEXT = (
    ":red_circle: *{{ ti.dag_id }}.{{ ti.task_id }}* failed on try {{ ti.try_number }} "
    "({{ exception_class }}) "
    "in run `{{ run_id }}`. Log: {{ ti.log_url }}"
)

DEADLINE_TEXT = (
    ":alarm_clock: *{{ dag_run.dag_id }}* run `{{ dag_run.run_id }}` has not succeeded by its "
    "deadline ({{ deadline.deadline_time }}): "
)


class SlackFailureNotifier(SlackWebhookNotifier):
    """Slack webhook notifier whose templates may name the exception's class.

    Airflow renders notifier templates in a sandbox that forbids ``exception.__class__``, and the
    exception's message may quote donor data, so the class name is put in the context as
    ``exception_class`` and the exception itself is never rendered.
    """

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Add ``exception_class`` to the context, then render as usual."""
        exception = context.get("exception")
        context["exception_class"] = type(exception).__name__ if exception is not None else "unknown error"
        super().render_template_fields(context, jinja_env)


def failure_notifier() -> SlackFailureNotifier:
    """Return the notifier every task uses as ``on_failure_callback``."""
    return SlackFailureNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=FAILURE_TEXT)


def deadline_alert(interval: timedelta, what: str) -> DeadlineAlert:
    """Return a deadline alert to Slack for a run still unfinished ``interval`` after it was queued.

    Airflow 3 replaced SLAs with deadline alerts: the scheduler fires the callback when the run has
    not succeeded by the deadline, even if it is still running or already failed.

    :param what: one line saying what is late, e.g. "gifts are not in the CRMs yet".
    """
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=interval,
        callback=AsyncCallback(
            SlackWebhookNotifier,
            kwargs={"slack_webhook_conn_id": SLACK_CONN_ID, "text": DEADLINE_TEXT + what},
        ),
    )
