"""What a destination mapping reads, and whether a minimization profile agrees with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.delivery.mapping.model import DestinationMapping, FieldMapping
from donor_sync.privacy.profiles.model import Prefix, Profile

#: Fields every row keeps whatever the profile says: the ids the outbox tracks records by (they
#: reach a payload only when the mapping sends them, as the external id or a reference).
ID_FIELDS: Mapping[str, frozenset[str]] = {
    "donor": frozenset({"donor_id"}),
    "household": frozenset({"household_id"}),
    "gift": frozenset({"gift_key", "donor_id"}),
    "recurring_plan": frozenset({"plan_key", "donor_id"}),
}

#: Destination types a generalized or pseudonymized value (text, or a year) can be converted to.
_TEXT_TYPES = {"string", "picklist"}
_YEAR_TYPES = {"string", "picklist", "integer", "number"}


def fields_read(mapping: DestinationMapping) -> dict[str, frozenset[str]]:
    """Return, per kind of core row, the source fields ``mapping`` reads (keys, conditions, values).

    Disabled fields are not sent and not counted.
    """
    reads: dict[str, set[str]] = {kind: set() for kind in SOURCE_FIELDS}
    for obj in mapping.objects:
        got = reads[obj.source]
        got.add(obj.key)
        if obj.when is not None:
            got.add(obj.when.field)
        if obj.association is not None:
            got.update({obj.association.from_.key, obj.association.to.key})
        for f in obj.fields:
            if not f.enabled:
                continue
            got.update(f.sources)
            if f.when is not None:
                got.add(f.when.field)
    return {kind: frozenset(fields) for kind, fields in reads.items()}


def _readers(mapping: DestinationMapping, kind: str, name: str) -> list[tuple[str, FieldMapping]]:
    return [
        (obj.name, f)
        for obj in mapping.objects
        if obj.source == kind
        for f in obj.fields
        if f.enabled and name in f.sources
    ]


@dataclass(frozen=True)
class ProfileProblem:
    """One disagreement between a profile and its destination's mapping."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def check_profile(profile: Profile, mapping: DestinationMapping) -> list[ProfileProblem]:
    """Return what makes ``profile`` unusable with ``mapping`` (empty: they agree).

    * the mapping reads a field the profile excludes, or one its ``fields`` list leaves out;
    * a pseudonymized or generalized field feeds a destination field of a type its new value
      cannot take (a birth year into a date field), or is used as a record key or condition.
    """
    reads = fields_read(mapping)
    problems: list[ProfileProblem] = []
    for kind, rules in profile.kinds.items():
        read = reads[kind]
        where = f"kinds.{kind}"
        for name in sorted(set(rules.exclude) & read):
            problems.append(
                ProfileProblem(
                    f"{where}.exclude", f"{name} is excluded but the {mapping.destination} mapping reads it"
                )
            )
        if rules.fields is not None:
            for name in sorted(read - set(rules.fields) - ID_FIELDS[kind]):
                problems.append(
                    ProfileProblem(
                        f"{where}.fields", f"the {mapping.destination} mapping reads {name}, not listed"
                    )
                )
        keys = {o.key for o in mapping.objects if o.source == kind}
        conditions = {o.when.field for o in mapping.objects if o.source == kind and o.when is not None}
        changed: dict[str, set[str]] = dict.fromkeys(rules.pseudonymize, _TEXT_TYPES)
        for name, how in rules.generalize.items():
            changed[name] = _YEAR_TYPES if how == "year" else _TEXT_TYPES
        for name, types in sorted(changed.items()):
            section = "pseudonymize" if name in rules.pseudonymize else "generalize"
            if name in keys or name in conditions or name in ID_FIELDS[kind]:
                problems.append(
                    ProfileProblem(f"{where}.{section}", f"{name} is a record key, id or condition")
                )
                continue
            for obj_name, f in _readers(mapping, kind, name):
                if f.reference is None and f.type is not None and f.type not in types:
                    problems.append(
                        ProfileProblem(
                            f"{where}.{section}",
                            f"{name} feeds {obj_name}.{f.to} of type {f.type}, which cannot hold "
                            + (
                                "a keyed hash" if section == "pseudonymize" else _what(rules.generalize[name])
                            ),
                        )
                    )
    return problems


def _what(how: object) -> str:
    if how == "year":
        return "a year"
    if isinstance(how, Prefix):
        return "a text prefix"
    return "a band label"
