"""A staff merge, as the Salesforce UI does it (admin API: ``POST /__admin/merge/{SObject}``).

Merging Contacts or Accounts keeps the master record and deletes the others: each goes to the
recycle bin with ``MasterRecordId`` = the master. Records that pointed at a merged record through
a lookup (an Opportunity's ``npsp__Primary_Contact__c`` or ``AccountId``, a Contact's
``AccountId``, a recurring donation's ``npe03__Contact__c``, ...) are re-parented to the master,
and the master's ``LastModifiedDate``/``SystemModstamp`` move, so an incremental reader sees the
winner changed and the losers deleted. Like the UI, at most three records merge at once, and
field values staff picked from the losers (``fields``) are written to the master.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sandbox.emulators.salesforce.objects import MERGEABLE, SOBJECTS, SfError, SObject
from sandbox.emulators.salesforce.store import Store, Transaction

MAX_MERGED = 2
_SKIPPED_LOOKUPS = ("MasterRecordId", "RecordTypeId")


def _check(store: Store, obj: SObject, master_id: str, merged_ids: list[str]) -> None:
    """Raise SfError unless a merge of ``merged_ids`` into ``master_id`` is allowed."""
    if obj.name not in MERGEABLE:
        raise SfError("INVALID_TYPE", f"merge is not supported for {obj.name}; only {', '.join(MERGEABLE)}")
    if not merged_ids or len(merged_ids) > MAX_MERGED:
        raise SfError("INVALID_ARGUMENT", f"merge takes 1 to {MAX_MERGED} records besides the master")
    if master_id in merged_ids or len(set(merged_ids)) != len(merged_ids):
        raise SfError("INVALID_ARGUMENT", "the master and the merged records must be distinct")
    for record_id in (master_id, *merged_ids):
        if store.find(obj.name, record_id) is None:
            deleted = store.find_deleted(obj.name, record_id) is not None
            code = "ENTITY_IS_DELETED" if deleted else "INVALID_CROSS_REFERENCE_KEY"
            raise SfError(code, f"{obj.name} {record_id} is not a live record", ["Id"])


def merge(
    store: Store,
    obj: SObject,
    master_id: str,
    merged_ids: list[str],
    *,
    now: dt.datetime,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge ``merged_ids`` into ``master_id``; return what moved. All or nothing.

    :raises SfError: not a mergeable sObject, unknown or deleted records, invalid ``fields``.
    """
    _check(store, obj, master_id, merged_ids)
    tx = Transaction()
    try:
        master_changes = store.validate(obj, fields or {})
        reparented: dict[str, int] = {}
        for child in SOBJECTS.values():
            for f in child.fields:
                if f.type != "reference" or f.reference_to != obj.name or f.name in _SKIPPED_LOOKUPS:
                    continue
                for loser in merged_ids:
                    for record in store.children(child, f.name, loser):
                        store.touch(child, record["Id"], {f.name: master_id}, now, tx)
                        reparented[child.name] = reparented.get(child.name, 0) + 1
        for loser in merged_ids:
            store.recycle(obj, loser, now, tx, master_id=master_id)
        store.write(obj, master_id, master_changes, now, tx)
    except SfError:
        store.rollback(tx)
        raise
    return {"master_id": master_id, "merged_ids": merged_ids, "reparented": reparented}
