"""Mailchimp: the key on ``/ping`` and the audience, the concurrency limit, the merge fields.

Calls: ``GET /3.0/ping``, ``GET /3.0/lists/{list_id}`` and ``GET /3.0/lists/{list_id}/merge-fields``.
Nothing is written: merge fields the mapping writes and the audience lacks are created by the
first push (``MailchimpConnector.ensure_merge_fields``), so they are reported, not failed; one of
another type would stop that push, so it fails here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from donor_sync.delivery.contracts import MAILCHIMP, DeliveryError
from donor_sync.smoke.checks import Check, CheckFailed, Outcome, failed, passed
from donor_sync.smoke.common import Lazy, host_of, refusal

if TYPE_CHECKING:
    from donor_sync.delivery.connectors.mailchimp.connector import MailchimpConnector

__all__ = ["CONN_ID", "SIMULTANEOUS_CONNECTIONS", "mailchimp_checks", "merge_field_problems"]

#: The connection :class:`~donor_sync.hooks.mailchimp.MailchimpHook` reads by default.
CONN_ID = "mailchimp"
VENDOR = "Mailchimp"
#: Mailchimp's limit: simultaneous connections per account (it has no volume allowance).
SIMULTANEOUS_CONNECTIONS = 10
#: Existing merge field types a ``text`` value may be written to (as ensure_merge_fields accepts).
TEXT_COMPATIBLE = frozenset({"text", "dropdown", "radio", "phone"})


def merge_field_problems(wanted: dict[str, str], existing: dict[str, str]) -> tuple[list[str], list[str]]:
    """Return (tags of another type, tags missing) of the merge fields ``{tag: type}`` a mapping writes.

    The type rule is the connector's: the same type, or text written to a text-like field.
    """
    clashes, missing = [], []
    for tag, kind in sorted(wanted.items()):
        have = existing.get(tag.upper())
        if have is None:
            missing.append(tag.upper())
        elif have != kind and not (kind == "text" and have in TEXT_COMPATIBLE):
            clashes.append(f"{tag.upper()} is {have!r}, the mapping sends {kind!r}")
    return clashes, missing


class _Probe:
    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.connector = Lazy(self._build)

    def _build(self) -> MailchimpConnector:
        from donor_sync.hooks.mailchimp import MailchimpHook

        return MailchimpHook(self.conn_id).get_connector()

    def auth(self) -> Outcome:
        try:
            connector = self.connector.get()
            connector.client.get("/ping")
        except Exception as exc:
            raise refusal(exc, vendor=VENDOR, conn_id=self.conn_id) from None
        list_id = connector.settings.list_id
        try:
            audience = connector.client.get(f"/lists/{list_id}") or {}
        except DeliveryError as exc:
            if exc.http_status == 404:
                raise CheckFailed(
                    f"the key works but this account has no audience {list_id!r}; "
                    f"check the list_id extra of Airflow connection {self.conn_id!r}"
                ) from None
            raise refusal(exc, vendor=VENDOR, conn_id=self.conn_id) from None
        members = (audience.get("stats") or {}).get("member_count")
        counted = f" ({members:,} members)" if isinstance(members, int) else ""
        return passed(
            f"key accepted by {host_of(connector.client.base_url)}; audience {list_id} found{counted}"
        )

    def limits(self) -> Outcome:
        opened = self.connector.get().settings.max_connections
        figures = {"limit": SIMULTANEOUS_CONNECTIONS, "max_connections": opened, "window": "concurrent"}
        if opened > SIMULTANEOUS_CONNECTIONS:
            return failed(
                f"the connection opens up to {opened} requests at once; Mailchimp refuses more than "
                f"{SIMULTANEOUS_CONNECTIONS}: lower the max_connections extra",
                **figures,
            )
        return passed(
            f"Mailchimp limits concurrency, not volume: {SIMULTANEOUS_CONNECTIONS} simultaneous "
            f"connections per account; this connection opens up to {opened} per task",
            **figures,
        )

    def describe(self) -> Outcome:
        from donor_sync.delivery.connectors.mailchimp.merge_fields import merge_field_specs
        from donor_sync.delivery.mapping import load_destination

        connector = self.connector.get()
        list_id = connector.settings.list_id
        try:
            body = connector.client.get(f"/lists/{list_id}/merge-fields", params={"count": 1000}) or {}
        except Exception as exc:
            raise refusal(exc, vendor=VENDOR, conn_id=self.conn_id) from None
        existing = {str(f["tag"]).upper(): str(f["type"]) for f in body.get("merge_fields", [])}
        wanted = merge_field_specs(load_destination(MAILCHIMP))
        clashes, missing = merge_field_problems(wanted, existing)
        if clashes:
            return failed(
                f"merge field {clashes[0]} (mailchimp.yaml); the push would stop: change the field in "
                f"audience {list_id} or the mapping",
                problems=clashes,
                problem_count=len(clashes),
            )
        note = f"; the first push creates {', '.join(missing)}" if missing else ""
        return passed(
            f"{len(wanted) - len(missing)} of {len(wanted)} merge fields the mapping writes exist with a "
            f"compatible type{note}",
            fields=len(wanted),
            to_create=missing,
        )


def mailchimp_checks(conn_id: str = CONN_ID) -> list[Check]:
    """Return the credential, limits and merge-field checks of the Mailchimp connection ``conn_id``."""
    probe = _Probe(conn_id)
    return [
        Check("auth", MAILCHIMP, probe.auth),
        Check("limits", MAILCHIMP, probe.limits, after="auth"),
        Check("describe", MAILCHIMP, probe.describe, after="auth"),
    ]
