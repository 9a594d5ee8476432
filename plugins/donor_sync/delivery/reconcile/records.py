"""What a CRM reader yields to reconciliation, whichever the vendor."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from donor_sync.delivery.reconcile.settings import DestinationReconcile


@dataclass(frozen=True)
class RemoteRecord:
    """One CRM record changed since the watermark.

    :param remote_id: the CRM's id of the record.
    :param key: donor-sync's donor id as the CRM holds it (``key_field``), when set.
    :param values: CRM field -> value, for the fields of the destination's settings (PII).
    :param merged_remote_ids: ids of records staff merged into this one (HubSpot).
    :param deleted: the record was deleted in the CRM; with ``master_remote_id`` it lost a merge
        (Salesforce keeps a merged-away contact deleted, pointing at the winner).
    """

    remote_id: str
    modified_at: datetime
    key: str | None = None
    values: Mapping[str, Any] | None = None
    merged_remote_ids: tuple[str, ...] = ()
    deleted: bool = False
    master_remote_id: str | None = None


class RemoteReader(Protocol):
    """Reads one CRM's changed records (each connector provides one)."""

    def changed_records(
        self, settings: DestinationReconcile, since: datetime | None, until: datetime
    ) -> Iterator[RemoteRecord]:
        """Records of ``settings.object`` changed in [since, until), oldest first."""
        ...
