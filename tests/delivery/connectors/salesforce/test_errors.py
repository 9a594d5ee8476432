"""Every Salesforce error code the connector meets has a failure class; messages keep no values."""

from __future__ import annotations

import pytest

from donor_sync.delivery.connectors.salesforce.errors import SfError, classify_code, parse_rest_errors
from donor_sync.delivery.contracts import FailureClass

T, R, A, V, D, P = (
    FailureClass.TRANSIENT,
    FailureClass.RATE_LIMITED,
    FailureClass.AUTH,
    FailureClass.VALIDATION,
    FailureClass.DUPLICATE_RULE,
    FailureClass.PERMANENT,
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("INVALID_SESSION_ID", A),
        ("REQUEST_LIMIT_EXCEEDED", R),
        ("UNABLE_TO_LOCK_ROW", T),
        ("SERVER_UNAVAILABLE", T),
        ("DUPLICATES_DETECTED", D),
        ("DUPLICATE_VALUE", D),
        ("REQUIRED_FIELD_MISSING", V),
        ("INVALID_FIELD", V),
        ("INVALID_FIELD_FOR_INSERT_UPDATE", V),
        ("STRING_TOO_LONG", V),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", V),
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", V),
        ("MALFORMED_ID", V),
        ("ENTITY_IS_DELETED", P),
        ("NOT_FOUND", P),
        ("INSUFFICIENT_ACCESS_OR_READONLY", P),
        ("INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", P),
        ("SOMETHING_NEW_FROM_SALESFORCE", P),
    ],
)
def test_classify_code(code: str, expected: FailureClass) -> None:
    assert classify_code(code) is expected


@pytest.mark.parametrize(
    ("error", "attempts", "expected"),
    [
        pytest.param(SfError("INVALID_CROSS_REFERENCE_KEY", ("AccountId",)), 0, T, id="bad-id-young"),
        pytest.param(SfError("INVALID_CROSS_REFERENCE_KEY", ("AccountId",)), 5, V, id="bad-id-old"),
        pytest.param(
            SfError(
                "INVALID_FIELD",
                (),
                "Foreign key external ID: X matched multiple records for field A in entity B",
            ),
            0,
            D,
            id="ambiguous-parent",
        ),
        pytest.param(
            SfError(
                "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", (), "npsp.TDTM: UNABLE_TO_LOCK_ROW, unable to obtain"
            ),
            0,
            T,
            id="trigger-hit-a-lock",
        ),
    ],
)
def test_context_dependent_classes(error: SfError, attempts: int, expected: FailureClass) -> None:
    assert error.failure_class(attempts=attempts, parent_wait_attempts=3) is expected


def test_safe_message_drops_values() -> None:
    error = SfError(
        "STRING_TOO_LONG",
        ("LastName",),
        "Last Name: data value too large: Wolfeschlegelsteinhausen (max length=80)",
    )
    assert error.safe_message() == "STRING_TOO_LONG on LastName"


def test_parse_rest_errors_shapes() -> None:
    assert parse_rest_errors([{"errorCode": "NOT_FOUND", "message": "m"}])[0].code == "NOT_FOUND"
    assert parse_rest_errors([{"statusCode": "MALFORMED_ID", "fields": ["Id"]}])[0].fields == ("Id",)
    assert parse_rest_errors({"error": "invalid_grant", "error_description": "x"})[0].code == "invalid_grant"
    assert parse_rest_errors(None)[0].code == "UNKNOWN_ERROR"
