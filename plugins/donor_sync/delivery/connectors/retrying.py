"""The retry policy of the small REST clients (Mailchimp, Braze): tenacity, vendor hints first.

A client raises :class:`RetryableError` for a failure worth another attempt (429, 5xx, timeout,
connection reset), carrying the wait the vendor asked for (``Retry-After``, a rate-limit reset)
when it gave one; :func:`default_retry` waits that long (capped), else backs off exponentially
with jitter.
"""

from __future__ import annotations

import tenacity

#: The longest wait a vendor's hint may impose before another attempt.
MAX_HINTED_WAIT_S = 60.0


class RetryableError(Exception):
    """A failure worth another attempt: a vendor code (never PII), the status and the hinted wait."""

    def __init__(self, code: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.retry_after_s = retry_after_s


class WaitForHint(tenacity.wait.wait_base):
    """Wait what the vendor asked (``retry_after_s`` of the error, capped), else ``fallback``."""

    def __init__(self, fallback: tenacity.wait.wait_base, max_s: float = MAX_HINTED_WAIT_S) -> None:
        self.fallback = fallback
        self.max_s = max_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        hint = getattr(error, "retry_after_s", None)
        if hint is not None:
            return float(min(max(0.0, hint), self.max_s))
        return float(self.fallback(retry_state))


def default_retry(attempts: int = 5, wait: tenacity.wait.wait_base | None = None) -> tenacity.Retrying:
    """Return the policy for 429/5xx/network failures: 5 attempts, backoff 0.5..10 s with jitter.

    :param wait: the fallback wait when the vendor gives none (tests pass ``tenacity.wait_none()``).
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetryableError),
        wait=WaitForHint(
            wait if wait is not None else tenacity.wait_exponential_jitter(multiplier=0.5, max=10.0)
        ),
        stop=tenacity.stop_after_attempt(attempts),
        reraise=True,
    )


def refusal(where: str, status: int, code: str, *, credentials: str, permission: str = "") -> Exception:
    """Return the error for a non-retryable HTTP refusal of a small REST client's call.

    401: the credentials were refused (``credentials`` says what to check); 403/404: the key lacks the
    endpoint or the object is gone (permanent; ``permission`` may say what to grant); any other 4xx:
    the request's content was refused (validation, the batch is split to isolate the bad record).
    """
    from donor_sync.delivery.contracts import BatchRejectedError, DestinationUnavailableError, FailureClass

    if status == 401:
        return DestinationUnavailableError(
            f"{where}: {credentials}",
            error_class=FailureClass.AUTH,
            error_code=code,
            http_status=status,
        )
    if status in (403, 404):
        return DestinationUnavailableError(
            f"{where} answered HTTP {status} ({code}){permission}",
            error_class=FailureClass.PERMANENT,
            error_code=code,
            http_status=status,
        )
    return BatchRejectedError(
        f"{where} refused the request (HTTP {status} {code})",
        error_class=FailureClass.VALIDATION,
        error_code=code,
        http_status=status,
    )
