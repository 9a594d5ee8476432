"""The Mailchimp connector against the emulator: batch subscribe, updates that never re-subscribe,
per-member errors, 429 and 5xx, /batches above the threshold, unsubscribe, archive and permanent delete."""

from __future__ import annotations

from typing import Any

import pytest

from donor_sync.delivery.connectors.mailchimp.client import subscriber_hash
from donor_sync.delivery.connectors.mailchimp.connector import MailchimpConnector
from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass, Operation, OutboundRecord
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox
from sandbox.emulators.mailchimp import DEFAULT_LIST_ID, MailchimpEmulator
from tests.delivery.connectors.mailchimp.conftest import make_connector, members

SUBSCRIBE = f"/3.0/lists/{DEFAULT_LIST_ID}"


def record(n: int, email: str, *, status: str = "subscribed", **fields: Any) -> OutboundRecord:
    payload: dict[str, Any] = {
        "email_address": email,
        "status_if_new": status,
        "merge:FNAME": f"Donor{n}",
        "merge:GIFTCOUNT": n,
        "tag:Donor": True,
        "tag:Monthly donor": False,
        "permission:Email": True,
        **fields,
    }
    return OutboundRecord(n, "member", f"donor-{n}", Operation.UPSERT, payload)


def calls(emulator: MailchimpEmulator, method: str, path: str) -> int:
    return sum(1 for r in emulator.request_log if r["method"] == method and r["path"] == path)


def test_new_members_are_created_in_one_batch_subscribe_with_merge_fields_tags_and_permissions(
    connector: MailchimpConnector, emulator: MailchimpEmulator
) -> None:
    records = [
        record(1, "Ada@Example.org"),
        record(
            2,
            "bob@example.org",
            status="transactional",
            **{
                "merge:ADDRESS.addr1": "1 Main St",
                "merge:ADDRESS.city": "Springfield",
                "merge:ADDRESS.state": "IL",
                "merge:ADDRESS.zip": "62701",
                "tag:Monthly donor": True,
                "permission:Email": False,
            },
        ),
        record(3, "cy@example.org", **{"merge:ADDRESS.addr1": "2 Side St"}),  # incomplete address
    ]
    results = connector.push("member", Operation.UPSERT, records)

    assert [(r.ok, r.remote_id, r.created) for r in results] == [
        (True, subscriber_hash("ada@example.org"), True),
        (True, subscriber_hash("bob@example.org"), True),
        (True, subscriber_hash("cy@example.org"), True),
    ]
    assert calls(emulator, "POST", SUBSCRIBE) == 1
    held = members(emulator)
    assert held["ada@example.org"]["status"] == "subscribed"
    assert held["bob@example.org"]["status"] == "transactional"
    assert held["ada@example.org"]["merge_fields"]["DONORID"] == "donor-1"
    assert held["ada@example.org"]["merge_fields"]["FNAME"] == "Donor1"
    assert held["bob@example.org"]["merge_fields"]["ADDRESS"]["city"] == "Springfield"
    assert held["cy@example.org"]["merge_fields"]["ADDRESS"] in ("", None), (
        "an incomplete address is left out"
    )
    assert {t["name"] for t in held["bob@example.org"]["tags"]} == {"Donor", "Monthly donor"}
    assert {t["name"] for t in held["ada@example.org"]["tags"]} == {"Donor"}
    permissions = {p["text"]: p["enabled"] for p in held["ada@example.org"]["marketing_permissions"]}
    assert permissions == {"Email": True, "Direct Mail": False}
    assert connector.counts["incomplete_addresses_left_out"] == 1


