"""Stewardship journeys: rules, the suppression gate, once-only enrollment and trigger queueing.

No Airflow here: the ``journeys`` task (operators/journey_tasks.py), ``donor-sync journeys`` and
the tests call :func:`decide` and :func:`plan`. docs/journeys.md says how it works.
"""

from __future__ import annotations

from donor_sync.journeys.assign import HOLDOUT, assign
from donor_sync.journeys.decide import DecideReport, Entry, decide, plan
from donor_sync.journeys.payloads import ENTITY, record_key
from donor_sync.journeys.report import ArmResult, StatusRow, experiment_results, status_rows
from donor_sync.journeys.rules import REASON_CODES, JourneyRules, default_rules_path, load_rules

__all__ = [
    "ENTITY",
    "HOLDOUT",
    "REASON_CODES",
    "ArmResult",
    "DecideReport",
    "Entry",
    "JourneyRules",
    "StatusRow",
    "assign",
    "decide",
    "default_rules_path",
    "experiment_results",
    "load_rules",
    "plan",
    "record_key",
    "status_rows",
]
