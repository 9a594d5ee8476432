"""Run smoke checks a few at a time, each within a time limit, prerequisites first.

Checks run on a small pool of daemon threads (``workers`` at once). A check still running after
``timeout_s`` is reported failed and abandoned: its thread is a daemon, so a vendor that never
answers cannot hold the command open. A check whose prerequisite (``Check.after``) did not pass
is skipped with the reason, so one refused credential is reported once, not once per check.
Results come back in the order the checks were given, every reason and figure passed through
``redact``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

from donor_sync.errors import DonorSyncError
from donor_sync.smoke.checks import Check, CheckFailed, Outcome, Result, Status, failed, skipped
from donor_sync.smoke.redact import Redactor, mask_data

__all__ = ["DEFAULT_TIMEOUT_S", "DEFAULT_WORKERS", "run_checks", "unexpected_reason"]

DEFAULT_WORKERS = 4
DEFAULT_TIMEOUT_S = 45.0
_MAX_REASON = 300


def unexpected_reason(exc: BaseException) -> str:
    """Return a one-line reason for an exception a check did not expect (its class and first line)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, DonorSyncError) and text:
        return text[:_MAX_REASON]
    return f"{type(exc).__name__}: {text}"[:_MAX_REASON] if text else type(exc).__name__


def _execute(check: Check, clock: Callable[[], float]) -> tuple[Outcome, float]:
    started = clock()
    try:
        outcome = check.run()
    except CheckFailed as exc:
        outcome = failed(exc.reason, **exc.data)
    except Exception as exc:  # a check must never take the run down: report it as that check's failure
        outcome = failed(unexpected_reason(exc))
    return outcome, clock() - started


def _dependency_skip(check: Check, prerequisite: Result) -> Outcome:
    if prerequisite.status is Status.SKIP:
        return skipped(prerequisite.reason)
    return skipped(f"not checked: {check.target} {prerequisite.name} did not pass")


class _Run:
    """One run's state: checks waiting, running (key -> start time) and finished."""

    def __init__(
        self,
        checks: Sequence[Check],
        workers: int,
        timeout_s: float,
        mask: Callable[[str], str],
        clock: Callable[[], float],
    ) -> None:
        self.by_key = {c.key: c for c in checks}
        self.waiting = list(checks)
        self.running: dict[str, float] = {}
        self.results: dict[str, Result] = {}
        self.done: queue.Queue[tuple[str, Outcome, float]] = queue.Queue()
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.mask = mask
        self.clock = clock

    def record(self, check: Check, outcome: Outcome, duration: float) -> None:
        self.results[check.key] = Result(
            check.name,
            check.target,
            outcome.status,
            duration,
            self.mask(" ".join(outcome.reason.split())),
            mask_data(dict(outcome.data), self.mask),
        )

    def _work(self, check: Check) -> None:
        outcome, duration = _execute(check, self.clock)
        self.done.put((check.key, outcome, duration))

    def start_ready(self) -> None:
        """Start the checks whose prerequisite passed (up to ``workers``); skip those whose did not."""
        for check in list(self.waiting):
            prerequisite_key = f"{check.target}.{check.after}" if check.after else None
            if prerequisite_key in self.by_key:
                prerequisite = self.results.get(prerequisite_key)
                if prerequisite is None:
                    continue
                if prerequisite.status is not Status.PASS:
                    self.waiting.remove(check)
                    self.record(check, _dependency_skip(check, prerequisite), 0.0)
                    continue
            if len(self.running) >= self.workers:
                return
            self.waiting.remove(check)
            self.running[check.key] = self.clock()
            threading.Thread(target=self._work, args=(check,), name=f"smoke-{check.key}", daemon=True).start()

    def collect(self) -> None:
        """Wait for the next check to finish, or fail those past their time limit."""
        deadline = min(self.running.values()) + self.timeout_s
        try:
            key, outcome, duration = self.done.get(timeout=max(0.0, deadline - self.clock()))
        except queue.Empty:
            now = self.clock()
            for key, started in list(self.running.items()):
                if now - started >= self.timeout_s:
                    del self.running[key]
                    target = self.by_key[key].target
                    reason = f"no answer within {self.timeout_s:g} s: {target} is slow or unreachable"
                    self.record(self.by_key[key], failed(reason), now - started)
            return
        if key in self.running:  # a check reported after its time limit is already failed: ignore it
            del self.running[key]
            self.record(self.by_key[key], outcome, duration)


def run_checks(
    checks: Sequence[Check],
    *,
    workers: int = DEFAULT_WORKERS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    redact: Callable[[str], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[Result]:
    """Run ``checks`` and return their results, in the order given.

    :param workers: checks running at once (at least 1).
    :param timeout_s: how long one check may run before it is reported failed.
    :param redact: masks secrets in reasons and figures (default: a :class:`Redactor` of URL
        credentials only).
    :raises ValueError: two checks share a target and name.
    """
    keys = [c.key for c in checks]
    if len(set(keys)) != len(keys):
        raise ValueError("every check needs its own target and name")
    run = _Run(checks, workers, timeout_s, redact or Redactor(), clock)
    while len(run.results) < len(checks):
        run.start_ready()
        if len(run.results) == len(checks):
            break
        if not run.running:  # what is left waits on a prerequisite that never runs (a cycle)
            for check in run.waiting:
                run.record(check, skipped(f"not checked: its prerequisite {check.after!r} never ran"), 0.0)
            break
        run.collect()
    return [run.results[c.key] for c in checks]
