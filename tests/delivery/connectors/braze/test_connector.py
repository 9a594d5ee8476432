"""The Braze connector against the emulator: object limits, per-object errors, subscription
groups, deletes and rate-limit pacing."""

from __future__ import annotations

import time
from typing import Any

from donor_sync.delivery.connectors.braze import subscriptions
from donor_sync.delivery.connectors.braze.connector import BrazeConnector
from donor_sync.delivery.connectors.braze.results import error_code
from donor_sync.delivery.contracts import FailureClass, Operation, OutboundRecord, RecordRef
from tests.delivery.connectors.braze.conftest import EMAIL_GROUP, SMS_GROUP, Admin


def user(n: int, email: str | None = None, **fields: Any) -> OutboundRecord:
    payload = {"email": email or f"donor{n}@example.org", "first_name": f"Ada{n}", **fields}
    return OutboundRecord(n, "user", f"donor-{n}", Operation.UPSERT, payload, donor_id=f"donor-{n}")


def groups(n: int, donor: str, **states: str) -> OutboundRecord:
    ref = RecordRef("user", donor)
    return OutboundRecord(
        n,
        subscriptions.ENTITY,
        donor,
        Operation.UPSERT,
        {"user": {"external_id": donor}, **states},
        depends_on=(ref,),
        remote_refs={ref: donor},
    )


def track_calls(admin: Admin) -> list[dict[str, Any]]:
    return [r for r in admin.request_log() if r.get("path") == "/users/track"]


def test_users_land_in_requests_of_at_most_75_objects(connector: BrazeConnector, admin: Admin) -> None:
    records = [user(i) for i in range(1, 161)]

    results = connector.push("user", Operation.UPSERT, records)

    assert all(r.ok for r in results)
    assert [r.remote_id for r in results] == [f"donor-{i}" for i in range(1, 161)]
    assert len(admin.users()) == 160
    assert admin.users()["donor-7"]["email"] == "donor7@example.org"
    assert len(track_calls(admin)) == 3  # 75 + 75 + 10


def test_a_lower_object_limit_splits_further(make_connector: Any, admin: Admin) -> None:
    admin.settings(users_track_max_objects=10)
    connector = make_connector(max_objects=10)

    results = connector.push("user", Operation.UPSERT, [user(i) for i in range(1, 26)])

    assert all(r.ok for r in results)
    assert len(admin.users()) == 25
    assert len(track_calls(admin)) == 3


def test_a_bad_object_fails_only_its_record(connector: BrazeConnector, admin: Admin) -> None:
    records = [user(1), user(2, email="not-an-email"), user(3)]

    results = connector.push("user", Operation.UPSERT, records)

    assert [r.ok for r in results] == [True, False, True]
    bad = results[1]
    assert (bad.error_class, bad.error_code) == (FailureClass.VALIDATION, "INVALID_EMAIL")
    assert "not-an-email" not in (bad.message or "")
    assert set(admin.users()) == {"donor-1", "donor-3"}


def test_a_request_where_every_object_is_bad_fails_each_record(connector: BrazeConnector) -> None:
    results = connector.push("user", Operation.UPSERT, [user(1, email="x"), user(2, email="y")])

    assert [(r.ok, r.error_code) for r in results] == [(False, "INVALID_EMAIL"), (False, "INVALID_EMAIL")]


def test_error_codes() -> None:
    assert error_code("'name' is required") == "MISSING_NAME"
    assert error_code("'braze_id' does not exist") == "UNKNOWN_BRAZE_ID"
    assert error_code("'external_id', 'user_alias', 'braze_id', 'email' or 'phone' is required") == (
        "MISSING_IDENTIFIER"
    )


def test_subscription_groups_set_after_the_user_and_no_choice_sends_nothing(
    connector: BrazeConnector, admin: Admin
) -> None:
    connector.push("user", Operation.UPSERT, [user(1), user(2), user(3)])
    records = [
        groups(11, "donor-1", **{EMAIL_GROUP: "subscribed", SMS_GROUP: "unsubscribed"}),
        groups(12, "donor-2", **{EMAIL_GROUP: "unsubscribed"}),
        groups(13, "donor-3"),
    ]

    results = connector.push(subscriptions.ENTITY, Operation.UPSERT, records)

    assert all(r.ok for r in results)
    users = admin.users()
    assert users["donor-1"]["subscription_groups"] == {EMAIL_GROUP: "subscribed", SMS_GROUP: "unsubscribed"}
    assert users["donor-2"]["subscription_groups"] == {EMAIL_GROUP: "unsubscribed"}
    assert users["donor-3"]["subscription_groups"] == {}
    assert subscriptions.read_states(connector.client, EMAIL_GROUP, ["donor-1", "donor-2", "donor-3"]) == {
        "donor-1": "subscribed",
        "donor-2": "unsubscribed",
        "donor-3": "unknown",
    }


def test_more_than_50_ids_of_one_group_split_into_entries(connector: BrazeConnector, admin: Admin) -> None:
    connector.push("user", Operation.UPSERT, [user(i) for i in range(1, 121)])
    records = [groups(1000 + i, f"donor-{i}", **{EMAIL_GROUP: "subscribed"}) for i in range(1, 121)]

    results = subscriptions.set_states(connector.client, records)  # beyond the connector's batch size

    assert all(r.ok for r in results)
    assert all(u["subscription_groups"] == {EMAIL_GROUP: "subscribed"} for u in admin.users().values())


def test_delete_removes_users_and_unknown_ones_count_as_deleted(
    connector: BrazeConnector, admin: Admin
) -> None:
    connector.push("user", Operation.UPSERT, [user(1), user(2)])
    gone = [OutboundRecord(i, "user", f"donor-{i}", Operation.DELETE, {}) for i in (1, 9)]

    results = connector.push("user", Operation.DELETE, gone)

    assert all(r.ok for r in results)
    assert set(admin.users()) == {"donor-2"}


def test_pacing_waits_for_the_window_instead_of_drawing_429s(connector: BrazeConnector, admin: Admin) -> None:
    admin.settings(rate_limits={"users_track": {"limit": 2, "window_s": 1.0}})
    records = [user(i) for i in range(1, 7)]
    started = time.monotonic()

    results = [connector.push("user", Operation.UPSERT, [r])[0] for r in records]

    assert all(r.ok for r in results)
    assert len(admin.users()) == 6
    assert connector.client.rate_limited == 0  # no 429 was drawn
    assert connector.client.pacer is not None
    assert connector.client.pacer.waits >= 2
    assert time.monotonic() - started >= 1.0
