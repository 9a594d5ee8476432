"""The task retry policy walks the 1m/5m/15m/1h/4h/24h ladder exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction

from donor_sync.errors import ConfigError, PermanentError
from donor_sync.operators.retry_policy import LADDER_POLICY, LadderRetryPolicy
from donor_sync.retry_ladder import RETRY_LADDER, delay_for_attempt


@pytest.mark.parametrize(
    ("try_number", "expected"),
    [
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=5)),
        (3, timedelta(minutes=15)),
        (4, timedelta(hours=1)),
        (5, timedelta(hours=4)),
        (6, timedelta(hours=24)),
        (9, timedelta(hours=24)),
    ],
)
def test_each_try_waits_its_rung(try_number: int, expected: timedelta) -> None:
    decision = LADDER_POLICY.evaluate(ConnectionError("reset"), try_number, max_tries=7)
    assert decision.action == RetryAction.RETRY
    assert decision.retry_delay == expected


@pytest.mark.parametrize("error", [PermanentError("bad credentials"), ConfigError("bad mapping")])
def test_non_retryable_errors_fail_at_once(error: Exception) -> None:
    decision = LADDER_POLICY.evaluate(error, 1, max_tries=7)
    assert decision.action == RetryAction.FAIL
    assert type(error).__name__ in (decision.reason or "")


def test_serialize_round_trip_keeps_the_ladder() -> None:
    data = LADDER_POLICY.serialize()
    assert data["ladder_seconds"] == [60, 300, 900, 3600, 14400, 86400]
    assert LadderRetryPolicy.deserialize(data).ladder == RETRY_LADDER


def test_empty_ladder_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one rung"):
        LadderRetryPolicy(ladder=())


def test_delay_for_attempt_runs_out_after_the_last_rung() -> None:
    assert [delay_for_attempt(n) for n in range(1, 7)] == list(RETRY_LADDER)
    assert delay_for_attempt(7) is None
    with pytest.raises(ValueError, match="1 or more"):
        delay_for_attempt(0)
