"""Braze: the REST key, the rate-limit headers, and the subscription groups the mapping names.

Calls: ``GET /subscription/status/get`` once per subscription group of the mapping, for an
external id no donor has (``donor-sync-smoke-probe``). Braze checks the key (401) and its
permission (403) before the group (400), so the first call tests the key and each call tests one
group. A mapping without groups tests the key with ``POST /users/export/ids`` of that same id,
an export that changes nothing. Users take any attribute and events any property: there is no
other field metadata to check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from donor_sync.delivery.contracts import BRAZE, BatchRejectedError
from donor_sync.smoke.checks import Check, Outcome, failed, passed
from donor_sync.smoke.common import Lazy, host_of, refusal

if TYPE_CHECKING:
    from donor_sync.delivery.connectors.braze.connector import BrazeConnector

__all__ = ["CONN_ID", "PROBE_ID", "braze_checks"]

#: The connection :class:`~donor_sync.hooks.braze.BrazeHook` reads by default.
CONN_ID = "braze"
VENDOR = "Braze"
#: The external id asked about: no donor has it, so nothing about anyone is read.
PROBE_ID = "donor-sync-smoke-probe"


class _Probe:
    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.connector = Lazy(self._build)
        self.groups = Lazy(self._groups)

    def _build(self) -> BrazeConnector:
        from donor_sync.hooks.braze import BrazeHook

        return BrazeHook(self.conn_id).get_connector()

    @staticmethod
    def _groups() -> list[str]:
        from donor_sync.delivery.connectors.braze.subscriptions import group_purposes
        from donor_sync.delivery.mapping import load_destination

        return list(group_purposes(load_destination(BRAZE)))

    def _group_exists(self, group: str) -> bool:
        """Ask Braze about ``group``; True when it answers, False when it does not know the group."""
        from donor_sync.delivery.connectors.braze.subscriptions import GET_PATH

        try:
            self.connector.get().client.get(
                GET_PATH, {"subscription_group_id": group, "external_id": PROBE_ID}
            )
        except BatchRejectedError:
            return False
        return True

    def auth(self) -> Outcome:
        try:
            connector = self.connector.get()
            groups = self.groups.get()
            if groups:
                self._group_exists(groups[0])  # a 400 about the group still means the key was accepted
            else:
                connector.client.export_users(external_ids=[PROBE_ID])
        except Exception as exc:
            raise refusal(exc, vendor=VENDOR, conn_id=self.conn_id) from None
        return passed(f"REST key accepted by {host_of(connector.client.base_url)}")

    def limits(self) -> Outcome:
        pacer = self.connector.get().client.pacer
        windows = dict(pacer.windows) if pacer is not None else {}
        known = [
            (group, w) for group, w in windows.items() if w.remaining is not None and w.limit is not None
        ]
        if not known:
            return failed("Braze sent no X-RateLimit headers; its limits cannot be paced")
        group, window = known[0]
        return passed(
            f"{window.remaining:,} of {window.limit:,} requests left in the {group} window "
            "(Braze counts each endpoint group apart; pushes pace on these headers)",
            remaining=window.remaining,
            limit=window.limit,
            window=group,
            reset_at=window.reset_at,
        )

    def describe(self) -> Outcome:
        groups = self.groups.get()
        try:
            unknown = [g for g in groups if not self._group_exists(g)]
        except Exception as exc:
            raise refusal(exc, vendor=VENDOR, conn_id=self.conn_id) from None
        if unknown:
            return failed(
                f"subscription_groups.{unknown[0]}: this workspace has no subscription group {unknown[0]!r} "
                "(braze.yaml); put the workspace's group id in the mapping",
                problems=[f"subscription_groups.{g}: no such subscription group" for g in unknown],
                problem_count=len(unknown),
            )
        return passed(
            f"the mapping's {len(groups)} subscription groups exist; users and events take any "
            "attribute (no other field metadata)",
            fields=len(groups),
        )


def braze_checks(conn_id: str = CONN_ID) -> list[Check]:
    """Return the credential, limits and subscription-group checks of the Braze connection ``conn_id``."""
    probe = _Probe(conn_id)
    return [
        Check("auth", BRAZE, probe.auth),
        Check("limits", BRAZE, probe.limits, after="auth"),
        Check("describe", BRAZE, probe.describe, after="auth"),
    ]
