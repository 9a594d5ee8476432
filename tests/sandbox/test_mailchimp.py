"""The Mailchimp emulator behaves like the Marketing API 3.0 (vendor-apis.md section 3)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox.common.runner import Running, Sandbox
from sandbox.emulators.mailchimp import DEFAULT_API_KEY, DEFAULT_LIST_ID, MailchimpEmulator, subscriber_hash

AUTH = ("anystring", DEFAULT_API_KEY)
LIST = f"/3.0/lists/{DEFAULT_LIST_ID}"


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(MailchimpEmulator())


@pytest.fixture
def mc(box: Sandbox) -> Iterator[Running]:
    running = box["mailchimp"]
    running.emulator.reset()
    yield running
    running.emulator.reset()


class Client:
    """A tiny Mailchimp client over the sandbox CA."""

    def __init__(self, running: Running, session: requests.Session) -> None:
        self.base = running.base_url
        self.admin = running.admin_url
        self.session = session

    def call(self, method: str, path: str, json_body: Any = None, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("auth", AUTH)
        return self.session.request(method, self.base + path, json=json_body, timeout=10, **kwargs)

    def put_member(self, email: str, **body: Any) -> requests.Response:
        return self.call("PUT", f"{LIST}/members/{subscriber_hash(email)}", {"email_address": email, **body})

    def settings(self, **changes: Any) -> None:
        assert self.session.patch(f"{self.admin}/settings", json=changes, timeout=5).status_code == 200


@pytest.fixture
def client(mc: Running, https: requests.Session) -> Client:
    return Client(mc, https)


def assert_problem(response: requests.Response, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert (body["status"], body["title"]) == (status, title)
    assert body["type"].startswith("https://mailchimp.com/developer/marketing/docs/errors")
    return body


# -- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(None, id="no-auth"),
        pytest.param(("user", "wrong-us1"), id="unknown-key"),
        pytest.param(("user", DEFAULT_API_KEY.replace("-us1", "-us9")), id="wrong-data-centre"),
    ],
)
def test_bad_credentials_are_401_api_key_invalid(client: Client, auth: tuple[str, str] | None) -> None:
    response = client.call("GET", "/3.0/ping", auth=auth)
    assert_problem(response, 401, "API Key Invalid")
    assert "describedBy" in response.headers["Link"]


def test_any_username_with_the_key_is_accepted(client: Client) -> None:
    response = client.call("GET", "/3.0/ping", auth=("whoever", DEFAULT_API_KEY))
    assert response.json() == {"health_status": "Everything's Chimpy!"}


# -- member upsert -------------------------------------------------------------------------------


def test_put_creates_by_subscriber_hash_with_status_if_new(client: Client) -> None:
    response = client.put_member("Ada@Example.org", status_if_new="subscribed", merge_fields={"FNAME": "Ada"})
    assert response.status_code == 200, response.text
    member = response.json()
    assert member["id"] == subscriber_hash("ada@example.org")
    assert member["status"] == "subscribed"
    assert member["merge_fields"]["FNAME"] == "Ada"
    fetched = client.call("GET", f"{LIST}/members/{member['id']}").json()
    assert fetched["email_address"] == "Ada@Example.org"
    by_email = client.call("GET", f"{LIST}/members/ada@example.org")
    assert by_email.json()["id"] == member["id"]


def test_put_without_status_for_a_new_member_is_invalid(client: Client) -> None:
    body = assert_problem(client.put_member("new@example.org"), 400, "Invalid Resource")
    assert body["errors"][0]["field"] == "status_if_new"


def test_hash_must_match_the_email(client: Client) -> None:
    response = client.call(
        "PUT", f"{LIST}/members/{subscriber_hash('a@example.org')}", {"email_address": "b@example.org"}
    )
    assert_problem(response, 400, "Invalid Resource")


def test_invalid_email_is_rejected(client: Client) -> None:
    response = client.call(
        "PUT", f"{LIST}/members/x", {"email_address": "not-an-email", "status_if_new": "subscribed"}
    )
    assert_problem(response, 400, "Invalid Resource")


@pytest.mark.parametrize("status", ["unsubscribed", "cleaned", "pending", "archived"])
def test_status_if_new_never_changes_an_existing_member(client: Client, status: str) -> None:
    email = "keep@example.org"
    if status == "archived":
        client.put_member(email, status_if_new="subscribed")
        assert client.call("DELETE", f"{LIST}/members/{subscriber_hash(email)}").status_code == 204
    else:
        client.put_member(email, status_if_new=status)
    again = client.put_member(email, status_if_new="subscribed", merge_fields={"LNAME": "Lovelace"})
    assert again.status_code == 200
    assert again.json()["status"] == status
    assert again.json()["merge_fields"]["LNAME"] == "Lovelace"


@pytest.mark.parametrize("status", ["unsubscribed", "archived", "pending"])
def test_explicit_status_resubscribes_where_mailchimp_allows(client: Client, status: str) -> None:
    email = "back@example.org"
    client.put_member(email, status_if_new="subscribed" if status == "archived" else status)
    if status == "archived":
        client.call("DELETE", f"{LIST}/members/{subscriber_hash(email)}")
    response = client.put_member(email, status="subscribed")
    assert response.json()["status"] == "subscribed"


def test_cleaned_member_cannot_be_resubscribed(client: Client) -> None:
    client.put_member("bounced@example.org", status_if_new="cleaned")
    response = client.put_member("bounced@example.org", status="subscribed")
    assert_problem(response, 400, "Member In Compliance State")


def test_post_creates_and_then_member_exists(client: Client) -> None:
    first = client.call("POST", f"{LIST}/members", {"email_address": "p@example.org", "status": "subscribed"})
    assert first.status_code == 200
    second = client.call(
        "POST", f"{LIST}/members", {"email_address": "p@example.org", "status": "subscribed"}
    )
    assert_problem(second, 400, "Member Exists")


def test_patch_updates_only_existing_members(client: Client) -> None:
    missing = client.call("PATCH", f"{LIST}/members/{subscriber_hash('no@example.org')}", {"vip": True})
    assert_problem(missing, 404, "Resource Not Found")
    client.put_member("vip@example.org", status_if_new="subscribed")
    patched = client.call("PATCH", f"{LIST}/members/{subscriber_hash('vip@example.org')}", {"vip": True})
    assert patched.json()["vip"] is True


def test_patch_with_a_new_email_moves_the_member_to_its_new_hash(client: Client) -> None:
    client.put_member("before@example.org", status_if_new="subscribed")
    client.put_member("taken@example.org", status_if_new="subscribed")
    old_path = f"{LIST}/members/{subscriber_hash('before@example.org')}"
    taken = client.call("PATCH", old_path, {"email_address": "taken@example.org"})
    assert_problem(taken, 400, "Member Exists")
    moved = client.call("PATCH", old_path, {"email_address": "after@example.org"}).json()
    assert moved["id"] == subscriber_hash("after@example.org")
    assert moved["status"] == "subscribed"
    assert_problem(client.call("GET", old_path), 404, "Resource Not Found")


def test_unknown_list_and_path_are_404_and_wrong_method_405(client: Client) -> None:
    assert_problem(client.call("GET", "/3.0/lists/nope/members"), 404, "Resource Not Found")
    assert_problem(client.call("GET", "/3.0/nothing-here"), 404, "Resource Not Found")
    assert_problem(client.call("PUT", "/3.0/batches"), 405, "Method Not Allowed")


def test_malformed_json_is_a_parse_error(client: Client) -> None:
    response = client.call(
        "PUT", f"{LIST}/members/x", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "JSON Parse Error")


# -- merge fields ---------------------------------------------------------------------------------


def test_merge_fields_crud_and_validation(client: Client) -> None:
    listed = client.call("GET", f"{LIST}/merge-fields").json()
    assert {f["tag"] for f in listed["merge_fields"]} >= {"FNAME", "LNAME", "ADDRESS"}
    created = client.call(
        "POST", f"{LIST}/merge-fields", {"tag": "GIFTS", "name": "Gifts", "type": "number", "required": True}
    ).json()
    assert created["tag"] == "GIFTS"

    missing = assert_problem(
        client.put_member("m@example.org", status_if_new="subscribed"), 400, "Invalid Resource"
    )
    assert missing["detail"] == "Your merge fields were invalid."
    assert {"field": "GIFTS", "message": "Please enter a value"} in missing["errors"]

    bad_number = client.put_member(
        "m@example.org", status_if_new="subscribed", merge_fields={"GIFTS": "many"}
    )
    assert_problem(bad_number, 400, "Invalid Resource")
    unknown = client.put_member(
        "m@example.org", status_if_new="subscribed", merge_fields={"GIFTS": 1, "NOPE": 2}
    )
    assert_problem(unknown, 400, "Invalid Resource")

    skipped = client.call(
        "PUT",
        f"{LIST}/members/{subscriber_hash('m@example.org')}",
        {"email_address": "m@example.org", "status_if_new": "subscribed"},
        params={"skip_merge_validation": "true"},
    )
    assert skipped.status_code == 200
    ok = client.put_member("n@example.org", status_if_new="subscribed", merge_fields={"GIFTS": 3})
    assert ok.json()["merge_fields"]["GIFTS"] == 3

    merge_id = created["merge_id"]
    patched = client.call("PATCH", f"{LIST}/merge-fields/{merge_id}", {"required": False}).json()
    assert patched["required"] is False
    assert client.call("DELETE", f"{LIST}/merge-fields/{merge_id}").status_code == 204
    assert_problem(client.call("GET", f"{LIST}/merge-fields/{merge_id}"), 404, "Resource Not Found")


def test_address_merge_field_needs_its_parts(client: Client) -> None:
    partial = client.put_member(
        "addr@example.org", status_if_new="subscribed", merge_fields={"ADDRESS": {"addr1": "1 Way"}}
    )
    assert_problem(partial, 400, "Invalid Resource")
    full = {"addr1": "1 Way", "city": "Leeds", "state": "WY", "zip": "LS1", "country": "GB"}
    ok = client.put_member("addr@example.org", status_if_new="subscribed", merge_fields={"ADDRESS": full})
    assert ok.json()["merge_fields"]["ADDRESS"] == full


# -- tags, permissions, journeys ------------------------------------------------------------------


def test_tags_are_added_and_removed(client: Client) -> None:
    email = "tag@example.org"
    client.put_member(email, status_if_new="subscribed")
    path = f"{LIST}/members/{subscriber_hash(email)}/tags"
    added = client.call(
        "POST",
        path,
        {"tags": [{"name": "donor-2024", "status": "active"}, {"name": "major", "status": "active"}]},
    )
    assert added.status_code == 204
    assert added.content == b""
    assert {t["name"] for t in client.call("GET", path).json()["tags"]} == {"donor-2024", "major"}
    client.call("POST", path, {"tags": [{"name": "major", "status": "inactive"}]})
    member = client.call("GET", f"{LIST}/members/{subscriber_hash(email)}").json()
    assert [t["name"] for t in member["tags"]] == ["donor-2024"]
    assert member["tags_count"] == 1
    bad = client.call("POST", path, {"tags": [{"name": "x", "status": "on"}]})
    assert_problem(bad, 400, "Invalid Resource")
    assert_problem(
        client.call("POST", f"{LIST}/members/{subscriber_hash('none@example.org')}/tags", {"tags": []}),
        404,
        "Resource Not Found",
    )


def test_marketing_permissions_are_written_per_member(client: Client) -> None:
    created = client.put_member(
        "gdpr@example.org",
        status_if_new="subscribed",
        marketing_permissions=[{"marketing_permission_id": "a1b2c3d4e5", "enabled": True}],
    ).json()
    permissions = {p["marketing_permission_id"]: p["enabled"] for p in created["marketing_permissions"]}
    assert permissions == {"a1b2c3d4e5": True, "f6a7b8c9d0": False}
    unknown = client.put_member(
        "gdpr@example.org", marketing_permissions=[{"marketing_permission_id": "zzz", "enabled": True}]
    )
    assert_problem(unknown, 400, "Invalid Resource")


def test_customer_journey_trigger(client: Client, mc: Running) -> None:
    client.put_member("j@example.org", status_if_new="subscribed")
    path = "/3.0/customer-journeys/journeys/1/steps/2/actions/trigger"
    ok = client.call("POST", path, {"email_address": "j@example.org"})
    assert ok.status_code == 204
    assert mc.emulator.journey_triggers[0]["email_address"] == "j@example.org"  # type: ignore[attr-defined]
    unknown = client.call(
        "POST",
        "/3.0/customer-journeys/journeys/9/steps/9/actions/trigger",
        {"email_address": "j@example.org"},
    )
    assert_problem(unknown, 404, "Resource Not Found")
    not_member = client.call("POST", path, {"email_address": "stranger@example.org"})
    assert not_member.status_code == 400


# -- archive and delete-permanent ------------------------------------------------------------------


def test_archive_keeps_the_member_but_delete_permanent_forgets_the_email(client: Client) -> None:
    email = "gone@example.org"
    member_path = f"{LIST}/members/{subscriber_hash(email)}"
    client.put_member(email, status_if_new="subscribed")
    assert client.call("DELETE", member_path).status_code == 204
    assert client.call("GET", member_path).json()["status"] == "archived"

    assert client.call("POST", f"{member_path}/actions/delete-permanent").status_code == 204
    assert_problem(client.call("GET", member_path), 404, "Resource Not Found")
    for response in (
        client.put_member(email, status_if_new="subscribed"),
        client.put_member(email, status="subscribed"),
        client.call("POST", f"{LIST}/members", {"email_address": email, "status": "subscribed"}),
    ):
        body = assert_problem(response, 400, "Forgotten Email Not Subscribed")
        assert email in body["detail"]
    batch = client.call("POST", LIST, {"members": [{"email_address": email, "status": "subscribed"}]}).json()
    assert batch["error_count"] == 1


def test_pending_member_cannot_be_archived(client: Client) -> None:
    client.put_member("pend@example.org", status_if_new="pending")
    response = client.call("DELETE", f"{LIST}/members/{subscriber_hash('pend@example.org')}")
    assert_problem(response, 405, "Method Not Allowed")


# -- batch subscribe ------------------------------------------------------------------------------


def test_batch_subscribe_reports_new_updated_and_errors_in_a_200(client: Client) -> None:
    client.put_member("old@example.org", status_if_new="subscribed")
    members = [
        {"email_address": "new@example.org", "status": "subscribed", "merge_fields": {"FNAME": "N"}},
        {"email_address": "old@example.org", "status": "subscribed", "merge_fields": {"FNAME": "O"}},
        {"email_address": "bad-address", "status": "subscribed"},
    ]
    result = client.call("POST", LIST, {"members": members, "update_existing": True}).json()
    assert [m["email_address"] for m in result["new_members"]] == ["new@example.org"]
    assert [m["email_address"] for m in result["updated_members"]] == ["old@example.org"]
    assert (result["total_created"], result["total_updated"], result["error_count"]) == (1, 1, 1)
    assert result["errors"][0]["email_address"] == "bad-address"
    assert {"error", "error_code", "field", "field_message"} <= set(result["errors"][0])

    no_update = client.call("POST", LIST, {"members": members[1:2], "update_existing": False}).json()
    assert no_update["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"


def test_batch_subscribe_cap_is_500_and_a_setting(client: Client) -> None:
    members = [{"email_address": f"u{i}@example.org", "status": "subscribed"} for i in range(501)]
    assert_problem(client.call("POST", LIST, {"members": members}), 400, "Invalid Resource")
    assert client.call("POST", LIST, {"members": members[:500]}).json()["total_created"] == 500
    client.settings(batch_subscribe_max_members=2)
    assert_problem(client.call("POST", LIST, {"members": members[:3]}), 400, "Invalid Resource")


# -- /batches -------------------------------------------------------------------------------------


def _operation(email: str, op_id: str, **body: Any) -> dict[str, Any]:
    return {
        "method": "PUT",
        "path": f"/lists/{DEFAULT_LIST_ID}/members/{subscriber_hash(email)}",
        "operation_id": op_id,
        "body": json.dumps({"email_address": email, **body}),
    }


def _read_results(data: bytes) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r") as archive:
        for info in archive.getmembers():
            if info.isfile():
                extracted = archive.extractfile(info)
                assert extracted is not None
                results.extend(json.loads(extracted.read()))
    return results


def test_batches_go_pending_started_finished_and_serve_gzipped_tar_results(
    client: Client, https: requests.Session
) -> None:
    client.settings(batch_pending_s=0.3, batch_started_s=0.3)
    operations = [
        _operation("b1@example.org", "row-1", status_if_new="subscribed"),
        _operation("b2@example.org", "row-2"),  # no status_if_new: errors
    ]
    created = client.call("POST", "/3.0/batches", {"operations": operations}).json()
    assert created["status"] == "pending"
    assert created["total_operations"] == 2
    assert created["response_body_url"] == ""
    seen = [created["status"]]
    deadline = time.monotonic() + 5
    batch = created
    while batch["status"] != "finished" and time.monotonic() < deadline:
        time.sleep(0.1)
        batch = client.call("GET", f"/3.0/batches/{created['id']}").json()
        if batch["status"] != seen[-1]:
            seen.append(batch["status"])
    assert seen == ["pending", "started", "finished"]
    assert (batch["finished_operations"], batch["errored_operations"]) == (2, 1)
    assert batch["completed_at"]

    download = https.get(batch["response_body_url"], timeout=5)  # no auth, like S3
    assert download.status_code == 200
    results = {r["operation_id"]: r for r in _read_results(download.content)}
    assert results["row-1"]["status_code"] == 200
    assert json.loads(results["row-1"]["response"])["status"] == "subscribed"
    assert results["row-2"]["status_code"] == 400
    assert json.loads(results["row-2"]["response"])["title"] == "Invalid Resource"
    assert client.call("GET", f"{LIST}/members/{subscriber_hash('b1@example.org')}").status_code == 200


def test_batch_is_not_applied_before_it_finishes_and_can_be_deleted(client: Client) -> None:
    client.settings(batch_pending_s=30, batch_started_s=30)
    created = client.call(
        "POST",
        "/3.0/batches",
        {"operations": [_operation("late@example.org", "x", status_if_new="subscribed")]},
    ).json()
    assert client.call("GET", f"{LIST}/members/{subscriber_hash('late@example.org')}").status_code == 404
    assert client.call("GET", "/3.0/batches").json()["total_items"] == 1
    assert client.call("DELETE", f"/3.0/batches/{created['id']}").status_code == 204
    assert_problem(client.call("GET", f"/3.0/batches/{created['id']}"), 404, "Resource Not Found")


def test_pending_batches_are_capped_with_429(client: Client) -> None:
    client.settings(batch_pending_s=30, max_pending_batches=2)
    body = {"operations": [{"method": "GET", "path": "/ping"}]}
    assert [client.call("POST", "/3.0/batches", body).status_code for _ in range(2)] == [200, 200]
    assert_problem(client.call("POST", "/3.0/batches", body), 429, "Too Many Requests")


def test_batch_needs_operations_with_method_and_path(client: Client) -> None:
    assert_problem(
        client.call("POST", "/3.0/batches", {"operations": [{"path": "/ping"}]}), 400, "Invalid Resource"
    )


# -- members changed since ------------------------------------------------------------------------


def test_members_changed_since_with_count_and_offset(client: Client, mc: Running) -> None:
    emulator = mc.emulator
    start = datetime(2026, 1, 1, tzinfo=UTC)
    emulator.clock = lambda: start  # type: ignore[attr-defined]
    for i in range(5):
        client.put_member(f"s{i}@example.org", status_if_new="subscribed")
    emulator.clock = lambda: start + timedelta(hours=1)  # type: ignore[attr-defined]
    for i in (1, 3):
        client.put_member(f"s{i}@example.org", merge_fields={"FNAME": "changed"})

    since = (start + timedelta(minutes=30)).isoformat()
    changed = client.call("GET", f"{LIST}/members", params={"since_last_changed": since}).json()
    assert changed["total_items"] == 2
    assert [m["email_address"] for m in changed["members"]] == ["s1@example.org", "s3@example.org"]

    page = client.call("GET", f"{LIST}/members", params={"count": 2, "offset": 2}).json()
    assert page["total_items"] == 5
    assert [m["email_address"] for m in page["members"]] == ["s2@example.org", "s3@example.org"]
    default = client.call("GET", f"{LIST}/members").json()
    assert len(default["members"]) == 5

    partial = client.call(
        "GET", f"{LIST}/members", params={"fields": "members.email_address,total_items", "count": 1}
    ).json()
    assert partial == {"members": [{"email_address": "s0@example.org"}], "total_items": 5}


def test_member_page_count_is_capped_at_the_setting(client: Client) -> None:
    client.settings(page_max_count=3)
    members = [{"email_address": f"c{i}@example.org", "status": "subscribed"} for i in range(5)]
    client.call("POST", LIST, {"members": members})
    page = client.call("GET", f"{LIST}/members", params={"count": 1000}).json()
    assert (len(page["members"]), page["total_items"]) == (3, 5)


def test_status_filter(client: Client) -> None:
    client.put_member("a@example.org", status_if_new="subscribed")
    client.put_member("b@example.org", status_if_new="unsubscribed")
    result = client.call("GET", f"{LIST}/members", params={"status": "unsubscribed"}).json()
    assert [m["email_address"] for m in result["members"]] == ["b@example.org"]


# -- simultaneous connections ---------------------------------------------------------------------


def test_more_than_the_simultaneous_connection_limit_is_429(client: Client, https: requests.Session) -> None:
    client.settings(max_connections=3)
    fault = [{"kind": "slow", "delay_s": 1.5, "path": "^/3.0/ping"}]
    assert https.put(f"{client.admin}/faults", json=fault, timeout=5).status_code == 200

    def ping(_: int) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False
            session.verify = https.verify
            return session.get(f"{client.base}/3.0/ping", auth=AUTH, timeout=10)

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(ping, range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 429, 429, 429]
    limited = next(r for r in responses if r.status_code == 429)
    assert_problem(limited, 429, "Too Many Requests")
    assert "Retry-After" not in limited.headers
    assert "X-RateLimit-Limit" not in limited.headers
    # a counter, not a window: once the slow requests finish, the next one is served
    https.delete(f"{client.admin}/faults", timeout=5)
    assert client.call("GET", "/3.0/ping").status_code == 200


def test_sequential_requests_are_never_limited(client: Client) -> None:
    client.settings(max_connections=1)
    assert [client.call("GET", "/3.0/ping").status_code for _ in range(15)] == [200] * 15


# -- faults and seeding ---------------------------------------------------------------------------


def test_injected_faults_use_problem_json(client: Client, https: requests.Session) -> None:
    https.put(f"{client.admin}/faults", json=[{"kind": "status", "status": 503, "count": 1}], timeout=5)
    assert_problem(client.call("GET", "/3.0/ping"), 503, "Internal Server Error")
    https.put(f"{client.admin}/faults", json=[{"kind": "expired_token", "count": 1}], timeout=5)
    assert_problem(client.call("GET", "/3.0/ping"), 401, "API Key Invalid")


def test_seed_lists_members_and_state(client: Client, https: requests.Session) -> None:
    seeded = https.post(
        f"{client.admin}/seed/lists",
        json=[{"id": "other", "name": "Other", "merge_fields": [], "marketing_permissions": []}],
        timeout=5,
    )
    assert seeded.json() == {"loaded": 1}
    https.post(
        f"{client.admin}/seed/members",
        json=[{"list_id": "other", "email_address": "z@example.org"}],
        timeout=5,
    )
    members = client.call("GET", "/3.0/lists/other/members").json()["members"]
    assert [(m["email_address"], m["status"]) for m in members] == [("z@example.org", "subscribed")]
    state = https.get(f"{client.admin}/state", timeout=5).json()
    assert state["name"] == "mailchimp"
    assert len(state["lists"]["other"]["members"]) == 1
