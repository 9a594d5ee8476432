"""Associations v4: typed, labelled links between records, stored in both directions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.emulators.hubspot.errors import HubSpotError

Spec = tuple[str, int]  # (associationCategory, associationTypeId)

#: HubSpot-defined default (unlabelled) types: (from, to) -> (type id, inverse type id).
DEFAULT_TYPES: dict[tuple[str, str], tuple[int, int]] = {
    ("0-1", "0-3"): (4, 3),
    ("0-1", "0-2"): (279, 280),
    ("0-3", "0-2"): (341, 342),
    ("0-1", "0-1"): (449, 449),
    ("0-3", "0-3"): (451, 451),
    ("0-2", "0-2"): (450, 450),
}
#: HubSpot-defined labelled types ("Primary" company).
PRIMARY_TYPES: dict[tuple[str, str], tuple[int, int]] = {("0-1", "0-2"): (1, 2), ("0-3", "0-2"): (5, 6)}


@dataclass
class AssociationStore:
    """Association labels per object-type pair and the links themselves."""

    labels: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    inverse: dict[tuple[str, str, Spec], Spec] = field(default_factory=dict)
    links: dict[tuple[str, str, str], dict[str, set[Spec]]] = field(default_factory=dict)
    next_type_id: int = 100

    def __post_init__(self) -> None:
        for (left, right), (forward, backward) in DEFAULT_TYPES.items():
            self._define(left, right, ("HUBSPOT_DEFINED", forward), ("HUBSPOT_DEFINED", backward), None)
        for (left, right), (forward, backward) in PRIMARY_TYPES.items():
            self._define(left, right, ("HUBSPOT_DEFINED", forward), ("HUBSPOT_DEFINED", backward), "Primary")

    def _define(self, left: str, right: str, forward: Spec, backward: Spec, label: str | None) -> None:
        self.labels.setdefault((left, right), []).append(
            {"category": forward[0], "typeId": forward[1], "label": label}
        )
        self.inverse[(left, right, forward)] = backward
        if (left, right) != (right, left) or forward != backward:
            self.labels.setdefault((right, left), []).append(
                {"category": backward[0], "typeId": backward[1], "label": label}
            )
        self.inverse[(right, left, backward)] = forward

    def _ensure_default(self, left: str, right: str) -> Spec:
        """Return the default type for a pair, creating one for custom objects on first use."""
        for label in self.labels.get((left, right), []):
            if label["category"] == "HUBSPOT_DEFINED" and label["label"] is None:
                return (label["category"], label["typeId"])
        forward, backward = self.next_type_id, self.next_type_id + (0 if left == right else 1)
        self.next_type_id += 2
        self._define(left, right, ("HUBSPOT_DEFINED", forward), ("HUBSPOT_DEFINED", backward), None)
        return ("HUBSPOT_DEFINED", forward)

    def list_labels(self, left: str, right: str) -> list[dict[str, Any]]:
        """Return the association types defined from ``left`` to ``right``."""
        self._ensure_default(left, right)
        return [dict(label) for label in self.labels[(left, right)]]

    def create_label(
        self, left: str, right: str, label: str, inverse_label: str | None
    ) -> list[dict[str, Any]]:
        """Define a USER_DEFINED label (and its inverse); return the new types."""
        if not label:
            raise HubSpotError(400, "label is required", context={"label": [""]})
        if any(existing["label"] == label for existing in self.labels.get((left, right), [])):
            raise HubSpotError(409, f"An association label named {label!r} already exists")
        forward, backward = self.next_type_id, self.next_type_id + 1
        self.next_type_id += 2
        self._define(left, right, ("USER_DEFINED", forward), ("USER_DEFINED", backward), label)
        if inverse_label:
            self.labels[(right, left)][-1]["label"] = inverse_label
        return [{"category": "USER_DEFINED", "typeId": forward, "label": label}]

    def _label_of(self, left: str, right: str, spec: Spec) -> str | None:
        for label in self.labels.get((left, right), []):
            if (label["category"], label["typeId"]) == spec:
                return str(label["label"]) if label["label"] is not None else None
        return None

    def validate(self, left: str, right: str, specs: list[dict[str, Any]]) -> list[Spec]:
        """Return the specs as tuples; 400 for a type not defined for this pair."""
        self._ensure_default(left, right)
        result: list[Spec] = []
        for raw in specs:
            spec = (str(raw.get("associationCategory")), int(raw.get("associationTypeId") or 0))
            if (left, right, spec) not in self.inverse:
                raise HubSpotError(
                    400,
                    f"invalid association type {spec[1]} ({spec[0]}) from {left} to {right}",
                    context={"associationTypeId": [str(spec[1])]},
                )
            result.append(spec)
        return result

    def associate(
        self, left: str, left_id: str, right: str, right_id: str, specs: list[Spec] | None
    ) -> list[Spec]:
        """Link two records with ``specs`` (the default type when None), in both directions."""
        chosen = specs if specs is not None else [self._ensure_default(left, right)]
        for spec in chosen:
            self.links.setdefault((left, left_id, right), {}).setdefault(right_id, set()).add(spec)
            back = self.inverse[(left, right, spec)]
            self.links.setdefault((right, right_id, left), {}).setdefault(left_id, set()).add(back)
        return chosen

    def labels_between(self, left: str, left_id: str, right: str, right_id: str) -> list[str]:
        """Return the labels (non-empty only) linking two records."""
        specs = self.links.get((left, left_id, right), {}).get(right_id, set())
        return sorted(label for spec in specs if (label := self._label_of(left, right, spec)))

    def targets(self, left: str, left_id: str, right: str) -> list[dict[str, Any]]:
        """Return ``MultiAssociatedObjectWithLabel`` items for a record's links to ``right``."""
        found = self.links.get((left, left_id, right), {})
        return [
            {
                "toObjectId": int(to_id),
                "associationTypes": [
                    {"category": c, "typeId": t, "label": self._label_of(left, right, (c, t))}
                    for c, t in sorted(specs, key=lambda s: s[1])
                ],
            }
            for to_id, specs in sorted(found.items(), key=lambda item: int(item[0]))
            if specs
        ]

    def remove(
        self, left: str, left_id: str, right: str, right_id: str, specs: list[Spec] | None = None
    ) -> None:
        """Remove some (``specs``) or all links between two records, in both directions."""
        forward = self.links.get((left, left_id, right), {}).get(right_id, set())
        doomed = set(forward) if specs is None else set(specs) & forward
        for spec in doomed:
            forward.discard(spec)
            backward = self.links.get((right, right_id, left), {}).get(left_id, set())
            backward.discard(self.inverse[(left, right, spec)])

    def drop_record(self, type_id: str, object_id: str) -> None:
        """Forget every link of a deleted record."""
        for (left, left_id, right), targets in list(self.links.items()):
            if (left, left_id) == (type_id, object_id):
                for right_id in list(targets):
                    self.remove(left, left_id, right, right_id)

    def move_record(self, type_id: str, old_id: str, new_id: str) -> None:
        """Move a merged record's links onto the record it was merged into."""
        for (left, left_id, right), targets in list(self.links.items()):
            if (left, left_id) != (type_id, old_id):
                continue
            for right_id, specs in list(targets.items()):
                kept = list(specs)
                self.remove(left, old_id, right, right_id)
                if not (right == type_id and right_id == new_id):
                    self.associate(left, new_id, right, right_id, kept)
