"""CRM object types, records and their unique-value indexes (contacts, deals, companies, custom)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.emulators.hubspot.errors import HubSpotError, now_iso

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_SYSTEM = ["hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_createdate"]


def _prop(name: str, *, type_: str = "string", unique: bool = False) -> dict[str, Any]:
    field_type = {"number": "number", "date": "date", "datetime": "date", "enumeration": "select"}.get(
        type_, "text"
    )
    return {
        "name": name,
        "label": name.replace("_", " ").title(),
        "type": type_,
        "fieldType": field_type,
        "groupName": "sandbox",
        "hasUniqueValue": unique,
        "options": [],
    }


@dataclass
class ObjectType:
    """One CRM object type and its property definitions."""

    type_id: str
    name: str
    singular: str
    default_properties: list[str]
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """Return the upper-case singular HubSpot prints in messages (``CONTACT``)."""
        return self.singular.upper()

    def unique_properties(self) -> list[str]:
        """Return the properties with ``hasUniqueValue`` (email for contacts)."""
        return [n for n, p in self.properties.items() if p.get("hasUniqueValue")]

    def add_properties(self, definitions: list[dict[str, Any]]) -> None:
        """Add property definitions, keeping those already present."""
        for definition in definitions:
            name = str(definition["name"])
            self.properties.setdefault(name, {**_prop(name), **definition})


def builtin_types(unique: dict[str, list[str]], extra: dict[str, list[str]]) -> dict[str, ObjectType]:
    """Return contacts, companies and deals with their standard properties.

    :param unique: extra unique (``hasUniqueValue``) properties per type name, from settings.
    :param extra: extra plain properties per type name, from settings.
    """
    specs: list[tuple[str, str, str, list[str], list[str]]] = [
        (
            "0-1",
            "contacts",
            "contact",
            ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
            [
                "phone",
                "mobilephone",
                "address",
                "city",
                "state",
                "zip",
                "country",
                "company",
                "jobtitle",
                "website",
                "lifecyclestage",
                "hs_lead_status",
                "hs_additional_emails",
                "hs_merged_object_ids",
            ],
        ),
        (
            "0-2",
            "companies",
            "company",
            ["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
            ["phone", "city", "state", "country", "industry", "description"],
        ),
        (
            "0-3",
            "deals",
            "deal",
            [
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
            ["dealtype", "description", "hubspot_owner_id", "deal_currency_code"],
        ),
    ]
    types: dict[str, ObjectType] = {}
    for type_id, name, singular, defaults, others in specs:
        kinds = {"amount": "number", "closedate": "datetime", "createdate": "datetime"}
        props = {n: _prop(n, type_=kinds.get(n, "string")) for n in [*defaults, *others, *_SYSTEM]}
        props.update({n: _prop(n) for n in extra.get(name, [])})
        props.update({n: _prop(n, unique=True) for n in unique.get(name, [])})
        if name == "contacts":
            props["email"] = _prop("email", unique=True)
        types[type_id] = ObjectType(type_id, name, singular, defaults, props)
    return types


@dataclass
class Record:
    """One CRM object."""

    id: str
    type_id: str
    properties: dict[str, str | None]
    created_at: str
    updated_at: str
    archived: bool = False

    def public(self, wanted: list[str] | None, defaults: list[str]) -> dict[str, Any]:
        """Return the ``SimplePublicObject`` for this record with the ``wanted`` properties."""
        if wanted:
            props = {n: self.properties.get(n) for n in wanted}
        else:
            props = {n: self.properties[n] for n in defaults if self.properties.get(n) is not None}
        return {
            "id": self.id,
            "properties": props,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": self.archived,
        }

    def written(self) -> dict[str, Any]:
        """Return the object with every stored property (what write endpoints answer)."""
        return self.public(sorted(self.properties), [])


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def invalid_properties(errors: list[dict[str, Any]]) -> HubSpotError:
    """Return HubSpot's 400 for property values that were not valid."""
    return HubSpotError(
        400,
        "Property values were not valid: " + json.dumps(errors, separators=(",", ":")),
        context={"propertyName": [str(e["name"]) for e in errors]},
    )


