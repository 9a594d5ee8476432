"""The links an alert carries: the run in the Airflow UI and the runbook.

The Airflow UI's address comes from Airflow's ``[api] base_url`` (the operator reads it and passes
it in; this module does not import Airflow); the runbooks' from ``slack.docs_base_url`` in
include/mappings/alerts.yaml. A base that is not a URL (the default, the repo-relative
``docs/runbooks``) is quoted as text, since Slack cannot link to a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


def _is_url(text: str) -> bool:
    return "://" in text


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives a meaning to (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Links:
    """Builds the run and runbook links of alert messages.

    :param airflow_base_url: the Airflow UI, e.g. ``https://airflow.example.org``; None outside
        Airflow (the run is then named, not linked).
    :param docs_base_url: where ``docs/runbooks`` is published, or the repo-relative path.
    """

    airflow_base_url: str | None = None
    docs_base_url: str = "docs/runbooks"

    def run_url(self, dag_id: str | None, airflow_run_id: str | None) -> str | None:
        """Return ``{base_url}/dags/{dag_id}/runs/{run_id}``, or None without a base URL or a run."""
        if not self.airflow_base_url or not dag_id or not airflow_run_id:
            return None
        return f"{self.airflow_base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(airflow_run_id)}"

    def runbook_url(self, runbook: str) -> str:
        """Return the runbook's address (a URL, or the repo-relative path)."""
        return f"{self.docs_base_url.rstrip('/')}/{runbook}"

    def run_ref(self, dag_id: str | None, airflow_run_id: str | None) -> str | None:
        """Return the run as Slack mrkdwn: a link when there is a base URL, else its ids."""
        if not dag_id or not airflow_run_id:
            return None
        label = slack_escape(f"{dag_id} {airflow_run_id}")
        url = self.run_url(dag_id, airflow_run_id)
        return f"<{url}|{label}>" if url else f"`{label}`"

    def runbook_ref(self, runbook: str) -> str:
        """Return the runbook as Slack mrkdwn: a link for a URL, else the quoted path."""
        url = self.runbook_url(runbook)
        return f"<{url}|{runbook}>" if _is_url(url) else f"`{slack_escape(url)}`"
