"""Render core rows into destination records (:class:`~donor_sync.delivery.contracts.RenderedRecord`).

A row of one kind (donor, household, gift, recurring_plan) gives one record per object of the
mapping computed from that kind and passing the object's ``when``. Each field's value is read
(one source field, several, or a constant), transformed step by step, converted to the field's
destination type, and left out of the payload when it is null unless ``sync_nulls`` is set, so a
missing value never blanks what the destination holds. A reference becomes the vendor's
external-id form (``{"Account": {"Donor_Sync_Id__c": "<household id>"}}``) and a dependency of
the record; an association's payload names its type and its two ends are its dependencies.

The external id itself is never in the payload: it is the record key, and the connector puts it
where the vendor wants it (Salesforce upsert URL, HubSpot ``idProperty``).

A mapping is compiled once (closures per field) and kept on the mapping object, so rendering
100,000 rows costs the transforms, not the YAML model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from donor_sync.delivery.contracts import SOURCE_FIELDS, Operation, RecordRef, RenderedRecord, SyncMode
from donor_sync.delivery.mapping.checks import dependencies
from donor_sync.delivery.mapping.model import Condition, DestinationMapping, FieldMapping, ObjectMapping
from donor_sync.delivery.mapping.transforms import Step, TransformError, compile_step, convert, is_blank, text
from donor_sync.errors import ConfigError, DonorSyncError

Row = Mapping[str, Any]

OPERATIONS: Mapping[SyncMode, Operation] = {
    SyncMode.UPSERT: Operation.UPSERT,
    SyncMode.MIRROR: Operation.UPSERT,
    SyncMode.UPDATE_ONLY: Operation.UPDATE,
    SyncMode.CREATE_ONLY: Operation.CREATE,
}


class RenderError(DonorSyncError):
    """One row cannot be rendered into one destination record (names ids and fields, no values)."""

    def __init__(
        self, message: str, *, destination: str, entity: str, record_key: str | None, field: str | None
    ):
        where = f"{destination} {entity}" + (f" {record_key}" if record_key else "")
        super().__init__(f"{where}: " + (f"field {field}: " if field else "") + message)
        self.destination = destination
        self.entity = entity
        self.record_key = record_key
        self.field = field


@dataclass(frozen=True)
class ObjectInfo:
    """What the outbox and the push engine need to know about one object of a mapping."""

    entity: str
    object_name: str | None
    source_kind: str
    mode: SyncMode
    operation: Operation
    key_field: str
    external_id_field: str | None
    priority: int
    mirror_action: str | None
    depends_on: tuple[str, ...]
    is_association: bool


def push_order(mapping: DestinationMapping) -> list[ObjectInfo]:
    """Return the mapping's objects in push order: every object after those it depends on, else
    in file order."""
    return list(_compiled(mapping).order)


# -- compilation -----------------------------------------------------------------------------------


Test = Callable[[Row], bool]


def _condition(cond: Condition) -> Test:
    name = cond.field
    if cond.present is not None:
        wanted = cond.present
        return lambda row: (not is_blank(row[name])) == wanted
    if cond.equals is not None:
        equals = text(cond.equals)
        return lambda row: row[name] is not None and text(row[name]) == equals
    allowed = {text(v) for v in cond.one_of or []}
    return lambda row: row[name] is not None and text(row[name]) in allowed


@dataclass(frozen=True)
class _Field:
    spec: FieldMapping
    sources: tuple[str, ...]
    several: bool
    constant: Any
    steps: tuple[Step, ...]
    when: Test | None
    ref_entity: str | None
    ref_external_id: str | None


@dataclass(frozen=True)
class _Object:
    info: ObjectInfo
    spec: ObjectMapping
    when: Test | None
    fields: tuple[_Field, ...]


@dataclass(frozen=True)
class _Compiled:
    order: tuple[ObjectInfo, ...]
    by_kind: Mapping[str, tuple[_Object, ...]]
    by_name: Mapping[str, _Object]


def _sorted(mapping: DestinationMapping) -> list[ObjectMapping]:
    remaining = list(mapping.objects)
    names = {o.name for o in remaining}
    done: set[str] = set()
    ordered: list[ObjectMapping] = []
    while remaining:
        ready = next(
            (o for o in remaining if all(d in done or d not in names for d in dependencies(o))), None
        )
        if ready is None:  # a cycle: the loader refuses these, code-built mappings keep file order
            ready = remaining[0]
        ordered.append(ready)
        done.add(ready.name)
        remaining.remove(ready)
    return ordered


def _info(obj: ObjectMapping) -> ObjectInfo:
    return ObjectInfo(
        entity=obj.name,
        object_name=obj.object,
        source_kind=obj.source,
        mode=obj.mode,
        operation=OPERATIONS[obj.mode],
        key_field=obj.key,
        external_id_field=obj.external_id,
        priority=obj.priority,
        mirror_action=obj.mirror_action,
        depends_on=dependencies(obj),
        is_association=obj.association is not None,
    )


def _compile_field(mapping: DestinationMapping, f: FieldMapping) -> _Field:
    ref = f.reference
    ref_external_id = None
    if ref is not None:
        ref_external_id = ref.external_id or (mapping.object(ref.entity).external_id if ref.entity else None)
    return _Field(
        spec=f,
        sources=f.sources,
        several=isinstance(f.from_, list),
        constant=f.value,
        steps=tuple(compile_step(s, mapping.tables) for s in f.transforms),
        when=_condition(f.when) if f.when else None,
        ref_entity=ref.entity if ref else None,
        ref_external_id=ref_external_id,
    )


def _compiled(mapping: DestinationMapping) -> _Compiled:
    found = mapping._compiled
    if isinstance(found, _Compiled):
        return found
    objects = []
    for obj in _sorted(mapping):
        fields = tuple(_compile_field(mapping, f) for f in obj.fields if f.enabled)
        objects.append(_Object(_info(obj), obj, _condition(obj.when) if obj.when else None, fields))
    by_kind: dict[str, list[_Object]] = {}
    for o in objects:
        by_kind.setdefault(o.info.source_kind, []).append(o)
    compiled = _Compiled(
        order=tuple(o.info for o in objects),
        by_kind={k: tuple(v) for k, v in by_kind.items()},
        by_name={o.info.entity: o for o in objects},
    )
    mapping._compiled = compiled
    return compiled


# -- rendering -------------------------------------------------------------------------------------


class _MissingFieldError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _get(row: Row, name: str) -> Any:
    try:
        return row[name]
    except KeyError:
        raise _MissingFieldError(name) from None


def _association(
    obj: _Object, row: Row, mapping: DestinationMapping
) -> tuple[dict[str, Any], tuple[RecordRef, ...]] | None:
    assoc = obj.spec.association
    assert assoc is not None
    ends = (assoc.from_, assoc.to)
    keys = [_get(row, end.key) for end in ends]
    if any(is_blank(k) for k in keys):
        return None  # nothing to link
    payload = {
        "types": [{"associationCategory": assoc.category, "associationTypeId": assoc.type_id}],
        "from_entity": assoc.from_.entity,
        "from_object": mapping.object(assoc.from_.entity).object,
        "to_entity": assoc.to.entity,
        "to_object": mapping.object(assoc.to.entity).object,
    }
    refs = tuple(RecordRef(end.entity, str(text(k))) for end, k in zip(ends, keys, strict=True))
    return payload, refs


@dataclass
class _Where:
    """Where rendering is, for the error message: the record key and the field being computed."""

    record_key: str | None = None
    field: str | None = None


def _fields(obj: _Object, row: Row, where: _Where) -> tuple[dict[str, Any], list[RecordRef], set[str]]:
    """Return the payload, the dependencies and the set-if-empty fields of a record's fields."""
    out: dict[str, Any] = {}
    depends: list[RecordRef] = []
    keep: set[str] = set()
    for f in obj.fields:
        where.field = f.spec.to
        if f.when is not None and not f.when(row):
            continue
        if f.sources:
            value: Any = [_get(row, s) for s in f.sources] if f.several else _get(row, f.sources[0])
        else:
            value = f.constant
        for step in f.steps:
            value = step(value)
        if f.ref_external_id is not None:
            if is_blank(value):
                continue
            target = str(convert(value, "string"))
            out[f.spec.to] = {f.ref_external_id: target}
            if f.ref_entity is not None:
                depends.append(RecordRef(f.ref_entity, target))
        else:
            assert f.spec.type is not None
            value = convert(value, f.spec.type)
            if value is None and not f.spec.sync_nulls:
                continue
            out[f.spec.to] = value
        if f.spec.set_if_empty:
            keep.add(f.spec.to)
    return out, depends, keep


