"""Posting to the Slack alerts connection from inside a task, and the links alerts carry.

Incidents (threshold breaches, circuit breakers, erasure deadlines, task failures, missed
deadlines) go through :mod:`donor_sync.observability.alerting`, which posts with
:func:`slack_sender`. :func:`send_alert` stays for the few one-off notices that are not incidents
(a vendor's deprecation signal, the blast-radius guard stopping a run). Texts carry names,
classes, counts and ids, never donor data or secrets. A message that cannot be sent is logged
(its exception class) and reported as not delivered: a Slack outage never fails a push.

The Slack provider's hook retries only connection errors by default; here it also waits out
Slack's 429 answers for as long as their ``Retry-After`` says (incoming webhooks allow about one
message a second), a few times, before giving up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from donor_sync.observability.notifiers import SLACK_CONN_ID

if TYPE_CHECKING:
    from donor_sync.observability.alerting import Links, Sender

log = logging.getLogger(__name__)

RUNBOOKS = "docs/runbooks"
#: 429 answers waited out (each for its Retry-After) before a message counts as not delivered.
RATE_LIMIT_RETRIES = 5
#: Connection errors retried.
CONNECTION_RETRIES = 2


def retry_handlers() -> list[Any]:
    """Return the Slack SDK retry handlers for the synchronous webhook client."""
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
    )

    return [
        ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
    ]


def async_retry_handlers() -> list[Any]:
    """Return the same retry handlers for the asynchronous client (deadline callbacks, triggerer)."""
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
    )

    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
    ]


def slack_client_logger() -> logging.Logger:
    """Return the logger the Slack SDK's webhook client writes to: warnings and errors only.

    At INFO the SDK logs "Going to retry the same request: POST <url>", and an incoming
    webhook's URL is its secret. The provider's hook would give the client Airflow's hook logger,
    which masks the connection's password inside a task but not in the CLI or the triggerer.
    """
    logger = logging.getLogger("donor_sync.observability.slack_client")
    logger.setLevel(logging.WARNING)
    return logger


def slack_sender(conn_id: str = SLACK_CONN_ID) -> Sender:
    """Return ``send(text) -> bool`` posting to the Slack webhook connection ``conn_id``."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(
        slack_webhook_conn_id=conn_id, retry_handlers=retry_handlers(), logger=slack_client_logger()
    )

    def send(text: str) -> bool:
        try:
            hook.send(text=text)
        except Exception as exc:
            log.warning("could not send a Slack alert (%s)", type(exc).__name__)
            return False
        return True

    return send


def send_alert(text: str, *, conn_id: str = SLACK_CONN_ID) -> bool:
    """Post a one-off ``text`` to the Slack alerts connection; return whether it was delivered."""
    return slack_sender(conn_id)(text)


def airflow_base_url() -> str:
    """Return the Airflow UI's address, Airflow's ``[api] base_url`` (as the task log links use)."""
    from airflow.configuration import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/")


def airflow_links(rules: Any = None) -> Links:
    """Return the links of alert messages: runs in this Airflow's UI, runbooks per alerts.yaml."""
    from donor_sync.observability.alerting import Links, load_alert_rules

    rules = rules or load_alert_rules()
    return Links(airflow_base_url=airflow_base_url(), docs_base_url=rules.slack.docs_base_url)
