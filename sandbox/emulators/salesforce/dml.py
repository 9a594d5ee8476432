"""Inserts, upserts by external id, updates and deletes by Id: the DML rules shared by the REST,
sObject Collections and Bulk API 2.0 paths."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sandbox.emulators.salesforce.objects import SfError, SObject, coerce
from sandbox.emulators.salesforce.store import Store, Transaction


class MultipleMatchesError(Exception):
    """The external id matched several records (REST answers 300)."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(f"{len(ids)} records match")
        self.ids = ids


@dataclass
class LockPolicy:
    """Which writes report UNABLE_TO_LOCK_ROW: a rate (seeded) and a list of record keys."""

    rate: float
    keys: list[str]
    rng: random.Random

    def check(self, key: str, record_id: str | None) -> None:
        """Raise UNABLE_TO_LOCK_ROW when this write should report a lock."""
        if key in self.keys or (self.rate > 0 and self.rng.random() < self.rate):
            target = record_id or "the record"
            raise SfError(
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {target}",
            )


def external_id_field(obj: SObject, name: str) -> str:
    """Return the canonical name of an external-id field of ``obj``; raise SfError NOT_FOUND."""
    f = obj.field(name)
    if f is None or not (f.external_id or f.name == "Id"):
        raise SfError("NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}")
    return f.name


def upsert(
    store: Store,
    obj: SObject,
    ext_field: str,
    value: Any,
    body: dict[str, Any],
    *,
    lock: LockPolicy,
    tx: Transaction | None = None,
    update_only: bool = False,
) -> tuple[str, bool]:
    """Create or update the record whose ``ext_field`` is ``value``; return (id, created).

    :raises MultipleMatchesError: several records carry ``value``.
    :raises SfError: validation, uniqueness or lock failures.
    """
    if value in (None, ""):
        raise SfError("MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field])
    ids = store.match(obj, ext_field, value)
    if len(ids) > 1:
        raise MultipleMatchesError(ids)
    if not ids and (update_only or ext_field == "Id"):
        raise SfError("NOT_FOUND", f"Provided external ID field value does not match a record: {value}")
    lock.check(str(value), ids[0] if ids else None)
    changes = store.validate(obj, {k: v for k, v in body.items() if k.lower() != ext_field.lower()})
    if not ids:
        f = obj.field(ext_field)
        assert f is not None
        changes[ext_field] = coerce(f, value)
    return store.write(obj, ids[0] if ids else None, changes, dt.datetime.now(dt.UTC), tx)


def insert(
    store: Store,
    obj: SObject,
    body: dict[str, Any],
    *,
    tx: Transaction | None = None,
    lock: LockPolicy | None = None,
) -> tuple[str, bool]:
    """Create a record; return (id, True).

    :param lock: when given, the insert may report UNABLE_TO_LOCK_ROW (keyed by the record's
        first external-id value), as inserts do when triggers lock parent rows.
    """
    if any(k.lower() == "id" for k in body):
        raise SfError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
    if lock is not None:
        key = next((str(v) for k, v in body.items() if _is_external_id(obj, k) and v not in (None, "")), "")
        lock.check(key, None)
    changes = store.validate(obj, body)
    return store.write(obj, None, changes, dt.datetime.now(dt.UTC), tx)


def update(
    store: Store,
    obj: SObject,
    record_id: str,
    body: dict[str, Any],
    lock: LockPolicy,
    *,
    tx: Transaction | None = None,
) -> tuple[str, bool]:
    """Update a record by id; return (id, False)."""
    check_id(store, obj, record_id, missing="INVALID_CROSS_REFERENCE_KEY")
    lock.check(record_id, record_id)
    changes = store.validate(obj, {k: v for k, v in body.items() if k.lower() != "id"})
    return store.write(obj, record_id, changes, dt.datetime.now(dt.UTC), tx)


def delete(
    store: Store,
    obj: SObject,
    record_id: str,
    *,
    hard: bool = False,
    lock: LockPolicy | None = None,
    tx: Transaction | None = None,
) -> tuple[str, bool]:
    """Delete a record by id to the recycle bin (``hard``: for good); return (id, False)."""
    check_id(store, obj, record_id)
    if lock is not None:
        lock.check(record_id, record_id)
    if hard:
        store.remove(obj, record_id, tx)
    else:
        store.recycle(obj, record_id, dt.datetime.now(dt.UTC), tx)
    return record_id, False


def check_id(store: Store, obj: SObject, record_id: str, missing: str = "ENTITY_IS_DELETED") -> None:
    """Raise the error Salesforce gives for an Id that names no live ``obj`` record.

    MALFORMED_ID for text that is not an id of ``obj``; ENTITY_IS_DELETED for a record in the
    recycle bin; ``missing`` for an id no record ever had (an update says
    INVALID_CROSS_REFERENCE_KEY, a delete ENTITY_IS_DELETED).
    """
    if not is_id_of(obj, record_id):
        raise SfError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {record_id}", ["Id"])
    if store.find(obj.name, record_id) is not None:
        return
    if store.find_deleted(obj.name, record_id) is not None or missing == "ENTITY_IS_DELETED":
        raise SfError("ENTITY_IS_DELETED", "entity is deleted", ["Id"])
    raise SfError(missing, f"invalid cross reference id: {record_id}", ["Id"])


def is_id_of(obj: SObject, record_id: str) -> bool:
    """Whether ``record_id`` looks like an 18-character id with ``obj``'s key prefix."""
    return len(record_id or "") == 18 and record_id.isalnum() and record_id.startswith(obj.prefix)


def _is_external_id(obj: SObject, name: str) -> bool:
    f = obj.field(name)
    return f is not None and f.external_id
