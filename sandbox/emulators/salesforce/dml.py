"""Upserts by external id, shared by the REST, sObject Collections and Bulk API 2.0 paths."""

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
    store: Store, obj: SObject, body: dict[str, Any], tx: Transaction | None = None
) -> tuple[str, bool]:
    """Create a record; return (id, True)."""
    changes = store.validate(obj, body)
    return store.write(obj, None, changes, dt.datetime.now(dt.UTC), tx)


def update(
    store: Store, obj: SObject, record_id: str, body: dict[str, Any], lock: LockPolicy
) -> tuple[str, bool]:
    """Update a record by id; return (id, False)."""
    if not record_id or store.find(obj.name, record_id) is None:
        raise SfError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}", ["Id"])
    lock.check(record_id, record_id)
    changes = store.validate(obj, {k: v for k, v in body.items() if k.lower() != "id"})
    return store.write(obj, record_id, changes, dt.datetime.now(dt.UTC), None)


def delete(store: Store, obj: SObject, record_id: str) -> tuple[str, bool]:
    """Delete a record by id; return (id, False)."""
    if not record_id or store.find(obj.name, record_id) is None:
        raise SfError("ENTITY_IS_DELETED", "entity is deleted", ["Id"])
    store.remove(obj, record_id)
    return record_id, False
