"""The Slack text of an incident's messages: opened, escalated, resolved, and the storm digest.

Each message names what happened and where (the incident's summary: names, ids, counts,
percentages), then links the run and the runbook and gives the incident key, which
``donor-sync alerts list`` shows. Summaries never hold PII or exception messages; they are
escaped for Slack's mrkdwn all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from donor_sync.observability.alerting import rules as r
from donor_sync.observability.alerting.links import Links, slack_escape
from donor_sync.observability.alerting.store import Incident, Notice

#: What each kind of incident is called in a message.
TITLES: dict[str, str] = {
    r.FAILED_SHARE: "Push failures above threshold",
    r.DEAD_LETTER_GROWTH: "Dead letters piling up",
    r.QUOTA_RESERVE: "API quota below the reserve",
    r.CIRCUIT_OPEN: "Circuit breaker open",
    r.SCORECARD_DROP: "Data quality score dropped",
    r.ERASURE_DEADLINE: "Privacy request deadline near",
    r.TASK_FAILED: "Task failed",
    r.DEADLINE_MISSED: "Run missed its deadline",
}
#: Changes listed one per line in a digest; the rest are counted (Slack truncates long messages).
DIGEST_LINES = 40
_OPEN_ICONS: dict[str, str] = {r.TASK_FAILED: ":red_circle:", r.DEADLINE_MISSED: ":alarm_clock:"}


def title(kind: str) -> str:
    """Return the title of an incident kind."""
    return TITLES.get(kind, kind.replace("_", " ").capitalize())


def _duration(start: datetime, end: datetime) -> str:
    seconds = max(0, int((end - start).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86_400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86_400}d {seconds % 86_400 // 3600}h"


def footer(incident: Incident, links: Links) -> str:
    """Return the links line: the run, the runbook, the incident key."""
    parts = []
    run = links.run_ref(incident.dag_id, incident.airflow_run_id)
    if run:
        parts.append(f"Run: {run}")
    parts.append(f"Runbook: {links.runbook_ref(incident.runbook)}")
    parts.append(f"Incident `{slack_escape(incident.incident_key)}`")
    return " · ".join(parts)


def render(notice: Notice, links: Links, *, now: datetime | None = None) -> str:
    """Return the Slack text of one message."""
    incident = notice.incident
    name = title(incident.kind)
    if notice.type == "resolved":
        resolved_at = incident.resolved_at or now or incident.last_seen_at
        lasted = _duration(incident.opened_at, resolved_at)
        account = slack_escape(incident.resolution_summary or "back within its threshold")
        head = (
            f":white_check_mark: *Resolved: {name}*: {account}. "
            f"Open {lasted}, seen {incident.times_seen} time(s)."
        )
    elif notice.type == "escalated":
        head = f":rotating_light: *{name}, now critical*: {slack_escape(incident.summary)}"
    else:
        icon = _OPEN_ICONS.get(
            incident.kind, ":rotating_light:" if incident.severity == "critical" else ":warning:"
        )
        head = f"{icon} *{name}*: {slack_escape(incident.summary)}"
    return f"{head}\n{footer(incident, links)}"


def render_digest(notices: Sequence[Notice], links: Links, *, limit: int) -> str:
    """Return one message for the changes past the per-evaluation limit of ``limit`` messages."""
    lines = [
        f":rotating_light: *{len(notices)} more alert change(s)* (more than {limit} messages in one "
        "check; `donor-sync alerts list` shows every open incident):"
    ]
    for notice in notices[:DIGEST_LINES]:
        incident = notice.incident
        what = {"opened": "opened", "escalated": "now critical", "resolved": "resolved"}[notice.type]
        account = incident.resolution_summary if notice.type == "resolved" else incident.summary
        lines.append(
            f"• {what}: *{title(incident.kind)}*: {slack_escape(account or '')} "
            f"({links.runbook_ref(incident.runbook)}, `{slack_escape(incident.incident_key)}`)"
        )
    if len(notices) > DIGEST_LINES:
        lines.append(f"• … and {len(notices) - DIGEST_LINES} more")
    return "\n".join(lines)


def fallback_text(summary: str, runbook: str, links: Links, *, kind: str, run: str | None = None) -> str:
    """Return a message posted without an incident (the staging database could not be reached)."""
    icon = _OPEN_ICONS.get(kind, ":warning:")
    parts = [f"Runbook: {links.runbook_ref(runbook)}"]
    if run:
        parts.insert(0, f"Run: {run}")
    return (
        f"{icon} *{title(kind)}*: {slack_escape(summary)}\n"
        + " · ".join(parts)
        + " · (the staging database was unreachable: not recorded as an incident)"
    )
