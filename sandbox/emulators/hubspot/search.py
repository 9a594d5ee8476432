"""CRM search: filter groups (OR of ANDs), sorts, a text query and offset paging with the result cap."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sandbox.emulators.hubspot.errors import HubSpotError
from sandbox.emulators.hubspot.objects import Record

OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18


def _number(value: Any) -> float | None:
    """Return ``value`` as a number: numbers, numeric strings, or ISO dates as epoch milliseconds."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def _compare(actual: str | None, expected: Any) -> int | None:
    """Return -1/0/1 comparing ``actual`` to ``expected`` (numerically when both are numbers)."""
    if actual is None or expected is None:
        return None
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return (left > right) - (left < right)
    a, b = actual.lower(), str(expected).lower()
    return (a > b) - (a < b)


def _token_match(actual: str | None, token: Any) -> bool:
    if actual is None or token is None:
        return False
    pattern = str(token).lower().strip()
    text = actual.lower()
    if pattern.startswith("*") and pattern.endswith("*"):
        return pattern.strip("*") in text
    if pattern.startswith("*"):
        return any(word.endswith(pattern[1:]) for word in text.split()) or text.endswith(pattern[1:])
    if pattern.endswith("*"):
        return any(word.startswith(pattern[:-1]) for word in text.split()) or text.startswith(pattern[:-1])
    return pattern in text.replace("@", " ").replace(".", " ").split() or pattern == text


def _ordered(operator: str, actual: str | None, flt: dict[str, Any]) -> bool:
    """Evaluate the comparison operators (EQ, NEQ, LT, LTE, GT, GTE, BETWEEN)."""
    if operator == "BETWEEN":
        low, high = _compare(actual, flt.get("value")), _compare(actual, flt.get("highValue"))
        return low is not None and high is not None and low >= 0 and high <= 0
    order = _compare(actual, flt.get("value"))
    if operator == "NEQ":
        return order != 0
    if order is None:
        return False
    checks = {"EQ": order == 0, "LT": order < 0, "LTE": order <= 0, "GT": order > 0, "GTE": order >= 0}
    return checks[operator]


def matches(record: Record, flt: dict[str, Any]) -> bool:
    """Return whether ``record`` passes one filter."""
    actual = record.properties.get(str(flt.get("propertyName")))
    operator = str(flt.get("operator", "EQ"))
    values = [str(v).lower() for v in flt.get("values") or []]
    inside = actual is not None and actual.lower() in values
    special = {
        "HAS_PROPERTY": lambda: actual is not None,
        "NOT_HAS_PROPERTY": lambda: actual is None,
        "IN": lambda: inside,
        "NOT_IN": lambda: not inside,
        "CONTAINS_TOKEN": lambda: _token_match(actual, flt.get("value")),
        "NOT_CONTAINS_TOKEN": lambda: not _token_match(actual, flt.get("value")),
    }
    if operator in special:
        return bool(special[operator]())
    return _ordered(operator, actual, flt)


def validate(groups: list[dict[str, Any]]) -> None:
    """Reject filter groups beyond HubSpot's limits or with unknown operators."""
    if len(groups) > MAX_GROUPS:
        raise HubSpotError(400, f"Search request has too many filter groups. Max allowed: {MAX_GROUPS}")
    total = 0
    for group in groups:
        filters = group.get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise HubSpotError(
                400, f"Filter group has too many filters. Max allowed per group: {MAX_FILTERS_PER_GROUP}"
            )
        total += len(filters)
        for flt in filters:
            if flt.get("operator", "EQ") not in OPERATORS:
                raise HubSpotError(
                    400,
                    f"Invalid operator {flt.get('operator')!r}",
                    context={"operator": [str(flt.get("operator"))]},
                )
            if not flt.get("propertyName"):
                raise HubSpotError(400, "Filter is missing propertyName")
    if total > MAX_FILTERS:
        raise HubSpotError(400, f"Search request has too many filters. Max allowed: {MAX_FILTERS}")


def _sort_key(record: Record, *, prop: str) -> tuple[int, float, str]:
    value = record.properties.get(prop)
    number = _number(value)
    if value is None:
        return (1, 0.0, "")
    return (0, number, "") if number is not None else (0, 0.0, value.lower())


def run(records: list[Record], body: dict[str, Any], text_fields: list[str]) -> list[Record]:
    """Return the records matching ``body``'s filter groups and query, sorted."""
    groups = body.get("filterGroups") or []
    validate(groups)
    found = [
        r
        for r in records
        if not groups or any(all(matches(r, f) for f in g.get("filters") or []) for g in groups)
    ]
    query = str(body.get("query") or "").strip().lower()
    if query:
        found = [r for r in found if any(query in (r.properties.get(f) or "").lower() for f in text_fields)]
    found.sort(key=lambda r: int(r.id))
    for sort in reversed(body.get("sorts") or []):
        if isinstance(sort, str):
            prop, descending = sort.lstrip("-"), sort.startswith("-")
        else:
            prop, descending = str(sort.get("propertyName")), sort.get("direction") == "DESCENDING"
        found.sort(key=functools.partial(_sort_key, prop=prop), reverse=descending)
    return found


def page(
    found: list[Record], body: dict[str, Any], *, max_limit: int, cap: int
) -> tuple[list[Record], str | None]:
    """Return one page and the next ``after``; asking at or past ``cap`` results is a 400."""
    try:
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
    except (TypeError, ValueError) as exc:
        raise HubSpotError(400, "limit and after must be integers") from exc
    if limit < 1 or limit > max_limit:
        raise HubSpotError(400, f"limit must be between 1 and {max_limit}", context={"limit": [str(limit)]})
    if after >= cap:
        raise HubSpotError(
            400,
            f"Search results are capped at {cap}; 'after' must be lower than {cap}. "
            "Narrow the filters instead.",
            context={"after": [str(after)]},
        )
    end = min(after + limit, cap)
    next_after = str(end) if end < len(found) and end < cap else None
    return found[after:end], next_after
