"""Slack alerts through the Slack provider's notifiers: task failures and missed deadlines, as incidents.

* :func:`failure_notifier` (every task's ``on_failure_callback``) records the incident
  ``task_failed:<dag>.<task>`` and posts only when it opens: a task failing every hour posts
  once. :func:`success_notifier` (``on_success_callback``) resolves it, with one message, when the
  task next succeeds; when nothing is open it costs one indexed UPDATE.
* :func:`deadline_alert` (``DAG(deadline=...)``) runs :class:`DeadlineSlackWebhookNotifier` in
  the triggerer when a run is not done by its deadline; it records ``deadline_missed:<dag>`` and
  posts only when it opens. ``resolve_deadline_incident`` resolves it when a run succeeds.

If the staging database cannot be reached, a failure or a missed deadline is posted anyway, as a
plain message: better a repeated alert than a missed one. Messages carry DAG, task and run ids,
the try number, the exception's class, the log and run links and the runbook; never an
exception's message, which could quote a donor's data.

Importing this module is cheap (DAG files do): the database and the alerting library are
imported only when a callback runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

if TYPE_CHECKING:
    import psycopg

    from donor_sync.observability.alerting import Links
    from donor_sync.observability.alerting.store import Notice

log = logging.getLogger(__name__)

#: The Slack incoming-webhook connection alerts go to.
SLACK_CONN_ID = "slack_alerts"

FAILURE_TEXT = (
    "*{{ ti.dag_id }}.{{ ti.task_id }}* failed on try {{ ti.try_number }} "
    "({{ exception_class }}) "
    "in run `{{ run_id }}`. Log: {{ ti.log_url }}"
)
SUCCESS_TEXT = "*{{ ti.dag_id }}.{{ ti.task_id }}* succeeded in run `{{ run_id }}`"
DEADLINE_TEXT = (
    "*{{ dag_run.dag_id }}* run `{{ dag_run.dag_run_id }}` has not succeeded by its "
    "deadline ({{ deadline.deadline_time }}): "
)


def _staging_connection() -> psycopg.Connection:
    """Open the staging database through the ``donor_sync_db`` connection."""
    from donor_sync.db import connect
    from donor_sync.hooks.staging_db import StagingDbHook

    return connect(StagingDbHook().conninfo(), application_name="donor-sync-alerts")


async def _staging_conninfo_async() -> str:
    """Return the staging database's conninfo without blocking the triggerer's event loop."""
    from airflow.providers.common.compat.connection import get_async_connection

    from donor_sync.hooks.staging_db import StagingDbHook, conninfo_of

    return conninfo_of(await get_async_connection(StagingDbHook.default_conn_name))


def _links() -> Links:
    """Return the message links; plain ones (no run URL) when alerts.yaml cannot be read."""
    from donor_sync.observability.alerting import Links
    from donor_sync.observability.alerts import airflow_base_url, airflow_links

    try:
        return airflow_links()
    except Exception as exc:
        log.warning("alert links from defaults (%s)", type(exc).__name__)
        return Links(airflow_base_url=airflow_base_url())


def _ids(context: Any) -> tuple[str, str, str | None]:
    ti = context.get("ti")
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    return str(getattr(ti, "dag_id", "unknown")), str(getattr(ti, "task_id", "unknown")), run_id


def _slack_hook(notifier: SlackWebhookNotifier, default_handlers: Callable[[], Any]) -> SlackWebhookHook:
    """Return the notifier's Slack webhook hook, with ``default_handlers()`` unless it was given some."""
    from donor_sync.observability.alerts import slack_client_logger

    return SlackWebhookHook(
        slack_webhook_conn_id=notifier.slack_webhook_conn_id,
        proxy=notifier.proxy,
        timeout=notifier.timeout,
        retry_handlers=notifier.retry_handlers or default_handlers(),
        logger=slack_client_logger(),
    )


