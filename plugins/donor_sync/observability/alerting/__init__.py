"""Slack alerting as incidents: one message when something breaks, one when it is fixed.

Threshold rules (``include/mappings/alerts.yaml``, :mod:`.rules`) are judged on a run's metrics
and the live tables (:mod:`.conditions`); each breach is an incident in ``sync.alert_incidents``
(:mod:`.store`) whose opening, escalation and resolution are posted once each (:mod:`.engine`,
texts in :mod:`.messages`, links in :mod:`.links`). Task failures and missed deadlines, raised by
Airflow's notifiers (:mod:`donor_sync.observability.notifiers`), are incidents too. Plain Python:
no Airflow import; the Slack sender is passed in. docs/alerts.md is generated from the rules
(:mod:`.docs`).
"""

from __future__ import annotations

from donor_sync.observability.alerting.conditions import Observation
from donor_sync.observability.alerting.engine import (
    AlertReport,
    DeliveryReport,
    Sender,
    deliver_pending,
    evaluate_and_notify,
    open_event_incident,
    plan_alerts,
    record_task_failure,
    record_task_success,
    resolve_deadline_incident,
)
from donor_sync.observability.alerting.links import Links
from donor_sync.observability.alerting.rules import AlertRules, load_alert_rules
from donor_sync.observability.alerting.store import Incident, open_incidents, recent_incidents

__all__ = [
    "AlertReport",
    "AlertRules",
    "DeliveryReport",
    "Incident",
    "Links",
    "Observation",
    "Sender",
    "deliver_pending",
    "evaluate_and_notify",
    "load_alert_rules",
    "open_event_incident",
    "open_incidents",
    "plan_alerts",
    "recent_incidents",
    "record_task_failure",
    "record_task_success",
    "resolve_deadline_incident",
]
