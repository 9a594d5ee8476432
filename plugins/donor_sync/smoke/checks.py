"""The smoke test's model: a :class:`Check` to run, the :class:`Outcome` it returns, the :class:`Result`.

A check is a named, read-only probe of one target (a source, a destination, the webhook receiver,
the Slack alerts connection). Its function returns an :class:`Outcome` (or raises
:class:`CheckFailed` with a reason); the runner times it and turns it into a :class:`Result`.
Every reason is one line that says what to fix, and never carries a secret.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Check",
    "CheckFailed",
    "Outcome",
    "Result",
    "Status",
    "failed",
    "passed",
    "skipped",
]


class Status(enum.StrEnum):
    """A check's verdict: ``skip`` for a disabled destination, an unconfigured source, or a check
    whose prerequisite did not pass."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Outcome:
    """What a check found: its status, a one-line reason and figures (e.g. ``remaining``, ``limit``)."""

    status: Status
    reason: str
    data: Mapping[str, Any] = field(default_factory=dict)


def passed(reason: str, **data: Any) -> Outcome:
    """Return a passing outcome."""
    return Outcome(Status.PASS, reason, data)


def failed(reason: str, **data: Any) -> Outcome:
    """Return a failing outcome."""
    return Outcome(Status.FAIL, reason, data)


def skipped(reason: str, **data: Any) -> Outcome:
    """Return a skipped outcome."""
    return Outcome(Status.SKIP, reason, data)


class CheckFailed(Exception):  # noqa: N818 - it is an outcome, not an error of the program
    """Raised inside a check: the check fails with ``reason`` (and optional figures)."""

    def __init__(self, reason: str, **data: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data


@dataclass(frozen=True)
class Check:
    """One probe to run.

    :param name: what is checked (``auth``, ``limits``, ``describe``, ``health``, ``webhook``...).
    :param target: what it is checked on (``salesforce``, ``stripe``, ``receiver``...).
    :param run: the probe; returns an :class:`Outcome` or raises (:class:`CheckFailed` for an
        expected failure; anything else is reported by its class).
    :param after: the name of a check of the same target that must pass first (the credential
        before the limits); when it does not, this check is skipped and says why.
    """

    name: str
    target: str
    run: Callable[[], Outcome] = field(repr=False, compare=False)
    after: str | None = None

    @property
    def key(self) -> str:
        """``target.name``, unique within a plan."""
        return f"{self.target}.{self.name}"


@dataclass(frozen=True)
class Result:
    """A check's result as reported: name, target, status, duration (seconds), reason, figures."""

    name: str
    target: str
    status: Status
    duration_s: float
    reason: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``target.name``."""
        return f"{self.target}.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "target": self.target,
            "name": self.name,
            "status": self.status.value,
            "duration_s": round(self.duration_s, 3),
            "reason": self.reason,
            "data": dict(self.data),
        }
