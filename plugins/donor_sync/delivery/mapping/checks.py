"""Checks of a mapping file that need more than one value's shape.

The pydantic models check each value; these check what depends on the rest of the file: a
``from`` names a field of its object's source kind, references and associations name objects of
the file, lookup tables exist, a constant converts to its field's type, a destination field is
mapped once (unless each mapping of it has a ``when``), mirror mode says what it does, and
objects do not depend on each other in a cycle. Each problem is a location in the file's data
and a message; :mod:`donor_sync.delivery.mapping.loader` turns it into file, line and field.

The checks run on every object that is valid by itself, so one broken object does not hide the
problems of the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from donor_sync.delivery.contracts import SOURCE_FIELDS, SyncMode
from donor_sync.delivery.mapping.model import (
    Coalesce,
    Concat,
    FieldMapping,
    Lookup,
    ObjectMapping,
    Picklist,
)
from donor_sync.delivery.mapping.problems import Loc
from donor_sync.delivery.mapping.transforms import TransformError, compile_step, convert

Finding = tuple[Loc, str]


@dataclass(frozen=True)
class _Context:
    names: Mapping[str, int]  # every object name in the file -> its first index
    objects: Mapping[str, ObjectMapping]  # the objects valid by themselves
    tables: Mapping[str, Mapping[str, Any]]


def unknown_source_field(name: str, kind: str) -> str:
    """Return the message for a source field the kind does not hold."""
    return f"unknown source field {name!r} for {kind} rows; known: {', '.join(SOURCE_FIELDS[kind])}"


def dependencies(obj: ObjectMapping) -> tuple[str, ...]:
    """Return the entities of the same mapping that ``obj``'s records depend on, in file order."""
    found: list[str] = []
    if obj.association is not None:
        found += [obj.association.from_.entity, obj.association.to.entity]
    for f in obj.fields:
        if f.enabled and f.reference is not None and f.reference.entity:
            found.append(f.reference.entity)
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class PartialObject:
    """An object that is not valid as a whole: its source kind (when valid) and its valid fields."""

    index: int
    shell: ObjectMapping  # built without validation: name, source, external_id only
    fields: Sequence[tuple[int, FieldMapping]]


def check_document(
    raw: Any,
    objects: Sequence[tuple[int, ObjectMapping]],
    tables: Mapping[str, Mapping[str, Any]],
    partials: Sequence[PartialObject] = (),
) -> list[Finding]:
    """Return the findings for ``objects`` (index, object valid by itself) of the file data ``raw``,
    and for the valid fields of ``partials`` (objects that are not valid as a whole)."""
    names: dict[str, int] = {}
    findings: list[Finding] = []
    raw_objects = raw.get("objects") if isinstance(raw, dict) else None
    for i, item in enumerate(raw_objects if isinstance(raw_objects, list) else []):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str):
            if name in names:
                findings.append((("objects", i, "name"), f"object {name!r} is defined twice"))
            else:
                names[name] = i
    ctx = _Context(names, {o.name: o for _, o in objects}, tables)
    for i, obj in objects:
        findings += _object(("objects", i), obj, ctx)
    for part in partials:
        for j, f in part.fields:
            findings += _field(("objects", part.index, "fields", j), part.shell, f, ctx)
    findings += _cycles(objects, ctx)
    return findings


def _object(base: Loc, obj: ObjectMapping, ctx: _Context) -> Iterator[Finding]:
    fields = SOURCE_FIELDS[obj.source]
    if obj.key not in fields:
        yield (*base, "key"), unknown_source_field(obj.key, obj.source)
    if obj.when is not None and obj.when.field not in fields:
        yield (*base, "when", "field"), unknown_source_field(obj.when.field, obj.source)
    if obj.mode == SyncMode.MIRROR and obj.mirror_action is None:
        yield (*base, "mode"), "mirror mode needs `mirror_action` (delete or archive)"
    if obj.mirror_action is not None and obj.mode != SyncMode.MIRROR:
        yield (*base, "mirror_action"), "only mirror mode uses `mirror_action`"
    if obj.association is not None:
        yield from _association(base, obj, ctx)
        return
    if obj.object is None:
        yield base, "`object` is required: the destination object (sObject, HubSpot object type)"
    if obj.external_id is None:
        yield base, "`external_id` is required: the destination field holding the record key"
    if not obj.fields:
        yield base, "`fields` is required: at least one destination field"
    for j, f in enumerate(obj.fields):
        yield from _field((*base, "fields", j), obj, f, ctx)
    yield from _duplicates(base, obj)


def _association(base: Loc, obj: ObjectMapping, ctx: _Context) -> Iterator[Finding]:
    assert obj.association is not None
    if obj.fields:
        yield (*base, "fields"), "an association has no fields: its payload names the association type"
    ends = (("from", obj.association.from_), ("to", obj.association.to))
    for label, end in ends:
        if end.key not in SOURCE_FIELDS[obj.source]:
            yield (*base, "association", label, "key"), unknown_source_field(end.key, obj.source)
        if end.entity not in ctx.names:
            yield (*base, "association", label, "entity"), f"no object named {end.entity!r} in this file"
        elif end.entity in ctx.objects and ctx.objects[end.entity].association is not None:
            yield (*base, "association", label, "entity"), "an association links records, not associations"


