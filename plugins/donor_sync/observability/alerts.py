"""One-off Slack alerts from inside a task (circuit breakers, vendor deprecations, a stopped run).

Task failures and missed deadlines go through the notifiers in
:mod:`donor_sync.observability.notifiers`; this is for incidents a task notices while it keeps
going. Texts carry destination names, classes, counts and run ids, never donor data or secrets.
An alert that cannot be sent is logged and swallowed: a Slack outage must not fail a push.
"""

from __future__ import annotations

import logging

from donor_sync.observability.notifiers import SLACK_CONN_ID

log = logging.getLogger(__name__)

RUNBOOKS = "docs/runbooks"


def send_alert(text: str, *, conn_id: str = SLACK_CONN_ID) -> bool:
    """Post ``text`` to the Slack alerts connection; return whether it was delivered."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    try:
        SlackWebhookHook(slack_webhook_conn_id=conn_id).send(text=text)
    except Exception as exc:
        log.warning("could not send a Slack alert (%s)", type(exc).__name__)
        return False
    return True
