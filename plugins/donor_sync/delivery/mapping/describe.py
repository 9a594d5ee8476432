"""Check a mapping against the destination's own metadata (Salesforce describe, HubSpot properties).

A mapping can be valid on its own and still be refused by the destination: a field the org does
not have, a read-only field, a picklist value the org does not offer, a constant longer than the
field. :func:`normalize` turns either vendor's document into one :class:`DescribedObject`, and
:func:`check_against_describe` reports those problems with the mapping file's line and field,
before a push finds them one dead letter at a time.

Documents are fetched by the connectors and cached in ``sync.describe_cache``
(:mod:`donor_sync.delivery.mapping.describe_cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from donor_sync.delivery.contracts import HUBSPOT, SALESFORCE, SyncMode
from donor_sync.delivery.mapping.model import DestinationMapping, FieldMapping, ObjectMapping, Truncate
from donor_sync.delivery.mapping.problems import Loc, Problem, mapping_problem
from donor_sync.delivery.mapping.transforms import TransformError, compile_step, convert, step_outputs
from donor_sync.errors import DonorSyncError

_SALESFORCE_TYPES = {
    "string": "string",
    "textarea": "string",
    "email": "string",
    "phone": "string",
    "url": "string",
    "encryptedstring": "string",
    "combobox": "string",
    "picklist": "picklist",
    "multipicklist": "picklist",
    "boolean": "boolean",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "integer",
    "long": "integer",
    "date": "date",
    "datetime": "datetime",
    "reference": "reference",
    "id": "id",
}
_HUBSPOT_TYPES = {
    "string": "string",
    "phone_number": "string",
    "enumeration": "picklist",
    "bool": "boolean",
    "number": "number",
    "date": "date",
    "datetime": "datetime",
}
#: Destination types (normalized) a mapping's field type may be written to.
COMPATIBLE: Mapping[str, frozenset[str]] = {
    "string": frozenset({"string", "picklist"}),
    "picklist": frozenset({"picklist", "string"}),
    "boolean": frozenset({"boolean"}),
    "number": frozenset({"number"}),
    "integer": frozenset({"integer", "number"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
}


@dataclass(frozen=True)
class DescribedField:
    """One destination field as its metadata describes it, in a vendor-neutral form.

    ``type`` is normalized (string, picklist, boolean, number, integer, date, datetime,
    reference, id, or other); ``picklist_values`` holds the active values (None: not a picklist,
    or one whose values the metadata does not list).
    """

    name: str
    type: str
    vendor_type: str
    length: int | None = None
    createable: bool = True
    updateable: bool = True
    picklist_values: frozenset[str] | None = None
    external_id: bool = False
    relationship_name: str | None = None
    reference_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class DescribedObject:
    """A destination object's fields (Salesforce field names are case-insensitive, HubSpot's not)."""

    destination: str
    name: str
    fields: Mapping[str, DescribedField]
    case_insensitive: bool = False
    _index: dict[str, DescribedField] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in self.fields.values():
            self._index[self._fold(f.name)] = f
            if f.relationship_name:
                self._index.setdefault("rel:" + self._fold(f.relationship_name), f)

    def _fold(self, name: str) -> str:
        return name.casefold() if self.case_insensitive else name

    def field(self, name: str) -> DescribedField | None:
        """Return the field called ``name``."""
        return self._index.get(self._fold(name))

    def relationship(self, name: str) -> DescribedField | None:
        """Return the reference field whose relationship is called ``name``."""
        return self._index.get("rel:" + self._fold(name))


def normalize_salesforce(doc: Mapping[str, Any]) -> DescribedObject:
    """Return an sObject describe document (``GET .../sobjects/{name}/describe``) as a DescribedObject."""
    fields: dict[str, DescribedField] = {}
    for raw in doc.get("fields") or []:
        vendor_type = str(raw.get("type") or "")
        values = raw.get("picklistValues") or []
        fields[str(raw["name"])] = DescribedField(
            name=str(raw["name"]),
            type=_SALESFORCE_TYPES.get(vendor_type, "other"),
            vendor_type=vendor_type,
            length=int(raw["length"]) if raw.get("length") else None,
            createable=bool(raw.get("createable", True)),
            updateable=bool(raw.get("updateable", True)),
            picklist_values=(
                frozenset(str(v["value"]) for v in values if v.get("active", True)) if values else None
            ),
            external_id=bool(raw.get("externalId")),
            relationship_name=raw.get("relationshipName") or None,
            reference_to=tuple(raw.get("referenceTo") or ()),
        )
    return DescribedObject(SALESFORCE, str(doc.get("name") or ""), fields, case_insensitive=True)


def normalize_hubspot(object_name: str, doc: Mapping[str, Any]) -> DescribedObject:
    """Return a HubSpot properties document (``GET /crm/v3/properties/{objectType}``) as a
    DescribedObject."""
    fields: dict[str, DescribedField] = {}
    for raw in doc.get("results") or []:
        vendor_type = str(raw.get("type") or "")
        kind = _HUBSPOT_TYPES.get(vendor_type, "other")
        if kind == "picklist" and raw.get("fieldType") == "booleancheckbox":
            kind = "boolean"
        options = raw.get("options") or []
        read_only = bool((raw.get("modificationMetadata") or {}).get("readOnlyValue")) or bool(
            raw.get("calculated")
        )
        fields[str(raw["name"])] = DescribedField(
            name=str(raw["name"]),
            type=kind,
            vendor_type=vendor_type,
            createable=not read_only,
            updateable=not read_only,
            picklist_values=(
                frozenset(str(o["value"]) for o in options if not o.get("hidden")) if options else None
            ),
            external_id=bool(raw.get("hasUniqueValue")),
        )
    return DescribedObject(HUBSPOT, object_name, fields)


def normalize(destination: str, object_name: str, doc: Mapping[str, Any]) -> DescribedObject:
    """Return ``doc`` (the vendor's metadata document of ``object_name``) as a DescribedObject.

    HubSpot properties documents have ``results``; anything else is read as a Salesforce describe.
    """
    if destination == HUBSPOT or "results" in doc:
        return normalize_hubspot(object_name, doc)
    return normalize_salesforce(doc)


#: Objects that are not CRM objects and have no property metadata to check against, per
#: destination: HubSpot's communication subscription statuses (their checks are
#: :func:`donor_sync.delivery.connectors.hubspot.subscriptions_write.check_mapping`).
UNDESCRIBED_OBJECTS: Mapping[str, frozenset[str]] = {
    HUBSPOT: frozenset({"communication_preferences"}),
    # Braze has no field metadata API: users take any custom attribute, events any property.
    "braze": frozenset({"users", "subscription_groups", "events"}),
    # Mailchimp members have fixed fields plus merge fields, which the connector creates
    # (MailchimpConnector.ensure_merge_fields) and checks by type when it is built.
    "mailchimp": frozenset({"members"}),
}


def needs_metadata(mapping: DestinationMapping) -> bool:
    """Whether any object of ``mapping`` has field metadata at the destination to check against."""
    undescribed = UNDESCRIBED_OBJECTS.get(mapping.destination, frozenset())
    return any(
        obj.association is None and obj.object is not None and obj.object not in undescribed
        for obj in mapping.objects
    )


#: Returns an object's described metadata, None when the destination has no such object.
DescribeLookup = Callable[[str], DescribedObject | None]


# -- the check -------------------------------------------------------------------------------------


def literal_outputs(f: FieldMapping, tables: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Return the values a field can send that the file itself spells out (its constant, defaults,
    lookup and picklist outputs, boolean mappings), after the steps that follow them."""
    known: set[Any] = {f.value} if f.from_ is None and f.value is not None else set()
    for step in f.transforms:
        func = compile_step(step, tables)
        after: set[Any] = set()
        for value in known:
            try:
                after.add(func(value))
            except TransformError:
                continue
        known = after | set(step_outputs(step, tables))
    out: set[str] = set()
    for value in known:
        try:
            converted = convert(value, f.type or "string")
        except TransformError:
            continue
        if isinstance(converted, str):
            out.add(converted)
    return out


def _writable(mode: SyncMode, described: DescribedField) -> str | None:
    needs_create = mode in (SyncMode.UPSERT, SyncMode.MIRROR, SyncMode.CREATE_ONLY)
    needs_update = mode in (SyncMode.UPSERT, SyncMode.MIRROR, SyncMode.UPDATE_ONLY)
    if needs_create and not described.createable:
        return "the destination does not let this field be set on create"
    if needs_update and not described.updateable:
        return "the destination does not let this field be updated"
    return None


class _Checker:
    def __init__(self, mapping: DestinationMapping, lookup: DescribeLookup) -> None:
        self.mapping = mapping
        self.lookup = lookup
        self.cache: dict[str, DescribedObject | str | None] = {}

    def describe(self, name: str) -> DescribedObject | str | None:
        """Return the object's metadata, None when it does not exist, or the fetch error's text."""
        if name not in self.cache:
            try:
                self.cache[name] = self.lookup(name)
            except DonorSyncError as exc:
                self.cache[name] = str(exc)
        return self.cache[name]

    def problems(self) -> Iterator[tuple[Loc, str]]:
        for i, obj in enumerate(self.mapping.objects):
            undescribed = UNDESCRIBED_OBJECTS.get(self.mapping.destination, frozenset())
            if obj.association is None and obj.object is not None and obj.object not in undescribed:
                yield from self.object(("objects", i), obj)

    def object(self, base: Loc, obj: ObjectMapping) -> Iterator[tuple[Loc, str]]:
        assert obj.object is not None
        described = self.describe(obj.object)
        if isinstance(described, str):
            yield (*base, "object"), f"cannot read the metadata of {obj.object}: {described}"
            return
        if described is None:
            yield (*base, "object"), f"the destination has no object {obj.object!r}"
            return
        if obj.external_id is not None:
            ext = described.field(obj.external_id)
            if ext is None:
                yield (*base, "external_id"), f"{obj.object} has no field {obj.external_id!r}"
            elif not ext.external_id:
                message = (
                    f"{obj.object}.{ext.name} is not an external id (unique) field: upserts cannot key on it"
                )
                yield (*base, "external_id"), message
        for j, f in enumerate(obj.fields):
            if f.enabled:
                yield from self.field((*base, "fields", j), obj, described, f)

    def field(
        self, base: Loc, obj: ObjectMapping, described: DescribedObject, f: FieldMapping
    ) -> Iterator[tuple[Loc, str]]:
        if f.reference is not None:
            yield from self.reference(base, obj, described, f)
            return
        target = described.field(f.to)
        if target is None:
            yield (*base, "to"), f"{described.name} has no field {f.to!r}"
            return
        refused = _writable(obj.mode, target)
        if refused:
            yield (*base, "to"), refused
        if f.type is not None and target.type != "other" and target.type not in COMPATIBLE[f.type]:
            yield (
                (*base, "type"),
                f"{f.to} is a {target.vendor_type} field; a {f.type} cannot be written to it",
            )
        outputs = literal_outputs(f, self.mapping.tables)
        if target.picklist_values is not None:
            for value in sorted(outputs - target.picklist_values):
                yield (
                    (*base, "to"),
                    (
                        f"{value!r} is not an active value of {described.name}.{target.name}; "
                        f"allowed: {', '.join(sorted(target.picklist_values))}"
                    ),
                )
        if target.length:
            for value in sorted(v for v in outputs if len(v) > target.length):
                yield (*base, "to"), (f"{value!r} is longer than {target.name}'s {target.length} characters")
            cuts = [s.truncate for s in f.transforms if isinstance(s, Truncate)]
            if cuts and cuts[-1] > target.length:
                yield (
                    (*base, "transforms"),
                    (f"truncate {cuts[-1]} exceeds {target.name}'s length of {target.length} characters"),
                )

    def reference(
        self, base: Loc, obj: ObjectMapping, described: DescribedObject, f: FieldMapping
    ) -> Iterator[tuple[Loc, str]]:
        ref = f.reference
        assert ref is not None
        lookup_field = described.relationship(f.to)
        if lookup_field is None:
            yield (*base, "to"), f"{described.name} has no relationship {f.to!r}"
            return
        refused = _writable(obj.mode, lookup_field)
        if refused:
            yield (*base, "to"), f"{lookup_field.name}: {refused}"
        if ref.entity is not None:
            parent = self.mapping.object(ref.entity)
            parent_object, external_id = parent.object, ref.external_id or parent.external_id
        else:
            parent_object, external_id = ref.object, ref.external_id
        if parent_object and lookup_field.reference_to and parent_object not in lookup_field.reference_to:
            targets = ", ".join(lookup_field.reference_to)
            yield (*base, "reference"), f"{lookup_field.name} points at {targets}, not {parent_object}"
            return
        parent_described = self.describe(parent_object) if parent_object else None
        if isinstance(parent_described, DescribedObject) and external_id:
            ext = parent_described.field(external_id)
            if ext is None or not ext.external_id:
                message = (
                    f"{parent_object}.{external_id} is not an external id field: references cannot use it"
                )
                yield (*base, "reference"), message


def check_against_describe(mapping: DestinationMapping, describe_lookup: DescribeLookup) -> list[Problem]:
    """Return the problems of ``mapping`` against the destination's metadata.

    Reports objects and fields the destination lacks, fields it does not let the mapping's mode
    write, type mismatches, picklist values (constants, defaults, lookup and translation outputs)
    not among the active values, constants longer than the field, truncations longer than the
    field, and external ids that are not external id (unique) fields. Disabled fields are skipped.
    """
    checker = _Checker(mapping, describe_lookup)
    return [mapping_problem(mapping, loc, message) for loc, message in checker.problems()]
