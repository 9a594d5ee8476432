"""The smoke test's report: a table for people, JSON for machines, and the exit status.

The exit status is 0 only when no check failed (skipped checks do not fail the run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from donor_sync.smoke.checks import Result, Status

__all__ = ["exit_status", "render_json", "render_table", "summary"]


def summary(results: Sequence[Result]) -> dict[str, int]:
    """Return how many checks passed, failed and were skipped."""
    return {status.value: sum(1 for r in results if r.status is status) for status in Status}


def exit_status(results: Sequence[Result]) -> int:
    """Return 0 when no check failed, else 1."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def render_table(results: Sequence[Result]) -> str:
    """Return one line per check (status, target, check, time, reason) and a closing count."""
    rows = [("STATUS", "TARGET", "CHECK", "TIME", "REASON")]
    rows += [(r.status.value.upper(), r.target, r.name, f"{r.duration_s:.2f}s", r.reason) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows
    ]
    counts = summary(results)
    verdict = "smoke test failed" if exit_status(results) else "smoke test passed"
    lines.append("")
    lines.append(f"{verdict}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[Result]) -> str:
    """Return ``{"ok", "summary", "checks": [...]}`` as JSON."""
    document: dict[str, Any] = {
        "ok": exit_status(results) == 0,
        "summary": summary(results),
        "checks": [r.to_dict() for r in results],
    }
    return json.dumps(document, indent=2, default=str) + "\n"
