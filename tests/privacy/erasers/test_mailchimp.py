"""Mailchimp erasure against the emulator: permanent delete of every email of the donor, read back,
re-import refused, idempotent; 429/5xx retried or a failed receipt without PII."""

from __future__ import annotations

from typing import Any

import pytest

from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient, base_url_for, data_centre
from donor_sync.errors import ConfigError
from donor_sync.privacy.erasers import MailchimpEraser
from donor_sync.privacy.erasers.settings import MailchimpErasure
from sandbox.common.runner import Sandbox
from sandbox.emulators.mailchimp import DEFAULT_LIST_ID
from tests.privacy.erasers.conftest import DONOR, fault, pii_found

SECOND_LIST = "s3c0ndl1st"


def _seed(box: Sandbox) -> None:
    emulator: Any = box["mailchimp"].emulator
    with emulator.lock:
        emulator.seed("lists", [{"id": SECOND_LIST, "name": "Newsletter"}])
        emulator.seed(
            "members",
            [
                {
                    "email_address": DONOR.email,
                    "merge_fields": {"FNAME": DONOR.first, "LNAME": DONOR.last, "PHONE": DONOR.phone},
                },
                {"email_address": DONOR.old_email, "merge_fields": {"FNAME": DONOR.first}},
                {"list_id": SECOND_LIST, "email_address": DONOR.email, "merge_fields": {"LNAME": DONOR.last}},
                {"email_address": "someone.else@example.com", "merge_fields": {"FNAME": "Amara"}},
            ],
        )


def _state(box: Sandbox) -> dict[str, Any]:
    emulator: Any = box["mailchimp"].emulator
    with emulator.lock:
        return emulator.snapshot()  # type: ignore[no-any-return]


def test_permanent_delete_in_every_audience_then_not_held(
    sandbox: Sandbox, mailchimp_client: MailchimpClient
) -> None:
    _seed(sandbox)
    eraser = MailchimpEraser(mailchimp_client, MailchimpErasure(all_lists=True))

    receipt = eraser.erase(DONOR.subject())

    assert (receipt.status, receipt.action, receipt.verified) == ("done", "permanently_deleted", True), (
        receipt
    )
    assert receipt.counts == {"audiences": 2, "emails": 2, "members": 3}
    state = _state(sandbox)
    assert pii_found(state) == []
    assert len(state["lists"][DEFAULT_LIST_ID]["members"]) == 1, "the other member stays"
    assert pii_found(receipt.as_row()) == []
    assert "@" not in str(receipt.as_row())

    again = eraser.erase(DONOR.subject())

    assert (again.status, again.action, again.verified) == ("done", "not_held", True), again


def test_a_permanently_deleted_email_cannot_be_added_again(
    sandbox: Sandbox, mailchimp_client: MailchimpClient
) -> None:
    _seed(sandbox)
    MailchimpEraser(mailchimp_client, MailchimpErasure(), default_list_id=DEFAULT_LIST_ID).erase(
        DONOR.subject()
    )

    reply = mailchimp_client.request(
        "POST",
        f"/lists/{DEFAULT_LIST_ID}/members",
        json={"email_address": DONOR.email, "status": "subscribed"},
        accept=(400,),
    )

    assert reply.status == 400
    assert reply.body["title"] == "Forgotten Email Not Subscribed"


def test_archive_is_offered_but_keeps_the_member(sandbox: Sandbox, mailchimp_client: MailchimpClient) -> None:
    _seed(sandbox)

    receipt = MailchimpEraser(
        mailchimp_client, MailchimpErasure(method="archive", list_ids=(DEFAULT_LIST_ID,))
    ).erase(DONOR.subject())

    assert (receipt.action, receipt.verified) == ("archived", True), receipt
    members = _state(sandbox)["lists"][DEFAULT_LIST_ID]["members"]
    assert {m["status"] for m in members if m["email_address"] != "someone.else@example.com"} == {"archived"}


def test_429s_are_retried(sandbox: Sandbox, mailchimp_client: MailchimpClient) -> None:
    _seed(sandbox)
    fault(sandbox, "mailchimp", kind="status", status=429, path="delete-permanent", count=2)

    receipt = MailchimpEraser(mailchimp_client, MailchimpErasure(), default_list_id=DEFAULT_LIST_ID).erase(
        DONOR.subject()
    )

    assert (receipt.status, receipt.verified) == ("done", True), receipt
    assert mailchimp_client.retries == 2


def test_a_lasting_503_gives_a_failed_receipt_without_pii(
    sandbox: Sandbox, mailchimp_client: MailchimpClient
) -> None:
    _seed(sandbox)
    fault(sandbox, "mailchimp", kind="status", status=503, path="delete-permanent")

    receipt = MailchimpEraser(mailchimp_client, MailchimpErasure(), default_list_id=DEFAULT_LIST_ID).erase(
        DONOR.subject()
    )

    assert (receipt.status, receipt.verified) == ("failed", False), receipt
    assert receipt.error == "delete-permanent: transient HTTP 503 INTERNAL_SERVER_ERROR"
    assert pii_found(receipt.as_row()) == []


def test_no_audience_configured_is_a_failed_receipt_naming_the_setting(
    mailchimp_client: MailchimpClient,
) -> None:
    receipt = MailchimpEraser(mailchimp_client, MailchimpErasure()).erase(DONOR.subject())

    assert receipt.status == "failed"
    assert receipt.error == "find: ConfigError"


@pytest.mark.parametrize(
    ("key", "host", "expected"),
    [
        pytest.param("abc-us6", None, "https://us6.api.mailchimp.com/3.0", id="data-centre"),
        pytest.param("abc-us6", "https://127.0.0.1:8703", "https://127.0.0.1:8703/3.0", id="host-wins"),
        pytest.param("abc-us6", "127.0.0.1:8703/3.0/", "https://127.0.0.1:8703/3.0", id="bare-host"),
    ],
)
def test_base_url(key: str, host: str | None, expected: str) -> None:
    assert base_url_for(key, host) == expected


def test_a_key_without_data_centre_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        data_centre("0123456789abcdef")
    assert "0123456789abcdef" not in str(caught.value)
