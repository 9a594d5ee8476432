"""The in-memory record store: DML rules, indexes on external-id and unique fields, rollback,
the recycle bin.

Writes validate a record the way Salesforce does (unknown and read-only fields, required fields,
types, restricted picklists, lookups, unique fields). A :class:`Transaction` undo log gives the
``allOrNone`` rollback of sObject Collections. A deleted record moves to the recycle bin
(``IsDeleted = true``): only ``queryAll`` sees it; retrieval, lookups and external-id matching
see live records only. ``after_write`` is where org automation (NPSP triggers) runs, inside the
same transaction as the write that set it off.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.emulators.salesforce.objects import (
    CLOSED_STAGES,
    SOBJECTS,
    WON_STAGE,
    Field,
    SfError,
    SObject,
    coerce,
    index_key,
    make_id,
    sf_datetime,
)


@dataclass
class Transaction:
    """An undo log: the previous version (None when created) of every record written."""

    before: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)

    def remember(self, name: str, record_id: str, old: dict[str, Any] | None) -> None:
        """Keep the version before this transaction's first write of the record."""
        if (name, record_id) not in self.before:
            self.before[(name, record_id)] = None if old is None else dict(old)


@dataclass(frozen=True)
class Change:
    """One validated write, as org automation sees it."""

    obj: SObject
    old: dict[str, Any] | None  # the previous version; None when the write created the record
    record: dict[str, Any]  # the stored version
    now: dt.datetime
    tx: Transaction  # automation writes inside it, so a rollback undoes them too


#: Runs after every validated write. It may write more records (through the store) or raise
#: SfError, which undoes the write that set it off.
AfterWrite = Callable[["Store", Change], None]


