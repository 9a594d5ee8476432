"""HubSpot: the token on one cheap read, the rate-limit headers, the mapping against the properties.

Calls: ``GET /crm/v3/objects/contacts?limit=1&properties=hs_object_id`` (no donor fields are
asked for) and ``GET /crm/v3/properties/{objectType}`` per mapped object. Nothing is written:
the unique id properties the push creates in a new portal
(:meth:`~donor_sync.delivery.connectors.hubspot.HubSpotConnector.ensure_properties`) are checked
as the push would create them when they are missing, and said so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from donor_sync.delivery.contracts import HUBSPOT, QuotaState
from donor_sync.smoke.checks import Check, Outcome, Status, failed, passed
from donor_sync.smoke.common import Lazy, describe_outcome, host_of, no_object_on_404, refusal

if TYPE_CHECKING:
    from donor_sync.delivery.connectors.hubspot import HubSpotConnector

__all__ = ["CONN_ID", "hubspot_checks"]

#: The connection :class:`~donor_sync.hooks.hubspot.HubSpotHook` reads by default.
CONN_ID = "hubspot"
VENDOR = "HubSpot"


def _quota_text(quota: QuotaState | None, what: str) -> str | None:
    if quota is None or quota.remaining is None or quota.limit is None:
        return None
    return f"{quota.remaining:,} of {quota.limit:,} {what}"


class _Probe:
    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.connector = Lazy(self._build)
        #: Unique id properties missing in the portal (object type -> property), found by describe.
        self.to_create: dict[str, str] = {}

    def _build(self) -> HubSpotConnector:
        from donor_sync.hooks.hubspot import HubSpotHook

        return HubSpotHook(self.conn_id).get_connector()

    def auth(self) -> Outcome:
        try:
            connector = self.connector.get()
            client = connector.client
            client.get(client.paths.objects("contacts"), params={"limit": 1, "properties": "hs_object_id"})
        except Exception as exc:
            raise refusal(exc, vendor=VENDOR, conn_id=self.conn_id) from None
        return passed(
            f"token accepted by {host_of(connector.settings.base_url)} (API {connector.settings.api_version})"
        )

    def limits(self) -> Outcome:
        client = self.connector.get().client
        if client.quota() is None and client.interval_quota() is None:
            try:  # the credential check's answer carried none: ask once more
                client.get(
                    client.paths.objects("contacts"), params={"limit": 1, "properties": "hs_object_id"}
                )
            except Exception as exc:
                raise refusal(exc, vendor=VENDOR, conn_id=self.conn_id) from None
        daily, interval = client.quota(), client.interval_quota()
        figures: dict[str, Any] = {}
        if daily is not None:
            figures.update(remaining=daily.remaining, limit=daily.limit, window=daily.window)
        if interval is not None:
            figures.update(
                interval_remaining=interval.remaining, interval_limit=interval.limit, interval=interval.window
            )
        parts = [
            _quota_text(daily, "daily API calls left")
            or "no daily figures (HubSpot sends none to OAuth apps)",
            _quota_text(interval, f"requests left in the rolling window ({interval.window})")
            if interval is not None
            else None,
        ]
        text = "; ".join(p for p in parts if p)
        if daily is None and interval is None:
            return failed("HubSpot sent no X-HubSpot-RateLimit headers; limits cannot be watched")
        if daily is not None and daily.remaining is not None and daily.remaining <= 0:
            return failed(f"{text}: pushes wait until the daily limit resets at midnight", **figures)
        return passed(text, **figures)

    def describe(self) -> Outcome:
        from donor_sync.delivery.connectors.hubspot.properties import unique_property
        from donor_sync.delivery.mapping import load_destination, normalize

        connector = self.connector.get()
        fetch = no_object_on_404(connector.describe)
        id_properties = {
            spec.object_type: spec.id_property
            for spec in connector.settings.objects().values()
            if not spec.keyed_by_email
        }

        def lookup(name: str) -> Any:
            document = fetch(name)
            if document is None:
                return None
            results = list(document.get("results") or [])
            wanted = id_properties.get(name)
            if wanted and not any(p.get("name") == wanted for p in results):
                # The push creates it on first use; check the mapping against it as it will be.
                self.to_create[name] = wanted
                results.append(unique_property(name, wanted))
            return normalize(HUBSPOT, name, {**document, "results": results})

        outcome = describe_outcome(load_destination(HUBSPOT), lookup)
        if self.to_create and outcome.status is not Status.FAIL:
            created = ", ".join(f"{p} on {o}" for o, p in sorted(self.to_create.items()))
            return passed(
                f"{outcome.reason}; the first push creates the unique id properties {created}",
                **outcome.data,
                to_create=sorted(self.to_create.values()),
            )
        return outcome


def hubspot_checks(conn_id: str = CONN_ID) -> list[Check]:
    """Return the credential, limits and describe checks of the HubSpot connection ``conn_id``."""
    probe = _Probe(conn_id)
    return [
        Check("auth", HUBSPOT, probe.auth),
        Check("limits", HUBSPOT, probe.limits, after="auth"),
        Check("describe", HUBSPOT, probe.describe, after="auth"),
    ]
