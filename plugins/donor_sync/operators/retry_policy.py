"""Airflow 3.3 ``retry_policy`` that walks the project's retry ladder exactly."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import RetryDecision, RetryPolicy

from donor_sync.errors import ConfigError, PermanentError
from donor_sync.retry_ladder import RETRY_LADDER

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Failures no retry can fix: fail the task at once instead of climbing the ladder.
NON_RETRYABLE: tuple[type[BaseException], ...] = (PermanentError, ConfigError)


class LadderRetryPolicy(RetryPolicy):
    """Retry after 1m, 5m, 15m, 1h, 4h, then 24h; fail at once on a non-retryable error.

    Airflow's exponential backoff adds jitter and cannot hit exact rungs, hence a policy.
    Pair it with ``retries=len(ladder)``: a policy cannot retry more often than ``retries``.
    """

    def __init__(
        self,
        ladder: tuple[timedelta, ...] = RETRY_LADDER,
        non_retryable: tuple[type[BaseException], ...] = NON_RETRYABLE,
    ) -> None:
        if not ladder:
            raise ValueError("the retry ladder needs at least one rung")
        self.ladder = tuple(ladder)
        self.non_retryable = tuple(non_retryable)

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        """Return fail for non-retryable errors, else a retry after this try's rung."""
        if isinstance(exception, self.non_retryable):
            return RetryDecision.fail(reason=f"non-retryable {type(exception).__name__}")
        rung = min(max(try_number, 1), len(self.ladder)) - 1
        delay = self.ladder[rung]
        return RetryDecision.retry(delay=delay, reason=f"try {try_number} failed; next rung {delay}")

    def serialize(self) -> dict[str, Any]:
        """Return a JSON-serialisable description (Airflow stores only a flag; workers re-parse)."""
        return {
            "__type": f"{type(self).__module__}.{type(self).__qualname__}",
            "ladder_seconds": [d.total_seconds() for d in self.ladder],
            "non_retryable": [f"{e.__module__}.{e.__qualname__}" for e in self.non_retryable],
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> LadderRetryPolicy:
        """Rebuild the policy from :meth:`serialize` output (non-retryable classes are the defaults)."""
        return cls(tuple(timedelta(seconds=s) for s in data["ladder_seconds"]))


LADDER_POLICY = LadderRetryPolicy()