@dataclass
class ObjectStore:
    """Records of every type, unique indexes, merges and the GDPR blocklist."""

    types: dict[str, ObjectType]
    strict_properties: bool = True
    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    indexes: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    blocklist: set[str] = field(default_factory=set)
    next_id: int = 1001

    # -- types --------------------------------------------------------------------------------------
    def resolve(self, object_type: str) -> ObjectType:
        """Return the type named by an id (``0-1``), a name, a singular or a custom object's names."""
        wanted = object_type.lower()
        for candidate in self.types.values():
            names = {candidate.type_id, candidate.name, candidate.singular}
            if candidate.schema:
                names |= {candidate.schema["fullyQualifiedName"].lower(), f"p_{candidate.name}"}
            if wanted in names:
                return candidate
        raise HubSpotError(400, f"Unable to infer object type from: {object_type}")

    def of(self, kind: ObjectType) -> dict[str, Record]:
        """Return the records of ``kind`` by id."""
        return self.records.setdefault(kind.type_id, {})

    # -- lookups ------------------------------------------------------------------------------------
    def find(self, kind: ObjectType, value: str, id_property: str | None = None) -> Record | None:
        """Return the live record whose id (or unique ``id_property``) is ``value``."""
        if id_property in (None, "", "hs_object_id"):
            object_id = self.merged_into.get(str(value), str(value))
            found = self.of(kind).get(object_id)
            return found if found and not found.archived else None
        prop = str(id_property)
        if prop not in kind.unique_properties():
            raise HubSpotError(
                400,
                f"{prop} is not a unique property of {kind.label}; use hs_object_id or a property with "
                "hasUniqueValue.",
                context={"idProperty": [prop]},
            )
        object_id_or_none = self.indexes.get((kind.type_id, prop), {}).get(self._key(prop, value))
        return self.find(kind, object_id_or_none) if object_id_or_none else None

    def require(self, kind: ObjectType, value: str, id_property: str | None = None) -> Record:
        """Return the record or raise HubSpot's 404."""
        found = self.find(kind, value, id_property)
        if found is None:
            raise HubSpotError(
                404, "Object not found.  objectId are usually numeric.", context={"id": [value]}
            )
        return found

    @staticmethod
    def _key(prop: str, value: str) -> str:
        return value.strip().lower() if prop == "email" else value

    # -- validation ---------------------------------------------------------------------------------
    def _clean(self, kind: ObjectType, raw: dict[str, Any]) -> dict[str, str | None]:
        if not isinstance(raw, dict):
            raise HubSpotError(400, "Invalid input JSON: properties must be an object")
        problems: list[dict[str, Any]] = []
        clean: dict[str, str | None] = {}
        for name, value in raw.items():
            if self.strict_properties and name not in kind.properties:
                problems.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                        "localizedErrorMessage": f'Property "{name}" does not exist',
                    }
                )
                continue
            text = _as_text(value)
            if name == "email" and text:
                text = text.strip().lower()
                if not _EMAIL.match(text):
                    problems.append(
                        {
                            "isValid": False,
                            "message": f"Email address {text} is invalid",
                            "error": "INVALID_EMAIL",
                            "name": "email",
                            "localizedErrorMessage": f"Email address {text} is invalid",
                        }
                    )
                    continue
                if text in self.blocklist:
                    raise HubSpotError(
                        400,
                        f"Contact with email {text} was permanently deleted (GDPR) and cannot be re-created.",
                        sub_category="GDPR_BLOCKLISTED",
                        context={"email": [text]},
                    )
            clean[name] = text if text != "" else None
        if problems:
            raise invalid_properties(problems)
        return clean

    def _check_unique(self, kind: ObjectType, props: dict[str, str | None], own_id: str | None) -> None:
        for prop in kind.unique_properties():
            value = props.get(prop)
            if not value:
                continue
            holder = self.indexes.get((kind.type_id, prop), {}).get(self._key(prop, value))
            if holder and holder != own_id and self.find(kind, holder):
                if kind.name == "contacts" and prop == "email":
                    message = f"Contact already exists. Existing ID: {holder}"
                else:
                    message = f"A {kind.singular} with {prop} {value!r} already exists. Existing ID: {holder}"
                raise HubSpotError(409, message, context={"existingId": [holder], "propertyName": [prop]})

    def _index(self, record: Record, kind: ObjectType) -> None:
        for prop in kind.unique_properties():
            value = record.properties.get(prop)
            if value:
                self.indexes.setdefault((kind.type_id, prop), {})[self._key(prop, value)] = record.id

    def _unindex(self, record: Record, kind: ObjectType) -> None:
        for prop in kind.unique_properties():
            value = record.properties.get(prop)
            index = self.indexes.get((kind.type_id, prop), {})
            if value and index.get(self._key(prop, value)) == record.id:
                del index[self._key(prop, value)]

    # -- writes -------------------------------------------------------------------------------------
    def create(self, kind: ObjectType, raw: dict[str, Any]) -> Record:
        """Create a record (409 when a unique value is taken)."""
        props = self._clean(kind, raw)
        self._check_unique(kind, props, None)
        for required in (kind.schema or {}).get("requiredProperties", []):
            if not props.get(required):
                raise HubSpotError(
                    400, f"Missing required property {required!r}", context={"propertyName": [required]}
                )
        object_id = str(self.next_id)
        self.next_id += 1
        stamp = now_iso()
        system = {"hs_object_id": object_id, "hs_lastmodifieddate": stamp}
        system["createdate" if kind.schema is None else "hs_createdate"] = stamp
        if kind.name == "contacts":
            system["lastmodifieddate"] = stamp
        record = Record(object_id, kind.type_id, {**props, **system}, stamp, stamp)
        self.of(kind)[object_id] = record
        self._index(record, kind)
        return record

    def update(self, kind: ObjectType, record: Record, raw: dict[str, Any]) -> Record:
        """Update ``record``'s properties (409 when a unique value is taken)."""
        props = self._clean(kind, raw)
        self._check_unique(kind, props, record.id)
        self._unindex(record, kind)
        record.properties.update(props)
        record.updated_at = now_iso()
        record.properties["hs_lastmodifieddate"] = record.updated_at
        if kind.name == "contacts":
            record.properties["lastmodifieddate"] = record.updated_at
        self._index(record, kind)
        return record

    def upsert(
        self, kind: ObjectType, value: str, id_property: str | None, raw: dict[str, Any]
    ) -> tuple[Record, bool]:
        """Update the record keyed by ``value`` or create it; return it and whether it is new."""
        found = self.find(kind, value, id_property)
        if found is not None:
            return self.update(kind, found, raw), False
        if id_property in (None, "", "hs_object_id"):
            raise HubSpotError(404, f"No {kind.singular} with id {value} to update", context={"id": [value]})
        return self.create(kind, {**raw, str(id_property): value}), True

    def archive(self, kind: ObjectType, record: Record) -> None:
        """Archive (soft-delete) ``record``."""
        self._unindex(record, kind)
        record.archived = True

    def gdpr_delete(self, kind: ObjectType, value: str, id_property: str | None) -> Record | None:
        """Delete a contact permanently and blocklist its email (even when no contact had it)."""
        found = self.find(kind, value, id_property)
        if found is None and id_property == "email":
            self.blocklist.add(value.strip().lower())
            return None
        if found is None:
            raise HubSpotError(
                404, "Object not found.  objectId are usually numeric.", context={"id": [value]}
            )
        for prop in ("email", "hs_additional_emails"):
            for email in (found.properties.get(prop) or "").split(";"):
                if email:
                    self.blocklist.add(email.strip().lower())
        self._unindex(found, kind)
        del self.of(kind)[found.id]
        for old, new in list(self.merged_into.items()):
            if new == found.id:
                del self.merged_into[old]
        return found

    def merge(self, kind: ObjectType, primary_id: str, other_id: str) -> Record:
        """Merge ``other_id`` into ``primary_id``; the primary's values win, blanks are filled."""
        primary = self.require(kind, primary_id)
        other = self.require(kind, other_id)
        if primary.id == other.id:
            raise HubSpotError(
                400, "Cannot merge an object with itself", context={"objectIdToMerge": [other_id]}
            )
        self._unindex(other, kind)
        for name, value in other.properties.items():
            if name not in _SYSTEM and value is not None and primary.properties.get(name) is None:
                primary.properties[name] = value
        other_email = other.properties.get("email")
        if kind.name == "contacts" and other_email and other_email != primary.properties.get("email"):
            extra = [e for e in (primary.properties.get("hs_additional_emails") or "").split(";") if e]
            primary.properties["hs_additional_emails"] = ";".join([*extra, other_email])
            self.indexes.setdefault((kind.type_id, "email"), {})[other_email] = primary.id
        merged = [m for m in (primary.properties.get("hs_merged_object_ids") or "").split(";") if m]
        primary.properties["hs_merged_object_ids"] = ";".join([*merged, other.id])
        del self.of(kind)[other.id]
        for old, new in list(self.merged_into.items()):
            if new == other.id:
                self.merged_into[old] = primary.id
        self.merged_into[other.id] = primary.id
        primary.updated_at = now_iso()
        primary.properties["hs_lastmodifieddate"] = primary.updated_at
        if kind.name == "contacts":  # a merge is a change of the surviving contact, as for an edit
            primary.properties["lastmodifieddate"] = primary.updated_at
        self._index(primary, kind)
        return primary
