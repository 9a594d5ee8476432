"""The Slack alerts connection: a well-formed incoming webhook, and (asked) one test message.

The URL is built by the Slack provider's own hook, exactly as alerts build it (a full URL in the
password, or a token under the host). It must be https with an incoming webhook's path
(``/services/T…/B…/…``, or a workflow's ``/triggers/…``). No message is posted unless
``post`` is set (``--post-slack``): a smoke test must not page anyone by default. The URL is a
secret and is never shown; only its host is.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from donor_sync.smoke.checks import Check, CheckFailed, Outcome, passed
from donor_sync.smoke.common import host_of

__all__ = ["SLACK_CONN_ID", "SMOKE_MESSAGE", "slack_check", "webhook_problem"]

#: The connection alerts go to (``donor_sync.observability.notifiers.SLACK_CONN_ID``).
SLACK_CONN_ID = "slack_alerts"
SMOKE_MESSAGE = ":white_check_mark: donor-sync smoke test: alerts from this deployment reach this channel."
SLACK_HOST = "hooks.slack.com"
_SERVICES = re.compile(r"^/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+$")
_TRIGGERS = re.compile(r"^/triggers/T[A-Za-z0-9]+/\d+/[A-Za-z0-9]+$")
#: Slack's plain-text refusals and what to do about each.
_REFUSALS = {
    "no_service": "the webhook was revoked or its app uninstalled: create a new incoming webhook",
    "invalid_token": "the webhook's token is wrong: paste the whole incoming-webhook URL",
    "channel_not_found": "the webhook's channel is gone: create a webhook for an existing channel",
    "channel_is_archived": "the webhook's channel is archived: unarchive it or create a new webhook",
    "action_prohibited": "a workspace admin restricted this webhook",
    "rate_limited": "Slack is rate limiting this webhook (1 message/s): try again in a minute",
}


def webhook_problem(url: str) -> str | None:
    """Return what is wrong with an incoming-webhook URL, or None when it is well formed."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "the webhook URL is not https"
    if not parts.hostname:
        return "the webhook URL has no host"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "the webhook URL carries credentials, a query or a fragment an incoming webhook never has"
    if not (_SERVICES.match(parts.path) or _TRIGGERS.match(parts.path)):
        return "the webhook URL's path is not an incoming webhook's (/services/T…/B…/…)"
    return None


def _post(client: object, host: str, conn_id: str) -> Outcome:
    try:
        response = client.send(text=SMOKE_MESSAGE)  # type: ignore[attr-defined]
    except Exception as exc:  # urllib's URLError (TLS, DNS, refused) and the like
        raise CheckFailed(
            f"cannot reach {host} ({type(exc).__name__}); check the network and the CA this machine trusts"
        ) from None
    body = str(getattr(response, "body", "") or "").strip()
    if response.status_code == 200 and body == "ok":
        return passed(f"test message delivered through {host}")
    hint = _REFUSALS.get(body, "see Slack's incoming-webhook errors")
    raise CheckFailed(
        f"Slack refused the test message (HTTP {response.status_code} {body[:40]}): {hint}; "
        f"then update Airflow connection {conn_id!r}"
    )


def slack_check(conn_id: str = SLACK_CONN_ID, *, post: bool = False) -> Check:
    """Return the check of the Slack alerts connection (``webhook``, or ``post`` when it posts)."""

    def run() -> Outcome:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        try:
            client = SlackWebhookHook(slack_webhook_conn_id=conn_id).get_conn()
        except Exception as exc:
            raise CheckFailed(
                f"Airflow connection {conn_id!r} gives no webhook URL ({type(exc).__name__}): put the "
                "incoming-webhook URL in its password"
            ) from None
        url = str(client.url)
        host = host_of(url)
        problem = webhook_problem(url)
        if problem:
            raise CheckFailed(f"{problem}; fix the password of Airflow connection {conn_id!r}")
        if post:
            return _post(client, host, conn_id)
        elsewhere = "" if host == SLACK_HOST else f" (not {SLACK_HOST}: a proxy or a sandbox)"
        return passed(
            f"well-formed incoming webhook on {host}{elsewhere}; nothing posted (--post-slack posts one)"
        )

    return Check("post" if post else "webhook", "slack", run)
