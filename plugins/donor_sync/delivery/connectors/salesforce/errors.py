"""Salesforce error codes mapped to donor-sync failure classes, and messages stripped of values.

Salesforce messages echo field values ("bad value for restricted picklist field: Biweekly",
"data value too large: Jane Do..."), so nothing here ever passes a vendor message on: a
result's message is built from the error code, the field names and the parent object named in
a missing-parent error.

Missing parents (a lookup by external id that finds nothing, ``INVALID_CROSS_REFERENCE_KEY``)
are **transient while the record is young** (``attempts < parent_wait_attempts``; the push
engine pushes parents first, but a parent may itself be waiting on the retry ladder) and
**validation** after that: by then the parent is not coming, and a person has to look.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from donor_sync.delivery.contracts import FailureClass

#: Attempts during which a missing parent counts as transient (ladder rungs 1m, 5m, 15m).
DEFAULT_PARENT_WAIT_ATTEMPTS = 3

_VALIDATION = frozenset(
    {
        "REQUIRED_FIELD_MISSING",
        "INVALID_FIELD",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_FIELD_WHEN_USING_TEMPLATE",
        "STRING_TOO_LONG",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "FIELD_INTEGRITY_EXCEPTION",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "MALFORMED_ID",
        "INVALID_ID_FIELD",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_EMAIL_ADDRESS",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "MISSING_ARGUMENT",
        "JSON_PARSER_ERROR",
        "INVALID_TYPE",
        "BAD_VALUE",
    }
)
_DUPLICATE = frozenset({"DUPLICATES_DETECTED", "DUPLICATE_VALUE", "DUPLICATE_EXTERNAL_ID"})
_PERMANENT = frozenset(
    {
        "ENTITY_IS_DELETED",
        "NOT_FOUND",
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "ENTITY_IS_LOCKED",
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
        "OPERATION_NOT_SUPPORTED",
        "API_VERSION_UNSUPPORTED",
    }
)
_TRANSIENT = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
        "UNKNOWN_EXCEPTION",
        "REQUEST_RUNNING_TOO_LONG",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "NOT_PROCESSED",
        "MISSING_FROM_RESULTS",
        "RETRY_NEXT_BATCH",
        "MALFORMED_RESPONSE",
        "BULK_JOB_TIMEOUT",
    }
)
_AUTH = frozenset({"INVALID_SESSION_ID", "INVALID_AUTH_HEADER"})
_RATE = frozenset({"REQUEST_LIMIT_EXCEEDED", "EXCEEDED_QUOTA", "TXN_SECURITY_METERING_ERROR"})

_CLASSES: tuple[tuple[frozenset[str], FailureClass], ...] = (
    (_TRANSIENT, FailureClass.TRANSIENT),
    (_RATE, FailureClass.RATE_LIMITED),
    (_AUTH, FailureClass.AUTH),
    (_DUPLICATE, FailureClass.DUPLICATE_RULE),
    (_VALIDATION, FailureClass.VALIDATION),
    (_PERMANENT, FailureClass.PERMANENT),
)

#: "Foreign key external ID: <value> not found for field <Field> in entity <Entity>"
_PARENT = re.compile(
    r"Foreign key external ID:.*?(not found|matched multiple records).*?for field (\w+)"
    r" in entity (\w+)",
    re.S,
)


@dataclass(frozen=True)
class SfError:
    """One error Salesforce reported for a record or a call (code, field names, vendor message).

    ``vendor_message`` may quote values: it is read to classify, never logged or returned.
    """

    code: str
    fields: tuple[str, ...] = ()
    vendor_message: str = ""

    @property
    def parent(self) -> tuple[str, str, bool] | None:
        """``(entity, external id field, ambiguous)`` when a parent lookup by external id failed."""
        found = _PARENT.search(self.vendor_message)
        if found is None:
            return None
        return found.group(3), found.group(2), found.group(1) != "not found"

    def failure_class(
        self, *, attempts: int = 0, parent_wait_attempts: int = DEFAULT_PARENT_WAIT_ATTEMPTS
    ) -> FailureClass:
        """Return the class of this error for a record on its ``attempts``-th previous try."""
        parent = self.parent
        if parent is not None and parent[2]:
            return FailureClass.DUPLICATE_RULE
        if parent is not None or self.code == "INVALID_CROSS_REFERENCE_KEY":
            return FailureClass.TRANSIENT if attempts < parent_wait_attempts else FailureClass.VALIDATION
        if (
            self.code == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
            and "UNABLE_TO_LOCK_ROW" in self.vendor_message
        ):
            return FailureClass.TRANSIENT  # a trigger hit a row lock
        return classify_code(self.code)

    def safe_message(self) -> str:
        """Return a message with the code and field names only (no values)."""
        parent = self.parent
        if parent is not None:
            entity, field, ambiguous = parent
            what = "matched several" if ambiguous else "found no"
            return f"{self.code}: the parent lookup {entity}.{field} {what} records"
        if self.fields:
            return f"{self.code} on {', '.join(self.fields)}"
        return self.code


def classify_code(code: str) -> FailureClass:
    """Return the failure class of a Salesforce error code (unknown codes: permanent)."""
    upper = code.upper()
    for codes, error_class in _CLASSES:
        if upper in codes:
            return error_class
    return FailureClass.PERMANENT


def parse_rest_errors(body: object) -> list[SfError]:
    """Parse a REST error body (``[{"errorCode", "message", "fields"}]``) or a result's ``errors``
    (``statusCode`` instead of ``errorCode``); tolerate the OAuth shape and junk."""
    items = body if isinstance(body, list) else [body]
    errors: list[SfError] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        code = item.get("errorCode") or item.get("statusCode") or item.get("error") or "UNKNOWN_ERROR"
        message = item.get("message") or item.get("error_description") or ""
        fields = item.get("fields") or []
        errors.append(SfError(str(code), tuple(str(f) for f in fields), str(message)))
    return errors or [SfError("UNKNOWN_ERROR")]


def parse_bulk_error(text: str) -> SfError:
    """Parse a Bulk API ``sf__Error`` cell: ``CODE:message:Field1 Field2 --`` (fields optional)."""
    code, _, rest = text.partition(":")
    message, _, tail = rest.rpartition(":")
    tail = tail.strip()
    fields: tuple[str, ...] = ()
    if tail.endswith("--") and message:
        fields = tuple(tail.removesuffix("--").split())
    else:
        message = rest
    return SfError(code.strip() or "UNKNOWN_ERROR", fields, message)
