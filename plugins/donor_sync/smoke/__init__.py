"""``donor-sync smoke``: check a deployment's real connections without writing anything.

Per configured source and destination: the credential authenticates, the limits are readable,
and (destinations) every mapped field and picklist value exists in the destination's metadata;
event subscribers answer; the webhook receiver answers; the Slack alerts connection is a
well-formed webhook. Each check is read-only, timed, and reports ``pass``, ``fail`` or ``skip``
with a one-line reason that names what to fix and never a secret (docs/smoke.md).

:func:`plan_checks` chooses the checks, :func:`run_checks` runs them a few at a time within a
time limit, and :mod:`.report` prints them.
"""

from __future__ import annotations

from donor_sync.smoke.checks import Check, CheckFailed, Outcome, Result, Status, failed, passed, skipped
from donor_sync.smoke.plan import SmokeOptions, plan_checks
from donor_sync.smoke.redact import Redactor
from donor_sync.smoke.report import exit_status, render_json, render_table, summary
from donor_sync.smoke.runner import DEFAULT_TIMEOUT_S, DEFAULT_WORKERS, run_checks

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WORKERS",
    "Check",
    "CheckFailed",
    "Outcome",
    "Redactor",
    "Result",
    "SmokeOptions",
    "Status",
    "exit_status",
    "failed",
    "passed",
    "plan_checks",
    "render_json",
    "render_table",
    "run_checks",
    "skipped",
    "summary",
]
