"""Pure parts of the Mailchimp connector: payload to member body, error classes, settings, merge fields."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from donor_sync.delivery.connectors.mailchimp.batches import read_archive
from donor_sync.delivery.connectors.mailchimp.members import (
    PayloadError,
    classify_problem,
    classify_subscribe_error,
    member_body,
)
from donor_sync.delivery.connectors.mailchimp.merge_fields import merge_field_specs
from donor_sync.delivery.connectors.mailchimp.settings import settings_from_extra
from donor_sync.delivery.contracts import FailureClass
from donor_sync.delivery.mapping import load_destination
from donor_sync.errors import ConfigError


def test_member_body_splits_merge_fields_addresses_tags_and_permissions() -> None:
    payload = {
        "email_address": " Ada@Example.org ",
        "status_if_new": "subscribed",
        "merge:fname": "Ada",
        "merge:ADDRESS.addr1": "1 Way",
        "merge:ADDRESS.city": "London",
        "merge:ADDRESS.state": "LDN",
        "merge:ADDRESS.zip": "N1",
        "tag:Donor": True,
        "tag:Monthly donor": "false",
        "permission:Email": True,
    }
    body = member_body(payload)
    assert body.email == "Ada@Example.org"
    assert body.merge_fields == {
        "FNAME": "Ada",
        "ADDRESS": {"addr1": "1 Way", "city": "London", "state": "LDN", "zip": "N1"},
    }
    assert body.tags == {"Donor": True, "Monthly donor": False}
    assert body.put_body({"Email": "p1"})["marketing_permissions"] == [
        {"marketing_permission_id": "p1", "enabled": True}
    ]
    assert "status" not in body.put_body({}), "an existing member's status is never sent"
    assert body.subscribe_body({})["tags"] == ["Donor"]
    assert payload["email_address"] == " Ada@Example.org ", "input unchanged"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        pytest.param({"status_if_new": "subscribed"}, "email_address", id="no-email"),
        pytest.param(
            {"email_address": "a@b.org", "status_if_new": "cleaned"}, "status_if_new", id="bad-status"
        ),
        pytest.param({"email_address": "a@b.org", "FNAME": "x"}, "FNAME", id="unknown-field"),
        pytest.param(
            {"email_address": "a@b.org", "merge:ADDRESS.street": "x"}, "address part", id="bad-part"
        ),
    ],
)
def test_bad_payloads_name_the_field(payload: dict[str, object], problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        member_body(payload)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(
            400,
            {"title": "Member In Compliance State", "detail": "x@y.org is"},
            FailureClass.CONSENT_BLOCKED,
            id="compliance",
        ),
        pytest.param(
            400, {"title": "Forgotten Email Not Subscribed"}, FailureClass.CONSENT_BLOCKED, id="forgotten"
        ),
        pytest.param(
            400,
            {"title": "Invalid Resource", "errors": [{"field": "FNAME", "message": "m"}]},
            FailureClass.VALIDATION,
            id="merge",
        ),
        pytest.param(429, {"title": "Too Many Requests"}, FailureClass.RATE_LIMITED, id="429"),
        pytest.param(503, None, FailureClass.TRANSIENT, id="503"),
        pytest.param(401, {"title": "API Key Invalid"}, FailureClass.AUTH, id="401"),
    ],
)
def test_problems_are_classified_without_the_detail(
    status: int, body: object, expected: FailureClass
) -> None:
    verdict = classify_problem(status, body)
    assert verdict.error_class == expected
    assert "@" not in verdict.message


def test_subscribe_errors_are_classified() -> None:
    forgotten = {
        "email_address": "a@b.org",
        "error": "a@b.org was permanently deleted and cannot be re-imported.",
    }
    assert classify_subscribe_error(forgotten).error_class == FailureClass.CONSENT_BLOCKED
    merge = {
        "error": "Your merge fields were invalid.",
        "field": "GIFTCOUNT",
        "field_message": "Please enter a number",
    }
    verdict = classify_subscribe_error(merge)
    assert (verdict.error_class, verdict.message) == (
        FailureClass.VALIDATION,
        "field GIFTCOUNT: Please enter a number",
    )


def test_settings_from_extras_name_the_bad_extra() -> None:
    settings = settings_from_extra(
        {"list_id": "L1", "marketing_permissions": "Email=p1, Direct Mail=p2", "max_connections": "3"}
    )
    assert (settings.list_id, settings.max_connections, dict(settings.marketing_permissions)) == (
        "L1",
        3,
        {"Email": "p1", "Direct Mail": "p2"},
    )
    cases: list[tuple[dict[str, object], str]] = [
        ({}, "list_id"),
        ({"list_id": "L", "max_connections": 11}, "max_connections"),
        ({"list_id": "L", "mirror_archive": "delete"}, "mirror_archive"),
        ({"list_id": "L", "marketing_permissions": "Email"}, "marketing_permissions"),
    ]
    for extra, name in cases:
        with pytest.raises(ConfigError, match=name):
            settings_from_extra(extra)


def test_the_shipped_mapping_needs_these_merge_fields() -> None:
    specs = merge_field_specs(load_destination("mailchimp"))
    assert specs["ADDRESS"] == "address"
    assert specs["GIFTCOUNT"] == specs["TOTALGIVEN"] == "number"
    assert specs["LASTGIFT"] == "date"
    assert specs["DONORID"] == "text"


def test_a_results_archive_is_read_by_operation_id() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = json.dumps(
            [
                {
                    "status_code": 200,
                    "operation_id": "7.put",
                    "response": json.dumps({"status": "subscribed"}),
                },
                {"status_code": 404, "operation_id": "7.tags", "response": ""},
            ]
        ).encode()
        info = tarfile.TarInfo("b1/x-0.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    results = read_archive(gzip.compress(buffer.getvalue()))
    assert results["7.put"].body == {"status": "subscribed"}
    assert results["7.tags"].status == 404