class Store:
    """Live records and the recycle bin per sObject, with indexes (live records) on external-id,
    unique and lookup fields.

    :param after_write: org automation run after each validated write (see :data:`AfterWrite`).
    """

    def __init__(self, after_write: AfterWrite | None = None) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SOBJECTS}
        self.recycle_bin: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SOBJECTS}
        self.indexes: dict[tuple[str, str], dict[str, set[str]]] = {
            (o.name, f.name): {}
            for o in SOBJECTS.values()
            for f in o.fields
            if f.external_id or f.unique or f.type == "reference"
        }
        self.after_write = after_write
        self._numbers = itertools.count(1)

    def new_id(self, obj: SObject) -> str:
        """Allocate a record id for ``obj``."""
        return make_id(obj.prefix, next(self._numbers))

    def match(self, obj: SObject, field_name: str, value: Any) -> list[str]:
        """Return the ids of records whose ``field_name`` equals ``value``."""
        if field_name == "Id":
            return [value] if value in self.tables[obj.name] else []
        return sorted(self.indexes[(obj.name, field_name)].get(index_key(value), set()))

    def children(self, obj: SObject, field_name: str, parent_id: str) -> list[dict[str, Any]]:
        """Return the live ``obj`` records whose lookup ``field_name`` points at ``parent_id``."""
        return [self.tables[obj.name][i] for i in self.match(obj, field_name, parent_id)]

    def find(self, obj_name: str, record_id: str) -> dict[str, Any] | None:
        """Return a live record by id."""
        return self.tables[obj_name].get(record_id)

    def find_deleted(self, obj_name: str, record_id: str) -> dict[str, Any] | None:
        """Return a record of the recycle bin by id."""
        return self.recycle_bin[obj_name].get(record_id)

    def records(self, obj_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Return the live records of ``obj_name`` (and those in the recycle bin: ``queryAll``)."""
        rows = list(self.tables[obj_name].values())
        return rows + list(self.recycle_bin[obj_name].values()) if include_deleted else rows

    def put(self, obj: SObject, record: dict[str, Any], tx: Transaction | None = None) -> None:
        """Store ``record`` (replacing its previous version) and update the indexes."""
        table = self.tables[obj.name]
        old = table.get(record["Id"])
        if tx is not None:
            tx.remember(obj.name, record["Id"], old)
        self._unindex(obj, old)
        table[record["Id"]] = record
        self._index(obj, record)

    def touch(
        self,
        obj: SObject,
        record_id: str,
        changes: dict[str, Any],
        now: dt.datetime,
        tx: Transaction | None = None,
    ) -> dict[str, Any]:
        """Apply a system change (no validation, no automation) and bump the modification stamps."""
        record = {**self.tables[obj.name][record_id], **changes}
        record["LastModifiedDate"] = record["SystemModstamp"] = sf_datetime(now)
        self.put(obj, record, tx)
        return record

    def recycle(
        self,
        obj: SObject,
        record_id: str,
        now: dt.datetime,
        tx: Transaction | None = None,
        master_id: str | None = None,
    ) -> None:
        """Move a live record to the recycle bin (``IsDeleted``; ``MasterRecordId`` after a merge)."""
        old = self.tables[obj.name].pop(record_id)
        if tx is not None:
            tx.remember(obj.name, record_id, old)
        self._unindex(obj, old)
        record = {**old, "IsDeleted": True, "LastModifiedDate": sf_datetime(now)}
        record["SystemModstamp"] = record["LastModifiedDate"]
        if master_id is not None:
            record["MasterRecordId"] = master_id
        self.recycle_bin[obj.name][record_id] = record

    def remove(self, obj: SObject, record_id: str, tx: Transaction | None = None) -> None:
        """Delete a record for good (live or in the recycle bin): hardDelete, rollback."""
        old = self.tables[obj.name].pop(record_id, None)
        if tx is not None and old is not None:
            tx.remember(obj.name, record_id, old)
        self._unindex(obj, old)
        self.recycle_bin[obj.name].pop(record_id, None)

    def rollback(self, tx: Transaction) -> None:
        """Undo every write of ``tx`` (creates, updates and deletes)."""
        for (name, record_id), old in reversed(list(tx.before.items())):
            obj = SOBJECTS[name]
            self.remove(obj, record_id)
            if old is not None:
                self.put(obj, old)
        tx.before.clear()

    def _index(self, obj: SObject, record: dict[str, Any]) -> None:
        for (name, fname), index in self.indexes.items():
            if name == obj.name and record.get(fname) is not None:
                index.setdefault(index_key(record[fname]), set()).add(record["Id"])

    def _unindex(self, obj: SObject, record: dict[str, Any] | None) -> None:
        if record is None:
            return
        for (name, fname), index in self.indexes.items():
            if name == obj.name and record.get(fname) is not None:
                index.get(index_key(record[fname]), set()).discard(record["Id"])

    def resolve_reference(
        self, obj: SObject, relationship: str, ext_field: str, value: Any
    ) -> tuple[str, str]:
        """Resolve ``Relationship.ExtField = value`` to (reference field name, parent id); raise SfError."""
        ref = obj.relationship(relationship)
        parent = SOBJECTS.get(ref.reference_to) if ref else None
        if ref is None or parent is None:
            raise SfError("INVALID_FIELD", f"No such relation '{relationship}' on entity '{obj.name}'")
        pf = parent.field(ext_field)
        if pf is None or not (pf.external_id or pf.name == "Id"):
            raise SfError(
                "INVALID_FIELD", f"Invalid foreign key relationship name {relationship}.{ext_field}"
            )
        ids = self.match(parent, pf.name, value)
        if len(ids) != 1:
            problem = "not found" if not ids else "matched multiple records"
            raise SfError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} {problem} for field {pf.name} in entity {parent.name}",
                [ref.name],
            )
        return ref.name, ids[0]

    def _relationship_value(self, obj: SObject, name: str, value: Any) -> tuple[str, str]:
        """Resolve ``Rel.Ext__c: v`` (CSV) or ``Rel: {"Ext__c": v}`` (JSON) to (field, parent id)."""
        rel, _, ext = name.partition(".")
        if isinstance(value, dict):
            ext, value = next(((k, v) for k, v in value.items() if k != "attributes"), ("", None))
        return self.resolve_reference(obj, rel, ext, value)

    def _check_reference(self, obj: SObject, f: Field, value: Any) -> None:
        """Raise INVALID_CROSS_REFERENCE_KEY when a lookup or record type names nothing valid."""
        if f.name == "RecordTypeId" and value and value not in [rt[0] for rt in obj.record_types]:
            raise SfError(
                "INVALID_CROSS_REFERENCE_KEY",
                f"Record Type ID: this ID value isn't valid for the user: {value}",
                [f.name],
            )
        if (
            f.type == "reference"
            and value
            and f.reference_to in SOBJECTS
            and value not in self.tables[f.reference_to]
        ):
            raise SfError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", [f.name])

    def validate(self, obj: SObject, changes: dict[str, Any]) -> dict[str, Any]:
        """Return ``changes`` with known field names and stored values; raise SfError."""
        clean: dict[str, Any] = {}
        read_only: list[str] = []
        for name, value in changes.items():
            if name == "attributes":
                continue
            f = obj.field(name)
            if f is None and ("." in name or isinstance(value, dict)):
                ref_field, parent_id = self._relationship_value(obj, name, value)
                clean[ref_field] = parent_id
            elif f is None:
                raise SfError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}", [name]
                )
            elif not f.updateable:
                read_only.append(f.name)
            else:
                self._check_reference(obj, f, value)
                clean[f.name] = coerce(f, value)
        if read_only:
            raise SfError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission set.",
                read_only,
            )
        return clean

    def write(
        self,
        obj: SObject,
        record_id: str | None,
        changes: dict[str, Any],
        now: dt.datetime,
        tx: Transaction | None,
    ) -> tuple[str, bool]:
        """Create (``record_id`` None) or update a record with validated ``changes``; return (id, created)."""
        created = record_id is None
        record = {} if created else dict(self.tables[obj.name][str(record_id)])
        if created:
            record = {f.name: _default(f) for f in obj.fields}
            record.update(Id=self.new_id(obj), CreatedDate=sf_datetime(now), IsDeleted=False)
            if obj.record_types:
                record["RecordTypeId"] = obj.record_types[0][0]  # the default: Household Account, Donation
        record.update(changes)
        missing = [f.name for f in obj.fields if f.required and record.get(f.name) in (None, "")]
        if missing:
            raise SfError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        for f in obj.fields:
            if f.unique and record.get(f.name) is not None:
                others = [i for i in self.match(obj, f.name, record[f.name]) if i != record["Id"]]
                if others:
                    raise SfError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {f.name} duplicates value on record with id: {others[0]}",
                        [f.name],
                    )
        _derive(obj, record)
        record["LastModifiedDate"] = record["SystemModstamp"] = sf_datetime(now)
        old = None if created else self.tables[obj.name][record["Id"]]
        local = Transaction()
        self.put(obj, record, local)
        if self.after_write is not None:
            try:
                self.after_write(self, Change(obj, old, record, now, local))
            except SfError:
                self.rollback(local)
                raise
        if tx is not None:
            for (name, rid), before in local.before.items():
                tx.remember(name, rid, before)
        return record["Id"], created


def _derive(obj: SObject, record: dict[str, Any]) -> None:
    """Set the fields Salesforce computes: Contact.Name, a recurring donation's default Name,
    Opportunity.IsClosed / IsWon (from the stage)."""
    if obj.name == "Contact":
        record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
    if obj.name == "npe03__Recurring_Donation__c" and not record.get("Name"):
        record["Name"] = f"RD-{record['Id'][-8:]}"
    if obj.name == "Opportunity":
        record["IsClosed"] = record.get("StageName") in CLOSED_STAGES
        record["IsWon"] = record.get("StageName") == WON_STAGE


def _default(f: Field) -> Any:
    if f.type == "boolean":
        return f.default == "true"
    return f.default if f.type == "picklist" else None
