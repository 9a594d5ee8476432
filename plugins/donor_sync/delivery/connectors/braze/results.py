"""Per-record results of Braze calls, and Braze's per-object error texts turned into codes.

Braze reports a non-fatal problem with one object as ``{"type": "'email' is not valid",
"input_array": "attributes", "index": 3}``. The texts name fields, never values, but a message is
kept only when it carries nothing that looks like an address or a number a donor gave.
"""

from __future__ import annotations

import re

from donor_sync.delivery.contracts import FailureClass, OutboundRecord, RecordResult

_FIELD = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")
_UNSAFE = re.compile(r"@|\d{5,}|\+\d")


def ok(record: OutboundRecord, remote_id: str | None, *, http_status: int | None = None) -> RecordResult:
    """A record Braze accepted."""
    return RecordResult(record.outbox_id, ok=True, remote_id=remote_id, created=None, http_status=http_status)


def failure(
    record: OutboundRecord,
    error_class: FailureClass,
    code: str,
    message: str,
    *,
    http_status: int | None = None,
) -> RecordResult:
    """A record that failed: class, code and a message without PII."""
    return RecordResult(
        record.outbox_id,
        ok=False,
        error_class=error_class,
        error_code=code,
        message=message,
        http_status=http_status,
    )


def error_code(text: str) -> str:
    """Return a stable code for one of Braze's per-object error texts.

    ``'email' is not valid`` -> ``INVALID_EMAIL``; ``'name' is required`` -> ``MISSING_NAME``;
    the identifier message (``'external_id', 'user_alias'... is required``) -> ``MISSING_IDENTIFIER``.
    """
    fields = _FIELD.findall(text)
    if len(fields) > 1 and "required" in text:
        return "MISSING_IDENTIFIER"
    name = fields[0].upper() if fields else "OBJECT"
    if "does not exist" in text:
        return f"UNKNOWN_{name}"
    if "required" in text:
        return f"MISSING_{name}"
    if "not valid" in text or "invalid" in text.lower():
        return f"INVALID_{name}"
    return "OBJECT_ERROR"


def safe_text(text: str) -> str:
    """Return Braze's error text when it holds no donor value, else only the field names it names."""
    if _UNSAFE.search(text) or len(text) > 200:
        return "fields " + ", ".join(_FIELD.findall(text)) if _FIELD.search(text) else "(text withheld)"
    return text
