"""Braze erasure against the emulator: /users/delete by external id and by braze id for email-only
profiles, read back through /users/export/ids, idempotent; 429s wait for the reset."""

from __future__ import annotations

import time
from typing import Any

import tenacity

from donor_sync.delivery.connectors.braze.client import BrazeClient, default_retry, rate_limit_wait_s
from donor_sync.privacy.erasers import BrazeEraser
from donor_sync.privacy.erasers.settings import BrazeErasure
from sandbox.common.runner import Sandbox
from tests.privacy.erasers.conftest import DONOR, fault, pii_found


def _seed(box: Sandbox) -> None:
    emulator: Any = box["braze"].emulator
    with emulator.lock:
        emulator.seed(
            "users",
            [
                {
                    "external_id": DONOR.donor_id,
                    "email": DONOR.email,
                    "first_name": DONOR.first,
                    "last_name": DONOR.last,
                    "phone": DONOR.phone,
                },
                {"email": DONOR.old_email, "first_name": DONOR.first},  # an email-only capture
                {"external_id": "someone-else", "email": "someone.else@example.com", "first_name": "Amara"},
            ],
        )


def _users(box: Sandbox) -> list[dict[str, Any]]:
    emulator: Any = box["braze"].emulator
    with emulator.lock:
        return list(emulator.snapshot()["users"])


def test_users_delete_by_external_id_and_email_then_not_held(
    sandbox: Sandbox, braze_client: BrazeClient
) -> None:
    _seed(sandbox)
    eraser = BrazeEraser(braze_client, BrazeErasure())

    receipt = eraser.erase(DONOR.subject())

    assert (receipt.status, receipt.action, receipt.verified) == ("done", "user_deleted", True), receipt
    assert receipt.counts["deleted_by_external_id"] == 1
    assert receipt.counts["deleted_by_braze_id"] == 1
    users = _users(sandbox)
    assert pii_found(users) == []
    assert [u["external_id"] for u in users] == ["someone-else"]
    assert pii_found(receipt.as_row()) == []
    assert "/users/export/ids by external_id/email: 0 profiles found" in (receipt.verification or "")

    again = eraser.erase(DONOR.subject())

    assert (again.status, again.action, again.verified) == ("done", "not_held", True), again


def test_without_by_email_the_email_only_profile_is_left(sandbox: Sandbox, braze_client: BrazeClient) -> None:
    _seed(sandbox)

    BrazeEraser(braze_client, BrazeErasure(by_email=False)).erase(DONOR.subject())

    assert DONOR.old_email in pii_found(_users(sandbox))


def test_a_429_waits_for_the_reset_then_succeeds(sandbox: Sandbox, braze_client: BrazeClient) -> None:
    _seed(sandbox)
    reset = str(int(time.time()))  # already reached: the wait is zero, and it is what was honoured
    fault(
        sandbox,
        "braze",
        kind="status",
        status=429,
        path="/users/delete",
        count=1,
        headers={"X-RateLimit-Reset": reset},
    )
    braze_client.retry = lambda: default_retry(attempts=3, wait=tenacity.wait_fixed(30))

    started = time.monotonic()
    receipt = BrazeEraser(braze_client, BrazeErasure()).erase(DONOR.subject())

    assert (receipt.status, receipt.verified) == ("done", True), receipt
    assert braze_client.retries == 1
    assert time.monotonic() - started < 10, "the reset header, not the 30 s fallback, set the wait"


def test_a_lasting_500_gives_a_failed_receipt_without_pii(
    sandbox: Sandbox, braze_client: BrazeClient
) -> None:
    _seed(sandbox)
    fault(sandbox, "braze", kind="status", status=500, path="/users/delete")

    receipt = BrazeEraser(braze_client, BrazeErasure()).erase(DONOR.subject())

    assert (receipt.status, receipt.verified) == ("failed", False), receipt
    assert receipt.error == "users-delete: transient HTTP 500 HTTP_500"
    assert pii_found(receipt.as_row()) == []


def test_rate_limit_wait_reads_retry_after_then_the_reset() -> None:
    assert rate_limit_wait_s({"Retry-After": "7"}, now=100.0) == 7.0
    assert rate_limit_wait_s({"X-RateLimit-Reset": "112"}, now=100.0) == 12.0
    assert rate_limit_wait_s({"X-RateLimit-Reset": "90"}, now=100.0) == 0.0
    assert rate_limit_wait_s({}, now=100.0) is None