@pytest.mark.parametrize("kept_out", ["unsubscribed", "cleaned", "archived"])
def test_an_existing_member_is_updated_but_never_resubscribed(
    connector: MailchimpConnector, emulator: MailchimpEmulator, kept_out: str
) -> None:
    emulator.seed(
        "members",
        [
            {
                "email_address": "gone@example.org",
                "status": "subscribed" if kept_out == "archived" else kept_out,
                "merge_fields": {"FNAME": "Old"},
            },
            {"email_address": "here@example.org", "status": "subscribed", "tags": ["Monthly donor"]},
        ],
    )
    if kept_out == "archived":
        path = f"/lists/{DEFAULT_LIST_ID}/members/{subscriber_hash('gone@example.org')}"
        connector.client.request("DELETE", path)
    results = connector.push(
        "member", Operation.UPSERT, [record(1, "gone@example.org"), record(2, "here@example.org")]
    )
    assert results[0].ok is False
    assert results[0].error_class == FailureClass.CONSENT_BLOCKED
    assert results[0].error_code == f"MEMBER_{kept_out.upper()}"
    assert (results[1].ok, results[1].created) == (True, False)
    held = members(emulator)
    assert held["gone@example.org"]["status"] == kept_out
    assert held["here@example.org"]["status"] == "subscribed"
    assert held["here@example.org"]["merge_fields"]["FNAME"] == "Donor2"
    assert {t["name"] for t in held["here@example.org"]["tags"]} == {"Donor"}, "a false tag is taken off"
    assert len([r for r in emulator.request_log if r["method"] == "PUT"]) == 2


def test_per_member_errors_are_classified_and_the_others_land(
    connector: MailchimpConnector, emulator: MailchimpEmulator
) -> None:
    emulator.seed("members", [{"email_address": "forgotten@example.org"}])
    connector.push(
        "member",
        Operation.DELETE,
        [
            OutboundRecord(
                9, "member", "x", Operation.DELETE, {}, remote_id=subscriber_hash("forgotten@example.org")
            )
        ],
    )
    results = connector.push(
        "member",
        Operation.UPSERT,
        [
            record(1, "forgotten@example.org"),
            record(2, "not-an-email"),
            record(3, "fine@example.org"),
            record(4, "badnumber@example.org", **{"merge:GIFTCOUNT": "many"}),
            OutboundRecord(5, "member", "donor-5", Operation.UPSERT, {"status_if_new": "subscribed"}),
        ],
    )
    by_id = {r.outbox_id: r for r in results}
    assert by_id[1].error_class == FailureClass.CONSENT_BLOCKED
    assert by_id[2].error_class == FailureClass.VALIDATION
    assert by_id[3].ok
    assert by_id[4].error_class == FailureClass.VALIDATION
    assert "GIFTCOUNT" in (by_id[4].message or "")
    assert by_id[5].error_code == "INVALID_PAYLOAD"
    for result in results:
        assert "@" not in (result.message or ""), "no address in a message"


def test_two_donors_sharing_an_address_are_one_member(
    connector: MailchimpConnector, emulator: MailchimpEmulator
) -> None:
    results = connector.push(
        "member", Operation.UPSERT, [record(1, "twin@example.org"), record(2, "TWIN@example.org")]
    )
    assert all(r.ok for r in results)
    assert len(members(emulator)) == 1


def test_rate_limits_and_server_errors_are_retried(
    connector: MailchimpConnector, emulator: MailchimpEmulator
) -> None:
    emulator.faults.set(
        [
            FaultRule(kind="status", status=429, path=f"^{SUBSCRIBE}$", count=2),
            FaultRule(kind="status", status=503, path="/members/", method="PUT", count=1),
        ]
    )
    emulator.seed("members", [{"email_address": "old@example.org"}])
    results = connector.push(
        "member", Operation.UPSERT, [record(1, "new@example.org"), record(2, "old@example.org")]
    )
    assert all(r.ok for r in results)
    assert connector.client.retries == 3
    assert set(members(emulator)) == {"new@example.org", "old@example.org"}


