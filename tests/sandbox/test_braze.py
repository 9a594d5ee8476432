"""The Braze emulator behaves like the Braze REST API (vendor-apis.md section 4)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sandbox.common.runner import Running, Sandbox
from sandbox.emulators.braze import DEFAULT_API_KEY, EMAIL_GROUP, SMS_GROUP, BrazeEmulator

NOW = "2026-11-25T12:00:00Z"


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(BrazeEmulator())


@pytest.fixture
def braze(box: Sandbox) -> Iterator[Running]:
    running = box["braze"]
    running.emulator.reset()
    yield running
    running.emulator.reset()


class Client:
    """A tiny Braze REST client over the sandbox CA."""

    def __init__(self, running: Running, session: requests.Session) -> None:
        self.base = running.base_url
        self.admin = running.admin_url
        self.session = session

    def post(self, path: str, body: Any, key: str = DEFAULT_API_KEY) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return self.session.post(self.base + path, json=body, headers=headers, timeout=10)

    def get(self, path: str, params: dict[str, str]) -> requests.Response:
        headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
        return self.session.get(self.base + path, params=params, headers=headers, timeout=10)

    def settings(self, **changes: Any) -> None:
        assert self.session.patch(f"{self.admin}/settings", json=changes, timeout=5).status_code == 200

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.session.get(f"{self.admin}/state", timeout=5).json()
        return state

    def user(self, external_id: str) -> dict[str, Any] | None:
        return next((u for u in self.state()["users"] if u.get("external_id") == external_id), None)


@pytest.fixture
def client(braze: Running, https: requests.Session) -> Client:
    return Client(braze, https)


def _event(external_id: str, name: str = "donated") -> dict[str, Any]:
    return {"external_id": external_id, "name": name, "time": NOW, "properties": {"amount": 25}}


def _purchase(external_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "product_id": "gift",
        "currency": "USD",
        "price": 25.0,
        "time": NOW,
        **overrides,
    }


# -- auth ------------------------------------------------------------------------------------------


def test_unknown_or_missing_key_is_401(client: Client, https: requests.Session) -> None:
    response = client.post("/users/track", {"attributes": [{"external_id": "1"}]}, key="wrong")
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API Key"}
    bare = https.post(f"{client.base}/users/track", json={}, timeout=5)
    assert bare.status_code == 401


def test_key_without_the_permission_is_403(client: Client) -> None:
    client.settings(key_permissions={DEFAULT_API_KEY: ["users.track"]})
    assert client.post("/users/track", {"attributes": [{"external_id": "1"}]}).status_code == 201
    denied = client.post("/users/delete", {"external_ids": ["1"]})
    assert denied.status_code == 403
    assert "users.delete" in denied.json()["message"]


# -- /users/track ----------------------------------------------------------------------------------


def test_track_upserts_attributes_and_appends_events_and_purchases(client: Client) -> None:
    body = {
        "attributes": [
            {"external_id": "D-1", "first_name": "Ada", "email": "ada@example.org", "lifetime_donated": 120}
        ],
        "events": [_event("D-1")],
        "purchases": [_purchase("D-1")],
    }
    response = client.post("/users/track", body)
    assert response.status_code == 201
    assert response.json() == {
        "message": "success",
        "attributes_processed": 1,
        "events_processed": 1,
        "purchases_processed": 1,
    }
    client.post(
        "/users/track",
        {"attributes": [{"external_id": "D-1", "first_name": "Ada L."}], "events": [_event("D-1")]},
    )
    user = client.user("D-1")
    assert user is not None
    assert user["first_name"] == "Ada L."
    assert user["email"] == "ada@example.org"
    assert user["custom_attributes"] == {"lifetime_donated": 120}
    assert len(user["events"]) == 2, "events are not deduplicated"
    assert len(user["purchases"]) == 1
    assert len(client.state()["users"]) == 1, "attributes upsert by external_id"


def test_attribute_operations_and_null_removal(client: Client) -> None:
    client.post(
        "/users/track", {"attributes": [{"external_id": "D-2", "total": 10, "causes": ["a"], "tmp": 1}]}
    )
    client.post(
        "/users/track",
        {
            "attributes": [
                {
                    "external_id": "D-2",
                    "total": {"inc": 5},
                    "causes": {"add": ["b"], "remove": ["a"]},
                    "tmp": None,
                }
            ]
        },
    )
    user = client.user("D-2")
    assert user is not None
    assert user["custom_attributes"] == {"total": 15, "causes": ["b"]}


def test_update_existing_only_does_not_create_users(client: Client) -> None:
    response = client.post(
        "/users/track", {"attributes": [{"external_id": "ghost", "_update_existing_only": True, "x": 1}]}
    )
    assert response.status_code == 201
    assert client.user("ghost") is None


def test_partial_failures_are_success_with_errors(client: Client) -> None:
    body = {
        "attributes": [{"first_name": "no id"}, {"external_id": "ok", "email_subscribe": "maybe"}],
        "events": [_event("ok"), {"external_id": "ok", "name": "x", "time": "yesterday"}],
        "purchases": [_purchase("ok", price="free")],
    }
    response = client.post("/users/track", body)
    assert response.status_code == 201
    result = response.json()
    assert result["message"] == "success"
    assert (result["attributes_processed"], result["events_processed"], result["purchases_processed"]) == (
        0,
        1,
        0,
    )
    located = {(e["input_array"], e["index"]) for e in result["errors"]}
    assert located == {("attributes", 0), ("attributes", 1), ("events", 1), ("purchases", 0)}
    assert all(isinstance(e["type"], str) and e["type"] for e in result["errors"])


def test_nothing_valid_is_a_fatal_400(client: Client) -> None:
    response = client.post("/users/track", {"purchases": [_purchase("x", price="free")]})
    assert response.status_code == 400
    body = response.json()
    assert body["message"] != "success"
    assert body["errors"][0] == {"type": "'price' is not valid", "input_array": "purchases", "index": 0}
    assert client.post("/users/track", {}).status_code == 400


def test_object_limit_is_75_combined_by_default(client: Client) -> None:
    attributes = [{"external_id": f"u{i}"} for i in range(50)]
    events = [_event(f"u{i}") for i in range(26)]
    over = client.post("/users/track", {"attributes": attributes, "events": events})
    assert over.status_code == 400
    assert over.json()["message"] != "success"
    assert client.state()["users"] == [], "an over-cap request changes nothing"
    assert client.post("/users/track", {"attributes": attributes, "events": events[:25]}).status_code == 201


def test_object_limit_per_array_mode_and_setting(client: Client) -> None:
    client.settings(users_track_limit_mode="per_array")
    attributes = [{"external_id": f"u{i}"} for i in range(75)]
    events = [_event(f"u{i}") for i in range(75)]
    assert client.post("/users/track", {"attributes": attributes, "events": events}).status_code == 201
    assert client.post("/users/track", {"attributes": [*attributes, {"external_id": "x"}]}).status_code == 400
    client.settings(users_track_max_objects=2, users_track_limit_mode="combined")
    assert client.post("/users/track", {"attributes": attributes[:3]}).status_code == 400


# -- /users/delete ---------------------------------------------------------------------------------


def test_users_delete_by_external_ids(client: Client) -> None:
    client.post("/users/track", {"attributes": [{"external_id": i} for i in ("a", "b", "c")]})
    response = client.post("/users/delete", {"external_ids": ["a", "b", "missing"]})
    assert response.status_code == 201
    assert response.json() == {"deleted": 2, "message": "success"}
    assert [u["external_id"] for u in client.state()["users"]] == ["c"]
    assert client.state()["deleted_external_ids"] == ["a", "b"]


def test_users_delete_takes_at_most_50_ids_of_one_type(client: Client) -> None:
    assert client.post("/users/delete", {"external_ids": [str(i) for i in range(51)]}).status_code == 400
    assert client.post("/users/delete", {"external_ids": ["a"], "braze_ids": ["b"]}).status_code == 400
    assert client.post("/users/delete", {}).status_code == 400
    client.settings(users_delete_max_ids=1)
    assert client.post("/users/delete", {"external_ids": ["a", "b"]}).status_code == 400


def test_users_delete_by_email(client: Client) -> None:
    client.post("/users/track", {"attributes": [{"external_id": "e", "email": "e@example.org"}]})
    assert client.post("/users/delete", {"email_addresses": ["e@example.org"]}).json()["deleted"] == 1


# -- subscription groups ---------------------------------------------------------------------------


def test_subscription_status_set_and_get(client: Client) -> None:
    client.post("/users/track", {"attributes": [{"external_id": "s1"}, {"external_id": "s2"}]})
    response = client.post(
        "/subscription/status/set",
        {
            "subscription_group_id": EMAIL_GROUP,
            "subscription_state": "subscribed",
            "external_id": ["s1", "s2"],
        },
    )
    assert (response.status_code, response.json()) == (201, {"message": "success"})
    client.post(
        "/subscription/status/set",
        {"subscription_group_id": EMAIL_GROUP, "subscription_state": "unsubscribed", "external_id": "s2"},
    )
    status = client.get(
        "/subscription/status/get", {"subscription_group_id": EMAIL_GROUP, "external_id": "s1,s2,nobody"}
    ).json()
    assert status == {
        "status": {"s1": "Subscribed", "s2": "Unsubscribed", "nobody": "Unknown"},
        "message": "success",
    }


def test_subscription_status_set_validates(client: Client) -> None:
    base = {"subscription_group_id": EMAIL_GROUP, "subscription_state": "subscribed"}
    assert (
        client.post(
            "/subscription/status/set", {**base, "subscription_group_id": "nope", "external_id": ["a"]}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/subscription/status/set", {**base, "subscription_state": "maybe", "external_id": ["a"]}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/subscription/status/set", {**base, "external_id": [str(i) for i in range(51)]}
        ).status_code
        == 400
    )
    assert client.post("/subscription/status/set", {**base, "phone": ["+15555550100"]}).status_code == 400
    assert client.post("/subscription/status/set", base).status_code == 400


def test_v2_sets_several_groups_by_external_id_email_and_phone(client: Client) -> None:
    client.post("/users/track", {"attributes": [{"external_id": "v2", "email": "v2@example.org"}]})
    body = {
        "subscription_groups": [
            {
                "subscription_group_id": EMAIL_GROUP,
                "subscription_state": "subscribed",
                "emails": ["v2@example.org"],
            },
            {"subscription_group_id": SMS_GROUP, "subscription_state": "subscribed", "external_ids": ["v2"]},
        ]
    }
    assert client.post("/v2/subscription/status/set", body).status_code == 201
    user = client.user("v2")
    assert user is not None
    assert user["subscription_groups"] == {EMAIL_GROUP: "subscribed", SMS_GROUP: "subscribed"}
    bad_phone = {
        "subscription_groups": [
            {"subscription_group_id": SMS_GROUP, "subscription_state": "subscribed", "phones": ["555"]}
        ]
    }
    assert client.post("/v2/subscription/status/set", bad_phone).status_code == 400


def test_track_writes_subscription_groups_and_email_subscribe(client: Client) -> None:
    attributes = {
        "external_id": "t",
        "email_subscribe": "opted_in",
        "subscription_groups": [{"subscription_group_id": EMAIL_GROUP, "subscription_state": "unsubscribed"}],
    }
    assert client.post("/users/track", {"attributes": [attributes]}).json()["attributes_processed"] == 1
    user = client.user("t")
    assert user is not None
    assert (user["email_subscribe"], user["subscription_groups"]) == (
        "opted_in",
        {EMAIL_GROUP: "unsubscribed"},
    )


# -- canvas and campaign triggers ------------------------------------------------------------------


def test_canvas_trigger_send_records_entry_properties_for_existing_users(client: Client) -> None:
    client.post("/users/track", {"attributes": [{"external_id": "c1"}]})
    body = {
        "canvas_id": "sandbox-canvas",
        "canvas_entry_properties": {"campaign": "year-end"},
        "recipients": [
            {"external_user_id": "c1", "canvas_entry_properties": {"amount": 50}},
            {"external_user_id": "unknown"},
            {"external_user_id": "c2", "send_to_existing_only": False, "attributes": {"first_name": "New"}},
        ],
    }
    response = client.post("/canvas/trigger/send", body)
    assert response.status_code == 201
    result = response.json()
    assert result["message"] == "success"
    assert result["dispatch_id"]
    send = client.state()["sends"][0]
    assert (send["kind"], send["id"], send["properties"]) == (
        "canvas",
        "sandbox-canvas",
        {"campaign": "year-end"},
    )
    assert [(r["external_id"], r["properties"]) for r in send["recipients"]] == [
        ("c1", {"amount": 50}),
        ("c2", {}),
    ]
    created = client.user("c2")
    assert created is not None
    assert created["first_name"] == "New"


def test_canvas_trigger_validation(client: Client) -> None:
    recipient = {"external_user_id": "x"}
    assert (
        client.post("/canvas/trigger/send", {"canvas_id": "nope", "recipients": [recipient]}).status_code
        == 400
    )
    assert client.post("/canvas/trigger/send", {"canvas_id": "sandbox-canvas"}).status_code == 400
    too_many = {"canvas_id": "sandbox-canvas", "recipients": [recipient] * 51}
    assert client.post("/canvas/trigger/send", too_many).status_code == 400
    no_attributes = {
        "canvas_id": "sandbox-canvas",
        "recipients": [{"external_user_id": "x", "send_to_existing_only": False}],
    }
    assert client.post("/canvas/trigger/send", no_attributes).status_code == 400
    assert (
        client.post("/canvas/trigger/send", {"canvas_id": "sandbox-canvas", "broadcast": True}).status_code
        == 201
    )


def test_campaign_trigger_send_with_trigger_properties(client: Client) -> None:
    client.post("/users/track", {"attributes": [{"external_id": "k1"}]})
    body = {
        "campaign_id": "sandbox-campaign",
        "trigger_properties": {"receipt": "R-1"},
        "recipients": [{"external_user_id": "k1", "trigger_properties": {"amount": 10}}],
    }
    response = client.post("/campaigns/trigger/send", body)
    assert response.status_code == 201
    send = client.state()["sends"][0]
    assert (send["kind"], send["properties"]) == ("campaign", {"receipt": "R-1"})
    assert send["recipients"][0]["properties"] == {"amount": 10}
    assert client.post("/campaigns/trigger/send", {**body, "campaign_id": "other"}).status_code == 400


# -- rate limit ------------------------------------------------------------------------------------


def test_rate_limit_headers_and_429(client: Client) -> None:
    client.settings(rate_limits={"users_track": {"limit": 3, "window_s": 1.0}})
    body = {"attributes": [{"external_id": "r"}]}
    responses = [client.post("/users/track", body) for _ in range(4)]
    assert [r.status_code for r in responses] == [201, 201, 201, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "3" for r in responses)
    reset = int(responses[-1].headers["X-RateLimit-Reset"])
    assert time.time() - 1 <= reset <= time.time() + 2
    assert responses[-1].json()["message"]
    other = client.post("/users/delete", {"external_ids": ["zz"]})
    assert other.status_code == 201, "limits are per endpoint group"
    time.sleep(1.05)
    assert client.post("/users/track", body).status_code == 201, "the window resets"


def test_default_users_track_limit_is_3000_per_3_seconds(client: Client) -> None:
    response = client.post("/users/track", {"attributes": [{"external_id": "d"}]})
    assert response.headers["X-RateLimit-Limit"] == "3000"
    assert response.headers["X-RateLimit-Remaining"] == "2999"
    assert BrazeEmulator.default_settings["rate_limits"]["users_track"]["window_s"] == 3.0


# -- faults, malformed bodies, seed ----------------------------------------------------------------


def test_injected_faults_and_bad_json_use_the_braze_body(client: Client, https: requests.Session) -> None:
    https.put(f"{client.admin}/faults", json=[{"kind": "status", "status": 500, "count": 1}], timeout=5)
    failed = client.post("/users/track", {"attributes": [{"external_id": "f"}]})
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal Server Error"})
    raw = https.post(
        f"{client.base}/users/track",
        data=b"{nope",
        headers={"Authorization": f"Bearer {DEFAULT_API_KEY}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert raw.status_code == 400
    assert "message" in raw.json()


def test_seed_users(client: Client, https: requests.Session) -> None:
    loaded = https.post(
        f"{client.admin}/seed/users", json=[{"external_id": "s", "first_name": "Seed"}], timeout=5
    )
    assert loaded.json() == {"loaded": 1}
    user = client.user("s")
    assert user is not None
    assert user["first_name"] == "Seed"
