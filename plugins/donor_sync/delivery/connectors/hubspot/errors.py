"""HubSpot's error bodies turned into a failure class, a code and a message free of values.

HubSpot's messages echo what was sent ("Email address ada@example.org is invalid",
"Contact already exists. Existing ID: 1234", property values inside JSON). Only the category,
sub-category, error codes, property names and context keys are kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from donor_sync.delivery.contracts import FailureClass

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,99}$")
_PROPERTY_ERRORS = re.compile(r"Property values were not valid:\s*(\[.*\])\s*$", re.DOTALL)
#: Messages worth a code of their own (HubSpot gives none); matched, never copied.
_MESSAGE_CODES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"is not a unique property", re.IGNORECASE), "ID_PROPERTY_NOT_UNIQUE"),
    (re.compile(r"Duplicate IDs found in batch input", re.IGNORECASE), "DUPLICATE_IDS_IN_BATCH"),
    (re.compile(r"maximum number of inputs", re.IGNORECASE), "TOO_MANY_INPUTS"),
    (re.compile(r"already exists", re.IGNORECASE), "ALREADY_EXISTS"),
    (re.compile(r"Cannot merge an object with itself", re.IGNORECASE), "MERGE_WITH_ITSELF"),
    (re.compile(r"Unable to infer object type", re.IGNORECASE), "UNKNOWN_OBJECT_TYPE"),
    (re.compile(r"invalid association type", re.IGNORECASE), "INVALID_ASSOCIATION_TYPE"),
)
#: Codes (property errors, sub-categories, the codes above) that decide the class by themselves.
_CODE_CLASS: Mapping[str, FailureClass] = {
    "GDPR_BLOCKLISTED": FailureClass.CONSENT_BLOCKED,
    "PROPERTY_DOESNT_EXIST": FailureClass.PERMANENT,
    "ID_PROPERTY_NOT_UNIQUE": FailureClass.PERMANENT,
    "UNKNOWN_OBJECT_TYPE": FailureClass.PERMANENT,
    "INVALID_ASSOCIATION_TYPE": FailureClass.PERMANENT,
    "INVALID_EMAIL": FailureClass.VALIDATION,
}
_CATEGORY_CLASS: Mapping[str, FailureClass] = {
    "VALIDATION_ERROR": FailureClass.VALIDATION,
    "INVALID_EMAIL": FailureClass.VALIDATION,
    "CONFLICT": FailureClass.DUPLICATE_RULE,
    "OBJECT_ALREADY_EXISTS": FailureClass.DUPLICATE_RULE,
    "OBJECT_NOT_FOUND": FailureClass.PERMANENT,
    "MISSING_SCOPES": FailureClass.PERMANENT,
    "RATE_LIMITS": FailureClass.RATE_LIMITED,
    "RATE_LIMIT": FailureClass.RATE_LIMITED,
    "INVALID_AUTHENTICATION": FailureClass.AUTH,
    "EXPIRED_AUTHENTICATION": FailureClass.AUTH,
}


@dataclass(frozen=True)
class VendorError:
    """One HubSpot error, reduced to what may be stored and logged."""

    error_class: FailureClass
    category: str
    code: str
    message: str
    property_names: tuple[str, ...] = ()


def _names(values: Any) -> list[str]:
    """Return the items of ``values`` that look like property names (never free text or values)."""
    items = values if isinstance(values, list) else [values]
    return [str(v) for v in items if isinstance(v, str) and _NAME.match(v) and "@" not in v]


def _property_errors(message: str) -> list[dict[str, Any]]:
    """Return the per-property errors HubSpot embeds as JSON in a validation message."""
    match = _PROPERTY_ERRORS.search(message)
    if not match:
        return []
    try:
        parsed = json.loads(match.group(1))
    except ValueError:
        return []
    return [item for item in parsed if isinstance(item, dict)] if isinstance(parsed, list) else []


def _codes(error: Mapping[str, Any], message: str) -> tuple[list[str], list[str]]:
    """Return (codes, property names) found in an error body, most specific first."""
    codes: list[str] = []
    names: list[str] = []
    for item in _property_errors(message):
        codes += _names(item.get("error"))
        names += _names(item.get("name"))
    for detail in error.get("errors") or []:
        if isinstance(detail, Mapping):
            codes += _names(detail.get("code")) + _names(detail.get("subCategory"))
    codes += _names(error.get("subCategory"))
    codes += [code for pattern, code in _MESSAGE_CODES if pattern.search(message)]
    context = error.get("context")
    if isinstance(context, Mapping):
        for key in ("propertyName", "invalidPropertyName", "idProperty", "properties"):
            names += _names(context.get(key))
    return list(dict.fromkeys(codes)), list(dict.fromkeys(names))


def classify(error: Mapping[str, Any], *, http_status: int | None = None) -> VendorError:
    """Return the class, code and a value-free message of a HubSpot ``Error``/``StandardError``."""
    raw_message = str(error.get("message") or "")
    category = str(error.get("category") or error.get("errorType") or "").upper() or _status_category(
        http_status
    )
    codes, names = _codes(error, raw_message)
    error_class = next((_CODE_CLASS[c] for c in codes if c in _CODE_CLASS), None)
    if error_class is None:
        error_class = _CATEGORY_CLASS.get(category, FailureClass.TRANSIENT)
    code = codes[0] if codes else category
    parts = [category] if code == category else [category, code]
    context = error.get("context")
    keys = sorted(k for k in context if _NAME.match(str(k))) if isinstance(context, Mapping) else []
    message = " ".join(parts)
    if names:
        message += f" on {', '.join(names)}"
    elif keys:
        message += f" (context: {', '.join(keys)})"
    return VendorError(error_class, category, code, message, tuple(names))


def _status_category(status: int | None) -> str:
    return {
        400: "VALIDATION_ERROR",
        401: "INVALID_AUTHENTICATION",
        403: "MISSING_SCOPES",
        404: "OBJECT_NOT_FOUND",
        409: "CONFLICT",
        429: "RATE_LIMITS",
    }.get(status or 0, "INTERNAL_ERROR")


def error_ids(error: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Return (trace ids, input ids) a batch ``StandardError`` names, most specific first.

    Trace ids are the ``objectWriteTraceId`` values HubSpot echoes (top level or in the
    context); input ids are the input ``id`` and the ids listed in the context.
    """
    context = error.get("context")
    context = context if isinstance(context, Mapping) else {}

    def listed(value: Any) -> list[str]:
        return [str(v) for v in (value if isinstance(value, list) else [value]) if v is not None]

    traces = listed(error.get("objectWriteTraceId")) + listed(context.get("objectWriteTraceId"))
    ids = listed(error.get("id"))
    for key in ("ids", "id", "fromObjectId", "toObjectId"):
        ids += listed(context.get(key))
    return list(dict.fromkeys(traces)), list(dict.fromkeys(ids))


def summarize(errors: Sequence[VendorError]) -> str:
    """Return one line naming the distinct codes of several errors (for a batch-level failure)."""
    codes = list(dict.fromkeys(f"{e.category}/{e.code}" if e.code != e.category else e.code for e in errors))
    return ", ".join(codes[:5]) + (" ..." if len(codes) > 5 else "")