def _field(base: Loc, obj: ObjectMapping, f: FieldMapping, ctx: _Context) -> Iterator[Finding]:
    yield from _field_sources(base, obj, f)
    if obj.external_id is not None and f.to.casefold() == obj.external_id.casefold():
        yield (*base, "to"), "the external id field is sent from the record key (`key`); do not map it"
    if f.reference is None and f.type is None:
        yield base, "`type` is required (string, picklist, boolean, number, integer, date, datetime)"
    if f.reference is not None:
        yield from _reference(base, f, ctx)
    for k, step in enumerate(f.transforms):
        if isinstance(step, Lookup | Picklist):
            args = step.lookup if isinstance(step, Lookup) else step.picklist
            if args.table is not None and args.table not in ctx.tables:
                known = ", ".join(ctx.tables) or "none"
                yield (
                    (*base, "transforms", k, step.op, "table"),
                    f"no table named {args.table!r} under `tables` (known: {known})",
                )
    yield from _constant(base, f, ctx)


def _field_sources(base: Loc, obj: ObjectMapping, f: FieldMapping) -> Iterator[Finding]:
    kind = obj.source
    has_value = "value" in f.model_fields_set
    if f.from_ is None and not has_value:
        yield base, "give `from` (a source field) or `value` (a constant)"
    if f.from_ is not None and has_value:
        yield (*base, "value"), "give `from` or `value`, not both"
    for k, name in enumerate(f.sources):
        if name not in SOURCE_FIELDS[kind]:
            where = (*base, "from") if isinstance(f.from_, str) else (*base, "from", k)
            yield where, unknown_source_field(name, kind)
    if isinstance(f.from_, list) and not (f.transforms and isinstance(f.transforms[0], Concat | Coalesce)):
        yield (*base, "from"), "several source fields need a first `concat` or `coalesce` transform"
    if f.when is not None and f.when.field not in SOURCE_FIELDS[kind]:
        yield (*base, "when", "field"), unknown_source_field(f.when.field, kind)


def _constant(base: Loc, f: FieldMapping, ctx: _Context) -> Iterator[Finding]:
    """A constant must survive its transforms and convert to the field's type."""
    if f.from_ is not None or "value" not in f.model_fields_set or f.type is None:
        return
    try:
        value: Any = f.value
        for step in f.transforms:
            value = compile_step(step, ctx.tables)(value)
        convert(value, f.type)
    except (TransformError, KeyError) as exc:
        yield (*base, "value"), f"the constant does not convert to {f.type}: {exc}"


def _reference(base: Loc, f: FieldMapping, ctx: _Context) -> Iterator[Finding]:
    ref = f.reference
    assert ref is not None
    where = (*base, "reference")
    if (ref.entity is None) == (ref.object is None):
        yield where, "give `entity` (an object of this file) or `object` (a destination object), not both"
    if f.sync_nulls:
        yield (*base, "sync_nulls"), "a reference is never sent as null"
    if ref.object is not None and ref.external_id is None:
        yield where, "`external_id` is required with `object`: the target's external id field"
    if ref.entity is None:
        return
    if ref.entity not in ctx.names:
        yield (*where, "entity"), f"no object named {ref.entity!r} in this file"
        return
    target = ctx.objects.get(ref.entity)
    if target is None:
        return
    if target.association is not None:
        yield (*where, "entity"), "a reference points at a record, not an association"
    elif (
        ref.external_id is not None
        and target.external_id is not None
        and ref.external_id != target.external_id
    ):
        yield (
            (*where, "external_id"),
            (f"{ref.entity!r} is keyed by {target.external_id!r}, not {ref.external_id!r}"),
        )


def _duplicates(base: Loc, obj: ObjectMapping) -> Iterator[Finding]:
    seen: dict[str, list[int]] = {}
    for j, f in enumerate(obj.fields):
        if f.enabled:
            seen.setdefault(f.to.casefold(), []).append(j)
    for indexes in seen.values():
        if len(indexes) > 1 and any(obj.fields[j].when is None for j in indexes):
            for j in indexes[1:]:
                yield (
                    (*base, "fields", j, "to"),
                    ("destination field mapped more than once; give each mapping of it a `when`"),
                )


def _cycles(objects: Sequence[tuple[int, ObjectMapping]], ctx: _Context) -> Iterator[Finding]:
    graph = {o.name: [d for d in dependencies(o) if d in ctx.objects] for _, o in objects}
    index = {o.name: i for i, o in objects}
    reported: set[str] = set()

    def walk(name: str, trail: list[str]) -> Iterator[Finding]:
        for dep in graph.get(name, []):
            if dep in trail:
                cycle = [*trail[trail.index(dep) :], dep]
                if not reported.intersection(cycle):
                    reported.update(cycle)
                    yield ("objects", index[dep]), "dependency cycle: " + " -> ".join(cycle)
            else:
                yield from walk(dep, [*trail, dep])

    for name in graph:
        yield from walk(name, [name])