def test_a_rate_limit_that_outlasts_the_retries_leaves_the_batch_for_the_ladder(
    box: Sandbox, emulator: MailchimpEmulator
) -> None:
    connector = make_connector(box, attempts=2)
    emulator.faults.set([FaultRule(kind="status", status=429, path=f"^{SUBSCRIBE}$")])
    with pytest.raises(DestinationUnavailableError) as caught:
        connector.push("member", Operation.UPSERT, [record(1, "new@example.org")])
    assert caught.value.error_class == FailureClass.RATE_LIMITED
    assert members(emulator) == {}


def test_parallel_updates_stay_within_the_connection_limit(box: Sandbox, emulator: MailchimpEmulator) -> None:
    emulator.settings["max_connections"] = 3
    try:
        emulator.faults.set([FaultRule(kind="slow", delay_s=0.05, path="/members/")])
        connector = make_connector(box, attempts=1, max_connections=3)
        emulator.seed("members", [{"email_address": f"m{i}@example.org"} for i in range(12)])
        results = connector.push(
            "member", Operation.UPSERT, [record(i + 1, f"m{i}@example.org") for i in range(12)]
        )
        assert all(r.ok for r in results), [r.error_code for r in results if not r.ok]
        assert not any(r["status"] == 429 for r in emulator.request_log if "status" in r)
    finally:
        emulator.settings["max_connections"] = 10


def test_above_the_threshold_members_go_through_batches(box: Sandbox, emulator: MailchimpEmulator) -> None:
    connector = make_connector(box, batches_threshold=3)
    assert connector.batch_size("member", Operation.UPSERT, 2) == 500
    assert connector.batch_size("member", Operation.UPSERT, 700) == 700
    emulator.seed("members", [{"email_address": "m0@example.org", "status": "unsubscribed"}])
    records = [record(i + 1, f"m{i}@example.org") for i in range(600)]
    results = connector.push("member", Operation.UPSERT, records)
    assert calls(emulator, "POST", "/3.0/batches") == 1
    assert calls(emulator, "POST", SUBSCRIBE) == 0
    assert results[0].error_code == "MEMBER_UNSUBSCRIBED"
    assert all(r.ok for r in results[1:])
    held = members(emulator)
    assert held["m0@example.org"]["status"] == "unsubscribed"
    assert held["m599@example.org"]["status"] == "subscribed"
    assert {t["name"] for t in held["m599@example.org"]["tags"]} == {"Donor"}


def test_mirror_archive_unsubscribes_or_archives_and_delete_is_permanent(
    box: Sandbox, emulator: MailchimpEmulator
) -> None:
    emulator.seed(
        "members",
        [{"email_address": f"{n}@example.org"} for n in ("a", "b", "c")]
        + [{"email_address": "d@example.org", "status": "cleaned"}],
    )

    def removal(n: int, email: str, operation: Operation) -> OutboundRecord:
        return OutboundRecord(n, "member", f"donor-{n}", operation, {}, remote_id=subscriber_hash(email))

    unsubscribe = make_connector(box)
    results = unsubscribe.push(
        "member",
        Operation.ARCHIVE,
        [
            removal(1, "a@example.org", Operation.ARCHIVE),
            removal(2, "d@example.org", Operation.ARCHIVE),
            removal(3, "never@example.org", Operation.ARCHIVE),
        ],
    )
    assert all(r.ok for r in results)
    archive = make_connector(box, mirror_archive="archive")
    assert archive.push("member", Operation.ARCHIVE, [removal(4, "b@example.org", Operation.ARCHIVE)])[0].ok
    assert unsubscribe.push("member", Operation.DELETE, [removal(5, "c@example.org", Operation.DELETE)])[0].ok

    held = members(emulator)
    assert held["a@example.org"]["status"] == "unsubscribed"
    assert held["b@example.org"]["status"] == "archived"
    assert "c@example.org" not in held
    assert held["d@example.org"]["status"] in ("cleaned", "unsubscribed")
    # Permanently deleted: Mailchimp refuses the address from now on.
    again = unsubscribe.push("member", Operation.UPSERT, [record(6, "c@example.org")])[0]
    assert again.error_class == FailureClass.CONSENT_BLOCKED