class _IncidentNotifier(SlackWebhookNotifier):
    """A Slack webhook notifier whose hook waits out Slack's 429 answers (Retry-After)."""

    @cached_property
    def hook(self) -> SlackWebhookHook:
        """Slack Incoming Webhook hook, with retries on connection errors and rate limits."""
        from donor_sync.observability.alerts import retry_handlers

        return _slack_hook(self, retry_handlers)

    def _send(self, text: str) -> bool:
        self.hook.send(text=text)
        return True

    def _post_fallback(self, kind: str, dag_id: str, run_id: str | None) -> None:
        from donor_sync.observability.alerting import Links
        from donor_sync.observability.alerting.messages import fallback_text
        from donor_sync.observability.alerts import airflow_base_url

        links = Links(airflow_base_url=airflow_base_url())
        self.hook.send(
            text=fallback_text(
                self.text, "sync-failure.md", links, kind=kind, run=links.run_ref(dag_id, run_id)
            )
        )


class SlackFailureNotifier(_IncidentNotifier):
    """Task-failure notifier: one Slack message per incident ``task_failed:<dag>.<task>``.

    Airflow renders notifier templates in a sandbox that forbids ``exception.__class__``, and the
    exception's message may quote donor data, so the class name is put in the context as
    ``exception_class`` and the exception itself is never rendered. The rendered ``text`` is the
    incident's summary.
    """

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Add ``exception_class`` to the context, then render as usual."""
        exception = context.get("exception")
        context["exception_class"] = type(exception).__name__ if exception is not None else "unknown error"
        super().render_template_fields(context, jinja_env)

    def notify(self, context: Any) -> None:
        """Record the failure; post it if the incident is new (or its message still owed)."""
        from donor_sync.observability.alerting import record_task_failure
        from donor_sync.observability.alerting.rules import TASK_FAILED

        dag_id, task_id, run_id = _ids(context)
        try:
            with _staging_connection() as conn:
                opened, delivery = record_task_failure(
                    conn,
                    dag_id=dag_id,
                    task_id=task_id,
                    airflow_run_id=run_id,
                    summary=self.text,
                    send=self._send,
                    links=_links(),
                )
        except Exception as exc:
            log.warning(
                "task failure not recorded as an incident (%s); posting it plainly", type(exc).__name__
            )
            self._post_fallback(TASK_FAILED, dag_id, run_id)
            return
        log.info(
            "task failure incident %s: %s message(s) sent",
            "opened" if opened else "continuing",
            delivery.messages,
        )


class SlackSuccessNotifier(_IncidentNotifier):
    """Task-success notifier: resolves the task's failure incident, posting one resolution.

    When no incident is open (nearly always) it costs one indexed UPDATE. It never fails the task:
    a database or Slack problem is logged and the incident stays open until the next success.
    """

    def notify(self, context: Any) -> None:
        """Resolve ``task_failed:<dag>.<task>`` if open, and post the resolution."""
        from donor_sync.observability.alerting import record_task_success

        dag_id, task_id, run_id = _ids(context)
        try:
            with _staging_connection() as conn:
                resolved = record_task_success(
                    conn,
                    dag_id=dag_id,
                    task_id=task_id,
                    airflow_run_id=run_id,
                    summary=self.text,
                    send=self._send,
                    links=_links,
                )
        except Exception as exc:
            log.warning("task success not checked against open incidents (%s)", type(exc).__name__)
            return
        if resolved:
            log.info("task failure incident of %s.%s resolved", dag_id, task_id)


class DeadlineSlackWebhookNotifier(SlackWebhookNotifier):
    """Missed-deadline notifier for ``AsyncCallback`` (runs in the triggerer).

    Its context is the simplified one of deadline callbacks, ``{"dag_run": <DAGRunResponse as
    JSON>, "deadline": {"id", "deadline_time"}}``. It records ``deadline_missed:<dag>`` and posts
    only when that incident opens (or its message is still owed); later misses of the same DAG
    before a run succeeds are counted, not posted. The database work runs in a thread.
    """

    @cached_property
    def hook(self) -> SlackWebhookHook:
        """Slack Incoming Webhook hook whose async client waits out 429 answers."""
        from donor_sync.observability.alerts import async_retry_handlers

        return _slack_hook(self, async_retry_handlers)

    @staticmethod
    def _run_ids(context: Any) -> tuple[str, str | None]:
        dag_run = context.get("dag_run") or {}
        if not isinstance(dag_run, dict):  # a DagRun object (SyncCallback, tests)
            return str(dag_run.dag_id), getattr(dag_run, "run_id", None)
        return str(dag_run.get("dag_id", "unknown")), dag_run.get("dag_run_id") or dag_run.get("run_id")

    def _open_and_claim(
        self, conninfo: str, dag_id: str, run_id: str | None
    ) -> tuple[Any, list[Notice], Links]:
        """Record the incident (committed) and lock its opening message if owed (transaction left open)."""
        from donor_sync.db import connect
        from donor_sync.observability.alerting import open_event_incident
        from donor_sync.observability.alerting.rules import DEADLINE_MISSED
        from donor_sync.observability.alerting.store import claim_pending

        links = _links()
        conn = connect(conninfo, application_name="donor-sync-alerts")
        try:
            incident_id, _ = open_event_incident(
                conn,
                kind=DEADLINE_MISSED,
                scope=dag_id,
                summary=self.text,
                dag_id=dag_id,
                airflow_run_id=run_id,
            )
            notices = claim_pending(conn, incident_ids=[incident_id], limit=1)
        except Exception:
            conn.close()
            raise
        return conn, notices, links

    async def async_notify(self, context: Any) -> None:
        """Record the missed deadline and post it if the incident is new."""
        from donor_sync.observability.alerting.engine import finish_delivery
        from donor_sync.observability.alerting.messages import fallback_text, render
        from donor_sync.observability.alerting.rules import DEADLINE_MISSED

        dag_id, run_id = self._run_ids(context)
        try:
            conninfo = await _staging_conninfo_async()
            conn, notices, links = await asyncio.to_thread(self._open_and_claim, conninfo, dag_id, run_id)
        except Exception as exc:
            log.warning(
                "missed deadline not recorded as an incident (%s); posting it plainly", type(exc).__name__
            )
            plain = await asyncio.to_thread(_links)
            text = fallback_text(
                self.text, "sync-failure.md", plain, kind=DEADLINE_MISSED, run=plain.run_ref(dag_id, run_id)
            )
            await self.hook.async_send(text=text)
            return
        try:
            if not notices:
                log.info("deadline incident of %s continues: nothing posted", dag_id)
                return
            error = None
            try:
                await self.hook.async_send(text=render(notices[0], links))
            except Exception as exc:
                log.warning(
                    "deadline alert not delivered (%s); the next alert check sends it", type(exc).__name__
                )
                error = type(exc).__name__
            await asyncio.to_thread(finish_delivery, conn, notices, error)
        finally:
            await asyncio.to_thread(conn.close)

    def notify(self, context: Any) -> None:
        """Synchronous variant (a ``SyncCallback``): the same incident, posted with a blocking client."""
        from donor_sync.observability.alerting.engine import finish_delivery
        from donor_sync.observability.alerting.messages import fallback_text, render
        from donor_sync.observability.alerting.rules import DEADLINE_MISSED
        from donor_sync.observability.alerts import slack_sender

        send = slack_sender(self.slack_webhook_conn_id)
        dag_id, run_id = self._run_ids(context)
        try:
            conn, notices, links = self._open_and_claim(_staging_dsn(), dag_id, run_id)
        except Exception as exc:
            log.warning(
                "missed deadline not recorded as an incident (%s); posting it plainly", type(exc).__name__
            )
            plain = _links()
            send(
                fallback_text(
                    self.text,
                    "sync-failure.md",
                    plain,
                    kind=DEADLINE_MISSED,
                    run=plain.run_ref(dag_id, run_id),
                )
            )
            return
        with conn:
            if notices:
                delivered = send(render(notices[0], links))
                finish_delivery(conn, notices, None if delivered else "send_failed")


def _staging_dsn() -> str:
    from donor_sync.hooks.staging_db import StagingDbHook

    return StagingDbHook().conninfo()


def failure_notifier() -> SlackFailureNotifier:
    """Return the notifier every task uses as ``on_failure_callback``."""
    return SlackFailureNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=FAILURE_TEXT)


def success_notifier() -> SlackSuccessNotifier:
    """Return the notifier every task uses as ``on_success_callback`` (resolves failure incidents)."""
    return SlackSuccessNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=SUCCESS_TEXT)


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
            DeadlineSlackWebhookNotifier,
            kwargs={"slack_webhook_conn_id": SLACK_CONN_ID, "text": DEADLINE_TEXT + what},
        ),
    )
