"""Donation sources: each key reads what the extractor reads, and Classy's rate-limit headers.

Each credential check lists what the extractor lists, over a window that starts tomorrow, so the
key's read access is tested on every stream and no donor's record comes back. Stripe and Donorbox
publish no remaining allowance (their limits check says so and is skipped); Classy sends
``X-RateLimit-Limit`` and ``-Remaining`` on each answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from donor_sync.smoke.checks import Check, Outcome, failed, passed, skipped
from donor_sync.smoke.common import Lazy, refusal

if TYPE_CHECKING:
    import requests

    from donor_sync.sources.classy import ClassyApi
    from donor_sync.sources.donorbox import DonorboxApi
    from donor_sync.sources.stripe.helpers import StripeApi

__all__ = ["SOURCES", "source_checks"]

#: Sources with an API extractor and the connection each hook reads by default, in extract order
#: (``donor_sync.operators.extract_tasks.API_SOURCES``).
SOURCES: Mapping[str, str] = {"stripe": "stripe", "donorbox": "donorbox", "classy": "classy"}


def _tomorrow() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


class _Stripe:
    vendor = "Stripe"

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.api = Lazy(self._build)

    def _build(self) -> StripeApi:
        from donor_sync.hooks.stripe import StripeHook

        return StripeHook(self.conn_id).get_api()

    def auth(self) -> Outcome:
        from donor_sync.sources.stripe.settings import STREAMS

        since = int(_tomorrow().timestamp())
        try:
            api = self.api.get()
            for stream in STREAMS:
                for _page in api.list_pages(stream, created_gte=since):
                    pass
        except Exception as exc:
            raise refusal(exc, vendor=self.vendor, conn_id=self.conn_id) from None
        return passed(f"key reads {', '.join(STREAMS)}")

    @staticmethod
    def limits() -> Outcome:
        return skipped(
            "Stripe reports no remaining allowance (100 requests/s live, 25 in test mode); "
            "the extractor retries its 429s"
        )


class _Donorbox:
    vendor = "Donorbox"

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.api = Lazy(self._build)

    def _build(self) -> DonorboxApi:
        from donor_sync.hooks.donorbox import DonorboxHook

        return DonorboxHook(self.conn_id).get_api()

    def auth(self) -> Outcome:
        try:
            for _page in self.api.get().donation_pages(date_from=_tomorrow()):
                pass
        except Exception as exc:
            raise refusal(exc, vendor=self.vendor, conn_id=self.conn_id) from None
        return passed("account email and API key read donations")

    @staticmethod
    def limits() -> Outcome:
        return skipped("Donorbox publishes no rate limit and sends no limit headers")


class _Classy:
    vendor = "Classy"

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.api = Lazy(self._build)
        self.headers: dict[str, str] = {}

    def _build(self) -> ClassyApi:
        from donor_sync.hooks.classy import ClassyHook

        api = ClassyHook(self.conn_id).get_api()
        # The client returns bodies only; a response hook on its session keeps the limit headers.
        session: requests.Session = api._http.session
        session.hooks["response"].append(self._keep_limits)
        return api

    def _keep_limits(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "X-RateLimit-Limit" in response.headers:
            self.headers = {k: v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit")}

    def auth(self) -> Outcome:
        try:
            api = self.api.get()
            for _page in api.transaction_pages(updated_since=_tomorrow()):
                pass
        except Exception as exc:
            raise refusal(exc, vendor=self.vendor, conn_id=self.conn_id) from None
        return passed(
            f"client credentials accepted; organization {api.organization_id}'s transactions readable"
        )

    def limits(self) -> Outcome:
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
        except (KeyError, ValueError):
            return failed("Classy sent no X-RateLimit-Limit/-Remaining headers; its limit cannot be read")
        figures = {"remaining": remaining, "limit": limit, "window": "per_minute"}
        if remaining <= 0:
            return failed(
                f"0 of {limit:,} requests left this minute: another client spends the allowance", **figures
            )
        return passed(f"{remaining:,} of {limit:,} requests left this minute", **figures)


_PROBES: Mapping[str, Callable[[str], Any]] = {"stripe": _Stripe, "donorbox": _Donorbox, "classy": _Classy}


def source_checks(source: str, conn_id: str | None = None) -> list[Check]:
    """Return the credential and limits checks of ``source`` (its default connection unless named).

    :raises KeyError: not a source with an API extractor.
    """
    probe = _PROBES[source](conn_id or SOURCES[source])
    return [Check("auth", source, probe.auth), Check("limits", source, probe.limits, after="auth")]
