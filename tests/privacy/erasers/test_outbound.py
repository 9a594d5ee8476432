"""Outbound subscribers get a signed donor.erased event (ids only); a 2xx is the receipt."""

from __future__ import annotations

import json
import time
from typing import Any

import tenacity

from donor_sync.privacy.erasers import OutboundEraser, Subscriber
from donor_sync.privacy.erasers.outbound import default_retry
from donor_sync.web.webhooks.signatures import verify_hmac_sha256
from sandbox.common.runner import Sandbox
from tests.privacy.erasers.conftest import DONOR, pii_found

SECRET = "test-outbound-secret"


def _deliveries(box: Sandbox) -> list[dict[str, Any]]:
    emulator: Any = box["receiver"].emulator
    with emulator.lock:
        return list(emulator.deliveries)


def _eraser(box: Sandbox, *hooks: str) -> OutboundEraser:
    subscribers = [
        Subscriber(
            h, f"{box['receiver'].base_url}/hooks/{h}", ("old-secret", SECRET), verify=str(box.tls.ca_cert)
        )
        for h in hooks
    ]
    return OutboundEraser(subscribers, retry=lambda: default_retry(attempts=2, wait=tenacity.wait_none()))


def test_each_subscriber_gets_one_signed_event_with_ids_only(sandbox: Sandbox) -> None:
    receipt = _eraser(sandbox, "crm-mirror", "warehouse").erase(DONOR.subject())

    assert (receipt.status, receipt.action, receipt.verified) == ("done", "notified", True), receipt
    deliveries = _deliveries(sandbox)
    assert sorted(d["hook"] for d in deliveries) == ["crm-mirror", "warehouse"]
    for delivery in deliveries:
        body = delivery["text"].encode()
        verify_hmac_sha256(
            body,
            delivery["headers"]["x-donorsync-timestamp"],
            delivery["headers"]["x-donorsync-signature"],
            [SECRET],
            tolerance_s=300,
            now=time.time(),
        )
        event = json.loads(body)
        assert event["type"] == "donor.erased"
        assert event["version"] == 1
        assert event["data"] == {
            "donor_ids": [DONOR.donor_id, DONOR.merged_id],
            "request_id": str(DONOR.subject().request_id),
        }
        assert pii_found(event) == []
        assert pii_found(delivery["headers"]) == []

    again = _eraser(sandbox, "crm-mirror").erase(DONOR.subject())
    assert again.verified
    ids = {json.loads(d["text"])["id"] for d in _deliveries(sandbox)}
    assert len(ids) == 1, "a retried request re-sends the same event id, so subscribers act once"


def test_a_subscriber_answering_500_fails_the_receipt_after_retries(sandbox: Sandbox) -> None:
    emulator: Any = sandbox["receiver"].emulator
    emulator.settings["respond_status"] = {"broken": 500}

    receipt = _eraser(sandbox, "fine", "broken").erase(DONOR.subject())

    assert (receipt.status, receipt.verified) == ("failed", False), receipt
    assert receipt.error == "not acknowledged by broken"
    assert receipt.counts == {"subscribers": 2, "acknowledged": 1}
    assert [d["hook"] for d in _deliveries(sandbox)].count("broken") == 2, "retried once"


def test_no_subscribers_is_not_held() -> None:
    receipt = OutboundEraser([]).erase(DONOR.subject())

    assert (receipt.status, receipt.action, receipt.verified) == ("done", "not_held", True)