def _record(obj: _Object, row: Row, mapping: DestinationMapping, where: _Where) -> RenderedRecord | None:
    spec = obj.spec
    if obj.when is not None and not obj.when(row):
        return None
    key_value = _get(row, spec.key)
    if is_blank(key_value):
        raise TransformError(f"the record key field {spec.key!r} is empty")
    record_key = str(text(key_value))
    where.record_key = record_key
    donor = row.get("donor_id") if "donor_id" in SOURCE_FIELDS[spec.source] else None
    donor_id = text(donor) if donor is not None else None
    if spec.association is not None:
        linked = _association(obj, row, mapping)
        if linked is None:
            return None
        payload, refs = linked
        return RenderedRecord(
            entity=spec.name,
            record_key=record_key,
            operation=obj.info.operation,
            payload=payload,
            donor_id=donor_id,
            depends_on=refs,
            priority=spec.priority,
        )
    out, depends, keep = _fields(obj, row, where)
    return RenderedRecord(
        entity=spec.name,
        record_key=record_key,
        operation=obj.info.operation,
        payload=out,
        donor_id=donor_id,
        depends_on=tuple(dict.fromkeys(depends)),
        priority=spec.priority,
        set_if_empty=frozenset(keep),
    )


def _render(obj: _Object, row: Row, mapping: DestinationMapping) -> RenderedRecord | None:
    """Render one row into one record of ``obj``; raise RenderError naming ids and the field."""
    where = _Where()
    try:
        return _record(obj, row, mapping, where)
    except TransformError as exc:
        message = str(exc)
    except _MissingFieldError as exc:
        message = f"the {obj.spec.source} row has no field {exc.name!r}"
    raise RenderError(
        message,
        destination=mapping.destination,
        entity=obj.spec.name,
        record_key=where.record_key,
        field=where.field,
    )


