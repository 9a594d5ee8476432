"""Salesforce NPSP: the OAuth grant and the pinned API version, ``/limits``, the mapping against describe.

Calls: the token request, ``GET /services/data/`` (the versions the org serves, free of charge),
``GET .../limits`` and ``GET .../sobjects/{name}/describe`` for each mapped sObject. Nothing is
written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from donor_sync.delivery.contracts import SALESFORCE
from donor_sync.smoke.checks import Check, Outcome, failed, passed
from donor_sync.smoke.common import Lazy, describe_outcome, host_of, no_object_on_404, refusal

if TYPE_CHECKING:
    from donor_sync.delivery.connectors.salesforce import SalesforceConnector

__all__ = ["CONN_ID", "salesforce_checks"]

#: The connection :class:`~donor_sync.hooks.salesforce_npsp.SalesforceNpspHook` reads by default.
CONN_ID = "salesforce_npsp"
VENDOR = "Salesforce"


class _Probe:
    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.connector = Lazy(self._build)

    def _build(self) -> SalesforceConnector:
        from donor_sync.hooks.salesforce_npsp import SalesforceNpspHook

        return SalesforceNpspHook(self.conn_id).get_connector()

    def _fail(self, exc: Exception) -> Exception:
        return refusal(exc, vendor=VENDOR, conn_id=self.conn_id)

    def auth(self) -> Outcome:
        try:
            client = self.connector.get().client
            token = client.tokens.get()
            versions = client.check_version()
        except Exception as exc:
            raise self._fail(exc) from None
        flow = type(client.tokens.credentials).__name__
        served = f"; the org serves v{versions[0]}..v{versions[-1]}" if versions else ""
        return passed(
            f"authenticated ({flow}) to org {host_of(token.instance_url)}, API v{client.api_version}{served}"
        )

    def limits(self) -> Outcome:
        try:
            body = self.connector.get().limits()
        except Exception as exc:
            raise self._fail(exc) from None
        daily = body.get("DailyApiRequests") or {}
        if "Max" not in daily or "Remaining" not in daily:
            return failed(
                "the org's /limits has no DailyApiRequests; check the integration user's permissions"
            )
        remaining, limit = int(daily["Remaining"]), int(daily["Max"])
        figures: dict[str, Any] = {"remaining": remaining, "limit": limit, "window": "rolling_24h"}
        bulk = body.get("DailyBulkApiBatches") or {}
        bulk_text = ""
        if "Max" in bulk and "Remaining" in bulk:
            figures["bulk_batches_remaining"] = int(bulk["Remaining"])
            figures["bulk_batches_limit"] = int(bulk["Max"])
            bulk_text = f"; {int(bulk['Remaining']):,} of {int(bulk['Max']):,} Bulk API batches"
        text = f"{remaining:,} of {limit:,} daily API requests left{bulk_text}"
        if remaining <= 0:
            return failed(f"{text}: pushes wait until the rolling 24 h window frees requests", **figures)
        return passed(text, **figures)

    def describe(self) -> Outcome:
        from donor_sync.delivery.mapping import load_destination, normalize

        connector = self.connector.get()
        fetch = no_object_on_404(connector.describe)

        def lookup(name: str) -> Any:
            document = fetch(name)
            return None if document is None else normalize(SALESFORCE, name, document)

        return describe_outcome(load_destination(SALESFORCE), lookup)


def salesforce_checks(conn_id: str = CONN_ID) -> list[Check]:
    """Return the credential, limits and describe checks of the Salesforce connection ``conn_id``."""
    probe = _Probe(conn_id)
    return [
        Check("auth", SALESFORCE, probe.auth),
        Check("limits", SALESFORCE, probe.limits, after="auth"),
        Check("describe", SALESFORCE, probe.describe, after="auth"),
    ]