def render(
    mapping: DestinationMapping,
    kind: str,
    rows: Iterable[Row],
    *,
    on_error: Callable[[RenderError], None] | None = None,
) -> Iterator[RenderedRecord]:
    """Render core rows of ``kind`` into one record per object of ``mapping`` computed from it.

    Rows hold the fields of ``SOURCE_FIELDS[kind]``. Records come row by row, each row's objects
    in push order, so ``rows`` may be a stream.

    :param on_error: receives a row's :class:`RenderError` and rendering goes on without that
        record (a bad record never stops the rest); without it the error is raised.
    :raises ConfigError: ``kind`` is not a kind of core row.
    """
    if kind not in SOURCE_FIELDS:
        raise ConfigError(f"unknown kind of core row {kind!r}; known: {', '.join(SOURCE_FIELDS)}")
    objects = _compiled(mapping).by_kind.get(kind, ())
    if not objects:
        return
    for row in rows:
        for obj in objects:
            try:
                record = _render(obj, row, mapping)
            except RenderError as exc:
                if on_error is None:
                    raise
                on_error(exc)
                continue
            if record is not None:
                yield record


def render_one(mapping: DestinationMapping, object_name: str, row: Row) -> RenderedRecord | None:
    """Render ``row`` into the object ``object_name`` (None when the object's ``when`` skips the row).

    For tests and dry runs; :raises RenderError: the row cannot be rendered.
    """
    compiled = _compiled(mapping)
    if object_name not in compiled.by_name:
        raise ConfigError(
            f"{mapping.destination} has no object {object_name!r}; known: {', '.join(compiled.by_name)}"
        )
    return _render(compiled.by_name[object_name], row, mapping)
