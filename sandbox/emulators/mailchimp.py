"""Mailchimp Marketing API 3.0: audiences, members, batch subscribe, /batches, tags, journeys.

Behaviour follows ../shared/reference/vendor-apis.md section 3:

- HTTP Basic auth with any username and an API key (``…-us1``) whose suffix is the data centre;
  a wrong key or data centre is 401 ``API Key Invalid``. OAuth ``Bearer`` tokens from a setting.
- Members are addressed by ``md5(lower(email))`` (the raw email is accepted too). ``PUT`` upserts
  with ``status_if_new``, which never changes an existing member; an explicit ``status`` does,
  except that a cleaned member cannot be resubscribed (``Member In Compliance State``).
  ``DELETE`` archives; ``actions/delete-permanent`` forgets the email for good: adding it again is
  400 ``Forgotten Email Not Subscribed``.
- ``POST /lists/{id}`` subscribes up to 500 members synchronously (per-member errors in a 200).
- ``/batches`` runs operations asynchronously (``pending → started → finished``, stage lengths are
  settings) and serves the results as a gzipped tar of JSON arrays at ``response_body_url``.
- At most ``max_connections`` (10) requests in flight per account; the next is 429. It is a
  concurrency counter, not a rate window, and Mailchimp sends no rate-limit headers.
- Every error is ``application/problem+json`` (type, title, status, detail, instance).

Batch operations go through the same dispatcher as HTTP requests, so they behave identically.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import time
import uuid
from base64 import b64decode
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from fastapi import FastAPI, Request, Response

from sandbox.common.emulator import Emulator
from sandbox.common.faults import ASGIApp, Receive, Scope, Send

DEFAULT_LIST_ID = "d0n0r5ync1"
DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef-us1"
DEFAULT_JOURNEY = {"journey_id": 1, "step_id": 2, "list_id": DEFAULT_LIST_ID}
ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")
_DEFAULT_MERGE_FIELDS: list[dict[str, Any]] = [
    {"tag": "FNAME", "name": "First Name", "type": "text"},
    {"tag": "LNAME", "name": "Last Name", "type": "text"},
    {"tag": "ADDRESS", "name": "Address", "type": "address"},
    {"tag": "PHONE", "name": "Phone Number", "type": "phone"},
    {"tag": "BIRTHDAY", "name": "Birthday", "type": "birthday"},
]
_DEFAULT_PERMISSIONS: list[dict[str, str]] = [
    {"marketing_permission_id": "a1b2c3d4e5", "text": "Email"},
    {"marketing_permission_id": "f6a7b8c9d0", "text": "Direct Mail"},
]
_ADDRESS_PARTS = ("addr1", "city", "state", "zip")
_NOT_FOUND = "The requested resource could not be found."
_INVALID = (
    "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
)


def subscriber_hash(email: str) -> str:
    """Return Mailchimp's member id: the MD5 of the lower-cased email address."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


class MailchimpError(Exception):
    """A Mailchimp API error, answered as problem+json."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """Return the problem+json document."""
        doc: dict[str, Any] = {
            "type": ERROR_TYPE,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": str(uuid.uuid4()),
        }
        if self.errors is not None:
            doc["errors"] = self.errors
        return doc


def _not_found() -> MailchimpError:
    return MailchimpError(404, "Resource Not Found", _NOT_FOUND)


def _invalid(errors: list[dict[str, str]], detail: str = _INVALID) -> MailchimpError:
    return MailchimpError(400, "Invalid Resource", detail, errors)


def problem_bytes(error: MailchimpError) -> bytes:
    """Serialise an error's problem+json document."""
    return json.dumps(error.body()).encode()


def problem_headers(dc: str) -> dict[str, str]:
    """Return the headers Mailchimp sends with an error."""
    return {
        "Link": f'<https://{dc}.api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel="describedBy"',
        "X-Request-Id": str(uuid.uuid4()),
    }


@dataclass
class Call:
    """One API call, from HTTP or from a batch operation."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    args: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], tuple[int, Any]]


@dataclass
class Audience:
    """One list (audience) with its merge fields, members and forgotten emails."""

    id: str
    name: str
    merge_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)
    marketing_permissions: list[dict[str, str]] = field(default_factory=list)
    tag_ids: dict[str, int] = field(default_factory=dict)
    next_merge_id: int = 1


@dataclass
class Batch:
    """One /batches request and its progress."""

    id: str
    operations: list[dict[str, Any]]
    submitted_at: str
    started: float
    status: str = "pending"
    finished_operations: int = 0
    errored_operations: int = 0
    completed_at: str = ""


def _route_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{pattern}/?$")


class MailchimpEmulator(Emulator):
    """Mailchimp Marketing API 3.0."""

    name: ClassVar[str] = "mailchimp"
    default_settings: ClassVar[dict[str, Any]] = {
        "api_keys": [DEFAULT_API_KEY],
        "data_center": "us1",
        "oauth_tokens": [],
        "max_connections": 10,
        "batch_subscribe_max_members": 500,
        "page_max_count": 1000,
        "page_default_count": 10,
        "max_pending_batches": 500,
        "batch_pending_s": 0.5,
        "batch_started_s": 0.5,
        "batch_results_per_file": 500,
    }

    # -- state ---------------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Start with one GDPR-enabled audience and one journey with an API trigger step."""
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.lists: dict[str, Audience] = {}
        self.journeys: dict[tuple[str, str], dict[str, Any]] = {}
        self.journey_triggers: list[dict[str, Any]] = []
        self.batches: dict[str, Batch] = {}
        self.batch_results: dict[str, bytes] = {}
        self.in_flight: dict[str, int] = {}
        self._web_id = 1000
        self._add_list({"id": DEFAULT_LIST_ID, "name": "Donors"})
        self._add_journey(DEFAULT_JOURNEY)

    def snapshot(self) -> dict[str, Any]:
        """Return lists with their members, journeys triggered and batches."""
        self._advance_batches()
        return {
            "lists": {
                lid: {
                    "name": a.name,
                    "members": [self._render(a, m) for m in a.members.values()],
                    "forgotten": sorted(a.forgotten),
                    "merge_fields": sorted(a.merge_fields),
                }
                for lid, a in self.lists.items()
            },
            "journey_triggers": list(self.journey_triggers),
            "batches": [self._batch_view(b) for b in self.batches.values()],
        }

    def seed(self, kind: str, records: list[dict[str, Any]]) -> int:
        """Load ``lists`` (id, name, merge_fields, marketing_permissions), ``members`` or ``journeys``."""
        loaders: dict[str, Callable[[dict[str, Any]], None]] = {
            "lists": self._add_list,
            "journeys": self._add_journey,
            "members": self._seed_member,
        }
        if kind not in loaders:
            return super().seed(kind, records)
        for record in records:
            loaders[kind](record)
        return len(records)

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Answer injected faults in problem+json, as Mailchimp does."""
        titles = {
            401: (
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            ),
            429: ("Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."),
            504: ("Gateway Timeout", "The request timed out."),
        }
        title, detail = titles.get(
            status, ("Internal Server Error", "An unexpected internal error has occurred.")
        )
        return problem_bytes(MailchimpError(status, title, detail)), PROBLEM_JSON

    def _add_list(self, record: dict[str, Any]) -> None:
        audience = Audience(
            id=str(record["id"]),
            name=str(record.get("name", record["id"])),
            marketing_permissions=[
                dict(p) for p in record.get("marketing_permissions", _DEFAULT_PERMISSIONS)
            ],
        )
        for definition in record.get("merge_fields", _DEFAULT_MERGE_FIELDS):
            self._create_merge_field(audience, definition)
        self.lists[audience.id] = audience

    def _add_journey(self, record: dict[str, Any]) -> None:
        key = (str(record["journey_id"]), str(record["step_id"]))
        self.journeys[key] = {"list_id": str(record["list_id"]), **record}

    def _seed_member(self, record: dict[str, Any]) -> None:
        audience = self._audience(str(record.get("list_id", DEFAULT_LIST_ID)))
        body = {k: v for k, v in record.items() if k != "list_id"}
        body.setdefault("status", "subscribed")
        member, _ = self._upsert(audience, str(body["email_address"]), body, mode="put", validate_merge=False)
        for name in ("unsubscribe_reason", "unsubscribe_campaign_id"):  # what the person told Mailchimp
            if record.get(name):
                member[name] = record[name]

    # -- auth and concurrency --------------------------------------------------------------------
    def _authorised(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            return credentials in self.settings["oauth_tokens"]
        if scheme.lower() != "basic":
            return False
        try:
            _user, _, key = b64decode(credentials, validate=True).decode().partition(":")
        except ValueError:
            return False
        return key in self.settings["api_keys"] and key.rpartition("-")[2] == self.settings["data_center"]

    def build_app(self) -> ASGIApp:
        """Wrap the app in the simultaneous-connections limit (outermost, so slow faults hold a slot)."""
        inner = super().build_app()

        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not scope["path"].startswith("/3.0"):
                await inner(scope, receive, send)
                return
            headers = dict(scope.get("headers") or [])
            account = headers.get(b"authorization", b"").decode("latin-1")
            with self.lock:
                busy = self.in_flight.get(account, 0)
                if busy >= int(self.settings["max_connections"]):
                    self.request_log.append(
                        {"method": scope["method"], "path": scope["path"], "at": time.time(), "status": 429}
                    )
                    refused = True
                else:
                    self.in_flight[account] = busy + 1
                    refused = False
            if refused:
                await self._send_too_many(send)
                return
            try:
                await inner(scope, receive, send)
            finally:
                with self.lock:
                    self.in_flight[account] = max(0, self.in_flight.get(account, 1) - 1)

        return limited

    async def _send_too_many(self, send: Send) -> None:
        error = MailchimpError(
            429,
            "Too Many Requests",
            f"You have exceeded the limit of {self.settings['max_connections']} simultaneous connections.",
        )
        body = problem_bytes(error)
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
        headers += [
            (k.lower().encode(), v.encode()) for k, v in problem_headers(self.settings["data_center"]).items()
        ]
        start: MutableMapping[str, Any] = {"type": "http.response.start", "status": 429, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": body})

    # -- HTTP ------------------------------------------------------------------------------------
    def routes(self, app: FastAPI) -> None:
        """Register one dispatcher for /3.0 and the batch results download."""
        self._table: list[tuple[str, re.Pattern[str], Handler]] = self._route_table()

        @app.api_route("/3.0/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def api(path: str, request: Request) -> Response:
            raw = await request.body()
            return self._serve(request, path, raw)

        @app.get("/batch-results/{name}")
        def results(name: str) -> Response:
            batch_id = name.removesuffix("-response.tar.gz")
            with self.lock:
                self._advance_batches()
                data = self.batch_results.get(batch_id)
            if data is None:
                return Response(b"<Error><Code>NoSuchKey</Code></Error>", 404, media_type="application/xml")
            return Response(data, media_type="application/x-gzip")

    def _serve(self, request: Request, path: str, raw: bytes) -> Response:
        try:
            if not self._authorised(request.headers.get("authorization", "")):
                raise MailchimpError(
                    401,
                    "API Key Invalid",
                    "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
                )
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError as exc:
                raise MailchimpError(
                    400, "JSON Parse Error", "We encountered an unspecified JSON parsing error."
                ) from exc
            call = Call(request.method, "/" + path, dict(request.query_params), body)
            with self.lock:
                self._advance_batches()
                status, payload = self._dispatch(call)
        except MailchimpError as error:
            return Response(
                problem_bytes(error),
                error.status,
                headers=problem_headers(self.settings["data_center"]),
                media_type=PROBLEM_JSON,
            )
        if status == 204:
            return Response(status_code=204)
        return Response(json.dumps(payload), status, media_type="application/json; charset=utf-8")

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        member = "/lists/{list_id}/members/{hash}"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/ping", lambda _c: (200, {"health_status": "Everything's Chimpy!"})),
            ("GET", "/lists", self._get_lists),
            ("GET", "/lists/{list_id}", self._get_list),
            ("POST", "/lists/{list_id}", self._batch_subscribe),
            ("GET", "/lists/{list_id}/merge-fields", self._get_merge_fields),
            ("POST", "/lists/{list_id}/merge-fields", self._post_merge_field),
            ("GET", "/lists/{list_id}/merge-fields/{merge_id}", self._get_merge_field),
            ("PATCH", "/lists/{list_id}/merge-fields/{merge_id}", self._patch_merge_field),
            ("DELETE", "/lists/{list_id}/merge-fields/{merge_id}", self._delete_merge_field),
            ("GET", "/lists/{list_id}/members", self._get_members),
            ("POST", "/lists/{list_id}/members", self._post_member),
            ("GET", member, self._get_member),
            ("PUT", member, self._put_member),
            ("PATCH", member, self._patch_member),
            ("DELETE", member, self._archive_member),
            ("POST", member + "/actions/delete-permanent", self._delete_permanent),
            ("GET", member + "/tags", self._get_tags),
            ("POST", member + "/tags", self._post_tags),
            (
                "POST",
                "/customer-journeys/journeys/{journey_id}/steps/{step_id}/actions/trigger",
                self._trigger,
            ),
            ("GET", "/batches", self._get_batches),
            ("POST", "/batches", self._post_batch),
            ("GET", "/batches/{batch_id}", self._get_batch),
            ("DELETE", "/batches/{batch_id}", self._delete_batch),
        ]
        return [(method, _route_regex(template), handler) for method, template, handler in routes]

    def _dispatch(self, call: Call) -> tuple[int, Any]:
        path = call.path.removeprefix("/3.0") or "/"
        path_matched = False
        for method, pattern, handler in self._table:
            found = pattern.match(path)
            if not found:
                continue
            path_matched = True
            if method == call.method.upper():
                call.args = found.groupdict()
                return handler(call)
        if path_matched:
            raise MailchimpError(
                405, "Method Not Allowed", "The requested method and resource are not compatible."
            )
        raise _not_found()

    # -- helpers ---------------------------------------------------------------------------------
    def _now(self) -> str:
        return self.clock().isoformat(timespec="seconds")

    def _audience(self, list_id: str) -> Audience:
        audience = self.lists.get(list_id)
        if audience is None:
            raise _not_found()
        return audience

    def _member_key(self, audience: Audience, raw: str) -> str:
        return subscriber_hash(raw) if "@" in raw else raw.lower()

    def _existing(self, call: Call) -> tuple[Audience, dict[str, Any]]:
        audience = self._audience(call.args["list_id"])
        found = audience.members.get(self._member_key(audience, call.args["hash"]))
        if found is None:
            raise _not_found()
        return audience, found

    def _render(self, audience: Audience, member: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in member.items() if not k.startswith("_")}
        view["tags"] = [{"id": audience.tag_ids[t], "name": t} for t in member["_tags"]]
        view["tags_count"] = len(member["_tags"])
        return view

    def _page(self, call: Call) -> tuple[int, int]:
        try:
            count = int(call.query.get("count", self.settings["page_default_count"]))
            offset = int(call.query.get("offset", 0))
        except ValueError as exc:
            raise _invalid([{"field": "count", "message": "count and offset must be integers"}]) from exc
        return max(0, min(count, int(self.settings["page_max_count"]))), max(0, offset)

    # -- lists -----------------------------------------------------------------------------------
    def _list_view(self, audience: Audience) -> dict[str, Any]:
        return {
            "id": audience.id,
            "name": audience.name,
            "marketing_permissions": bool(audience.marketing_permissions),
            "stats": {"member_count": sum(m["status"] == "subscribed" for m in audience.members.values())},
        }

    def _get_lists(self, call: Call) -> tuple[int, Any]:
        views = [self._list_view(a) for a in self.lists.values()]
        return 200, {"lists": views, "total_items": len(views)}

    def _get_list(self, call: Call) -> tuple[int, Any]:
        return 200, self._list_view(self._audience(call.args["list_id"]))

    # -- merge fields --------------------------------------------------------------------------
    def _create_merge_field(self, audience: Audience, definition: dict[str, Any]) -> dict[str, Any]:
        kind = str(definition.get("type", ""))
        if not kind or not definition.get("name"):
            raise _invalid(
                [{"field": "type" if not kind else "name", "message": "This value should not be blank."}]
            )
        tag = str(definition.get("tag") or f"MMERGE{audience.next_merge_id}").upper()[:10]
        if tag in audience.merge_fields:
            raise MailchimpError(
                400, "Invalid Resource", f'A Merge Field with the tag "{tag}" already exists for this list.'
            )
        field_def = {
            "merge_id": audience.next_merge_id,
            "tag": tag,
            "name": str(definition["name"]),
            "type": kind,
            "required": bool(definition.get("required", False)),
            "default_value": str(definition.get("default_value", "")),
            "public": bool(definition.get("public", False)),
            "display_order": audience.next_merge_id,
            "options": dict(definition.get("options") or {}),
            "list_id": audience.id,
        }
        audience.next_merge_id += 1
        audience.merge_fields[tag] = field_def
        return field_def

    def _merge_field(self, call: Call) -> tuple[Audience, dict[str, Any]]:
        audience = self._audience(call.args["list_id"])
        for definition in audience.merge_fields.values():
            if str(definition["merge_id"]) == call.args["merge_id"]:
                return audience, definition
        raise _not_found()

    def _get_merge_fields(self, call: Call) -> tuple[int, Any]:
        audience = self._audience(call.args["list_id"])
        count, offset = self._page(call)
        fields = list(audience.merge_fields.values())
        return 200, {
            "merge_fields": fields[offset : offset + count],
            "list_id": audience.id,
            "total_items": len(fields),
        }

    def _post_merge_field(self, call: Call) -> tuple[int, Any]:
        return 200, self._create_merge_field(self._audience(call.args["list_id"]), dict(call.body or {}))

    def _get_merge_field(self, call: Call) -> tuple[int, Any]:
        return 200, self._merge_field(call)[1]

    def _patch_merge_field(self, call: Call) -> tuple[int, Any]:
        _audience, definition = self._merge_field(call)
        changes = dict(call.body or {})
        for key in ("name", "required", "default_value", "public", "options", "display_order"):
            if key in changes:
                definition[key] = changes[key]
        return 200, definition

    def _delete_merge_field(self, call: Call) -> tuple[int, Any]:
        audience, definition = self._merge_field(call)
        del audience.merge_fields[definition["tag"]]
        for member in audience.members.values():
            member["merge_fields"].pop(definition["tag"], None)
        return 204, None

    def _check_merge_value(self, definition: dict[str, Any], value: Any) -> str | None:
        """Return why ``value`` is invalid for the merge field, or None."""
        if value in ("", None):
            return None
        check = _MERGE_CHECKS.get(str(definition["type"]))
        return check(definition, value) if check else None

    def _merge_values(
        self, audience: Audience, current: dict[str, Any], given: Any, *, creating: bool, validate: bool
    ) -> dict[str, Any]:
        """Return the member's merge fields after applying ``given``; raise on invalid values."""
        values = dict(current)
        errors: list[dict[str, str]] = []
        for tag, value in dict(given or {}).items():
            definition = audience.merge_fields.get(str(tag).upper())
            if definition is None:
                errors.append({"field": str(tag), "message": "This merge field does not exist"})
                continue
            problem = self._check_merge_value(definition, value)
            if problem and validate:
                errors.append({"field": definition["tag"], "message": problem})
            values[definition["tag"]] = value
        if validate:
            for definition in audience.merge_fields.values():
                empty = values.get(definition["tag"], "") in ("", None)
                touched = creating or definition["tag"] in dict(given or {})
                if definition["required"] and empty and touched:
                    errors.append({"field": definition["tag"], "message": "Please enter a value"})
        if errors:
            raise _invalid(errors, "Your merge fields were invalid.")
        for definition in audience.merge_fields.values():
            values.setdefault(definition["tag"], "")
        return values

    # -- members ---------------------------------------------------------------------------------
    def _new_member(self, audience: Audience, email: str) -> dict[str, Any]:
        self._web_id += 1
        return {
            "id": subscriber_hash(email),
            "email_address": email,
            "unique_email_id": uuid.uuid4().hex[:10],
            "contact_id": uuid.uuid4().hex,
            "full_name": "",
            "web_id": self._web_id,
            "email_type": "html",
            "status": "",
            "merge_fields": {},
            "interests": {},
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": "",
            "timestamp_signup": "",
            "ip_opt": "",
            "timestamp_opt": "",
            "member_rating": 2,
            "last_changed": self._now(),
            "language": "",
            "vip": False,
            "email_client": "",
            "location": {
                "latitude": 0,
                "longitude": 0,
                "gmtoff": 0,
                "dstoff": 0,
                "country_code": "",
                "timezone": "",
            },
            "source": "API - Generic",
            "list_id": audience.id,
            "_tags": {},
        }

    def _new_status(
        self, audience: Audience, existing: dict[str, Any] | None, body: dict[str, Any], mode: str
    ) -> str:
        """Return the member's status after this write, following Mailchimp's rules."""
        explicit = body.get("status")
        if explicit is not None and explicit not in _STATUSES[:5]:
            raise _invalid(
                [{"field": "status", "message": "Value must be one of: " + ", ".join(_STATUSES[:5])}]
            )
        if existing is None:
            status = explicit if explicit is not None or mode != "put" else body.get("status_if_new")
            if status is None:
                field_name = "status_if_new" if mode == "put" else "status"
                raise _invalid([{"field": field_name, "message": "This value should not be blank."}])
            if status not in _STATUSES[:5]:
                raise _invalid(
                    [
                        {
                            "field": "status_if_new",
                            "message": "Value must be one of: " + ", ".join(_STATUSES[:5]),
                        }
                    ]
                )
            return str(status)
        current = str(existing["status"])
        if explicit is None or explicit == current:
            return current  # status_if_new never touches an existing member
        if current == "cleaned" and explicit in ("subscribed", "pending"):
            raise MailchimpError(
                400,
                "Member In Compliance State",
                f"{existing['email_address']} is already a list member in compliance state due to "
                "unsubscribe, bounce, or compliance review.",
            )
        return str(explicit)

    def _check_email(self, audience: Audience, email: Any) -> str:
        if not isinstance(email, str) or not email.strip():
            raise _invalid([{"field": "email_address", "message": "This value should not be blank."}])
        if not _EMAIL_RE.match(email.strip()):
            raise MailchimpError(
                400, "Invalid Resource", f"{email} looks fake or invalid, please enter a real email address."
            )
        if subscriber_hash(email) in audience.forgotten:
            raise MailchimpError(
                400,
                "Forgotten Email Not Subscribed",
                f"{email.strip()} was permanently deleted and cannot be re-imported. "
                "The contact must re-subscribe to get back on the list.",
            )
        return email.strip()

    def _apply_permissions(self, audience: Audience, member: dict[str, Any], given: Any) -> None:
        if not audience.marketing_permissions:
            return
        known = {p["marketing_permission_id"]: p for p in audience.marketing_permissions}
        current = {p["marketing_permission_id"]: p for p in member.get("marketing_permissions", [])}
        for permission in given or []:
            pid = str(permission.get("marketing_permission_id", ""))
            if pid not in known:
                raise _invalid(
                    [
                        {
                            "field": "marketing_permissions",
                            "message": f"Marketing permission {pid!r} does not exist",
                        }
                    ]
                )
            current[pid] = {**known[pid], "enabled": bool(permission.get("enabled", False))}
        member["marketing_permissions"] = [
            current.get(pid, {**p, "enabled": False}) for pid, p in known.items()
        ]

    def _upsert(
        self, audience: Audience, email: Any, body: dict[str, Any], *, mode: str, validate_merge: bool = True
    ) -> tuple[dict[str, Any], bool]:
        """Create or update a member; return it and whether it was created.

        ``mode`` is the call: ``put``, ``post``, ``patch`` or ``batch`` (batch subscribe).
        """
        address = self._check_email(audience, email)
        key = subscriber_hash(address)
        existing = audience.members.get(key)
        if existing is not None and mode == "post" and existing["status"] != "archived":
            raise MailchimpError(
                400,
                "Member Exists",
                f"{address} is already a list member. Use PUT to insert or update list members.",
            )
        if existing is None and mode == "patch":
            raise _not_found()
        status = self._new_status(audience, existing, body, mode)
        member = existing or self._new_member(audience, address)
        merge = self._merge_values(
            audience,
            member["merge_fields"],
            body.get("merge_fields"),
            creating=existing is None,
            validate=validate_merge,
        )
        self._apply_permissions(audience, member, body.get("marketing_permissions"))
        member["merge_fields"] = merge
        member["full_name"] = " ".join(str(merge.get(t) or "") for t in ("FNAME", "LNAME")).strip()
        for key_name in (
            "email_type",
            "interests",
            "language",
            "vip",
            "ip_signup",
            "timestamp_signup",
            "ip_opt",
            "timestamp_opt",
        ):
            if key_name in body:
                member[key_name] = body[key_name]
        if isinstance(body.get("location"), dict):
            member["location"] = {**member["location"], **body["location"]}
        if status != member["status"] and status == "subscribed" and not member["timestamp_opt"]:
            member["timestamp_opt"] = self._now()
        member["status"] = status
        member["email_address"] = address
        member["last_changed"] = self._now()
        if existing is None:
            for tag in body.get("tags") or []:
                self._tag(audience, member, str(tag), active=True)
            audience.members[key] = member
        return member, existing is None

    def _tag(self, audience: Audience, member: dict[str, Any], name: str, *, active: bool) -> None:
        if active:
            audience.tag_ids.setdefault(name, len(audience.tag_ids) + 1)
            member["_tags"].setdefault(name, self._now())
        else:
            member["_tags"].pop(name, None)

    def _check_hash(self, call: Call) -> None:
        body = call.body if isinstance(call.body, dict) else {}
        raw = call.args["hash"]
        email = body.get("email_address")
        if isinstance(email, str) and _EMAIL_RE.match(email.strip()):
            expected = subscriber_hash(email)
            given = subscriber_hash(raw) if "@" in raw else raw.lower()
            if given != expected:
                raise _invalid(
                    [
                        {
                            "field": "email_address",
                            "message": "The subscriber hash does not match the email address",
                        }
                    ]
                )

    def _skip_merge(self, call: Call) -> bool:
        return call.query.get("skip_merge_validation", "false").lower() == "true"

    def _put_member(self, call: Call) -> tuple[int, Any]:
        audience = self._audience(call.args["list_id"])
        self._check_hash(call)
        body = dict(call.body or {})
        member, _ = self._upsert(
            audience, body.get("email_address"), body, mode="put", validate_merge=not self._skip_merge(call)
        )
        return 200, self._render(audience, member)

    def _post_member(self, call: Call) -> tuple[int, Any]:
        audience = self._audience(call.args["list_id"])
        body = dict(call.body or {})
        member, _ = self._upsert(
            audience, body.get("email_address"), body, mode="post", validate_merge=not self._skip_merge(call)
        )
        return 200, self._render(audience, member)

    def _patch_member(self, call: Call) -> tuple[int, Any]:
        audience, member = self._existing(call)
        body = dict(call.body or {})
        new_email = body.get("email_address")
        if isinstance(new_email, str) and subscriber_hash(new_email) != member["id"]:
            self._change_email(audience, member, new_email)
        body["email_address"] = member["email_address"]
        updated, _ = self._upsert(
            audience, body["email_address"], body, mode="patch", validate_merge=not self._skip_merge(call)
        )
        return 200, self._render(audience, updated)

    def _change_email(self, audience: Audience, member: dict[str, Any], email: str) -> None:
        """Move a member to a new address (PATCH with a different ``email_address``)."""
        address = self._check_email(audience, email)
        new_id = subscriber_hash(address)
        if new_id in audience.members:
            raise MailchimpError(
                400,
                "Member Exists",
                f"{address} is already a list member. Use PUT to insert or update list members.",
            )
        del audience.members[member["id"]]
        member["id"] = new_id
        member["email_address"] = address
        audience.members[new_id] = member

    def _get_member(self, call: Call) -> tuple[int, Any]:
        audience, member = self._existing(call)
        return 200, _project(self._render(audience, member), call.query)

    def _archive_member(self, call: Call) -> tuple[int, Any]:
        _audience, member = self._existing(call)
        if member["status"] == "archived":
            raise _not_found()
        if member["status"] in ("pending", "cleaned"):
            raise MailchimpError(
                405,
                "Method Not Allowed",
                f"This list member cannot be archived because it is {member['status']}.",
            )
        member["status"] = "archived"
        member["last_changed"] = self._now()
        return 204, None

    def _delete_permanent(self, call: Call) -> tuple[int, Any]:
        audience, member = self._existing(call)
        del audience.members[member["id"]]
        audience.forgotten.add(member["id"])
        return 204, None

    def _get_members(self, call: Call) -> tuple[int, Any]:
        audience = self._audience(call.args["list_id"])
        members = list(audience.members.values())
        if "status" in call.query:
            members = [m for m in members if m["status"] == call.query["status"]]
        for param, keep in (("since_last_changed", True), ("before_last_changed", False)):
            if param in call.query:
                bound = _parse_time(call.query[param], param)
                members = [m for m in members if (datetime.fromisoformat(m["last_changed"]) > bound) == keep]
        count, offset = self._page(call)
        page = [self._render(audience, m) for m in members[offset : offset + count]]
        return 200, _project(
            {"members": page, "list_id": audience.id, "total_items": len(members)}, call.query
        )

    # -- tags --------------------------------------------------------------------------------------
    def _get_tags(self, call: Call) -> tuple[int, Any]:
        audience, member = self._existing(call)
        tags = [{"id": audience.tag_ids[n], "name": n, "date_added": d} for n, d in member["_tags"].items()]
        return 200, {"tags": tags, "total_items": len(tags)}

    def _post_tags(self, call: Call) -> tuple[int, Any]:
        audience, member = self._existing(call)
        tags = (call.body or {}).get("tags")
        if not isinstance(tags, list):
            raise _invalid([{"field": "tags", "message": "This value should not be blank."}])
        for tag in tags:
            if (
                not isinstance(tag, dict)
                or not tag.get("name")
                or tag.get("status") not in ("active", "inactive")
            ):
                raise _invalid(
                    [
                        {
                            "field": "tags",
                            "message": "Each tag needs a name and a status of active or inactive.",
                        }
                    ]
                )
        for tag in tags:
            self._tag(audience, member, str(tag["name"]), active=tag["status"] == "active")
        member["last_changed"] = self._now()
        return 204, None

    # -- journeys --------------------------------------------------------------------------------
    def _trigger(self, call: Call) -> tuple[int, Any]:
        journey = self.journeys.get((call.args["journey_id"], call.args["step_id"]))
        if journey is None:
            raise _not_found()
        email = (call.body or {}).get("email_address")
        if not isinstance(email, str) or not email:
            raise _invalid([{"field": "email_address", "message": "This value should not be blank."}])
        member = self.lists[journey["list_id"]].members.get(subscriber_hash(email))
        if member is None or member["status"] != "subscribed":
            raise MailchimpError(
                400, "Bad Request", "The contact must be a subscribed member of the journey's audience."
            )
        self.journey_triggers.append(
            {**call.args, "email_address": member["email_address"], "at": self._now()}
        )
        return 204, None

    # -- batch subscribe -----------------------------------------------------------------------
    def _batch_subscribe(self, call: Call) -> tuple[int, Any]:
        audience = self._audience(call.args["list_id"])
        body = call.body if isinstance(call.body, dict) else {}
        members = body.get("members")
        cap = int(self.settings["batch_subscribe_max_members"])
        if not isinstance(members, list):
            raise _invalid([{"field": "members", "message": "This value should not be blank."}])
        if len(members) > cap:
            raise _invalid(
                [{"field": "members", "message": f"You can only add up to {cap} members at a time."}]
            )
        update = bool(body.get("update_existing", False))
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in members:
            entry = item if isinstance(item, dict) else {}
            email = entry.get("email_address")
            exists = isinstance(email, str) and subscriber_hash(email) in audience.members
            if exists and not update:
                errors.append(
                    _batch_error(
                        email,
                        f"{email} is already a list member, do you want to update? "
                        "please provide update_existing:true in the request body",
                        "ERROR_CONTACT_EXISTS",
                    )
                )
                continue
            try:
                member, new = self._upsert(
                    audience, email, entry, mode="batch", validate_merge=not self._skip_merge(call)
                )
            except MailchimpError as error:
                field_info = (error.errors or [{}])[0]
                errors.append(_batch_error(email, error.detail, "ERROR_GENERIC", field_info))
                continue
            (created if new else updated).append(self._render(audience, member))
        return 200, {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
        }

    # -- /batches --------------------------------------------------------------------------------
    def _post_batch(self, call: Call) -> tuple[int, Any]:
        operations = (call.body or {}).get("operations") if isinstance(call.body, dict) else None
        if not isinstance(operations, list) or not operations:
            raise _invalid([{"field": "operations", "message": "This value should not be blank."}])
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict) or not operation.get("method") or not operation.get("path"):
                raise _invalid(
                    [
                        {
                            "field": f"operations.item:{index}",
                            "message": "Each operation needs a method and a path.",
                        }
                    ]
                )
        pending = sum(b.status != "finished" for b in self.batches.values())
        if pending >= int(self.settings["max_pending_batches"]):
            raise MailchimpError(
                429,
                "Too Many Requests",
                f"You have more than {self.settings['max_pending_batches']} pending batches.",
            )
        batch = Batch(uuid.uuid4().hex[:10], operations, self._now(), time.monotonic())
        self.batches[batch.id] = batch
        return 200, self._batch_view(batch)

    def _get_batches(self, call: Call) -> tuple[int, Any]:
        count, offset = self._page(call)
        views = [self._batch_view(b) for b in self.batches.values()]
        return 200, {"batches": views[offset : offset + count], "total_items": len(views)}

    def _get_batch(self, call: Call) -> tuple[int, Any]:
        batch = self.batches.get(call.args["batch_id"])
        if batch is None:
            raise _not_found()
        return 200, self._batch_view(batch)

    def _delete_batch(self, call: Call) -> tuple[int, Any]:
        if self.batches.pop(call.args["batch_id"], None) is None:
            raise _not_found()
        self.batch_results.pop(call.args["batch_id"], None)
        return 204, None

    def _batch_view(self, batch: Batch) -> dict[str, Any]:
        finished = batch.status == "finished"
        return {
            "id": batch.id,
            "status": batch.status,
            "total_operations": len(batch.operations),
            "finished_operations": batch.finished_operations,
            "errored_operations": batch.errored_operations,
            "submitted_at": batch.submitted_at,
            "completed_at": batch.completed_at,
            "response_body_url": f"{self.base_url}/batch-results/{batch.id}-response.tar.gz"
            if finished
            else "",
        }

    def _advance_batches(self) -> None:
        """Move batches along their lifecycle by elapsed time; run their operations when finishing."""
        pending_s = float(self.settings["batch_pending_s"])
        started_s = float(self.settings["batch_started_s"])
        now = time.monotonic()
        for batch in list(self.batches.values()):
            if batch.status == "finished":
                continue
            elapsed = now - batch.started
            if elapsed >= pending_s + started_s:
                self._run_batch(batch)
            elif elapsed >= pending_s:
                batch.status = "started"

    def _run_batch(self, batch: Batch) -> None:
        results: list[dict[str, Any]] = []
        for operation in batch.operations:
            status, payload = self._run_operation(operation)
            results.append(
                {
                    "status_code": status,
                    "operation_id": operation.get("operation_id"),
                    "response": json.dumps(payload) if payload is not None else "",
                }
            )
        batch.errored_operations = sum(r["status_code"] >= 400 for r in results)
        batch.finished_operations = len(results)
        batch.status = "finished"
        batch.completed_at = self._now()
        self.batch_results[batch.id] = _results_archive(
            batch.id, results, int(self.settings["batch_results_per_file"])
        )

    def _run_operation(self, operation: dict[str, Any]) -> tuple[int, Any]:
        raw_body = operation.get("body")
        try:
            body = json.loads(raw_body) if isinstance(raw_body, str) and raw_body.strip() else raw_body
            params = {str(k): str(v) for k, v in dict(operation.get("params") or {}).items()}
            path = "/" + str(operation["path"]).lstrip("/")
            if path.removeprefix("/3.0").startswith("/batches"):
                raise MailchimpError(400, "Invalid Resource", "Batch operations cannot create batches.")
            return self._dispatch(Call(str(operation["method"]).upper(), path, params, body))
        except MailchimpError as error:
            return error.status, error.body()
        except ValueError:
            return 400, MailchimpError(
                400, "JSON Parse Error", "We encountered an unspecified JSON parsing error."
            ).body()


def _check_number(_definition: dict[str, Any], value: Any) -> str | None:
    try:
        float(value)
    except (TypeError, ValueError):
        return "Please enter a number"
    return None


def _check_address(_definition: dict[str, Any], value: Any) -> str | None:
    if not isinstance(value, dict) or any(not value.get(p) for p in _ADDRESS_PARTS):
        return "Please enter a complete address"
    return None


def _check_birthday(_definition: dict[str, Any], value: Any) -> str | None:
    return None if re.fullmatch(r"\d{2}/\d{2}", str(value)) else "Please enter the date in MM/DD format"


def _check_date(_definition: dict[str, Any], value: Any) -> str | None:
    return (
        None
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value))
        else "Please enter the date in YYYY-MM-DD format"
    )


def _check_choice(definition: dict[str, Any], value: Any) -> str | None:
    choices = definition["options"].get("choices") or []
    return None if value in choices else "Please choose one of the options"


_MERGE_CHECKS: dict[str, Callable[[dict[str, Any], Any], str | None]] = {
    "number": _check_number,
    "address": _check_address,
    "birthday": _check_birthday,
    "date": _check_date,
    "dropdown": _check_choice,
    "radio": _check_choice,
}


def _batch_error(email: Any, message: str, code: str, info: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "email_address": email if isinstance(email, str) else "",
        "error": message,
        "error_code": code,
        "field": (info or {}).get("field", ""),
        "field_message": (info or {}).get("message", ""),
    }


def _results_archive(batch_id: str, results: list[dict[str, Any]], per_file: int) -> bytes:
    """Return a gzipped tar of JSON arrays of results, as Mailchimp's response_body_url serves."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for number, start in enumerate(range(0, max(len(results), 1), max(per_file, 1))):
            data = json.dumps(results[start : start + per_file]).encode()
            info = tarfile.TarInfo(f"{batch_id}/{uuid.uuid4().hex}-{number}.json")
            info.size = len(data)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue())


def _parse_time(value: str, param: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _invalid([{"field": param, "message": "Please provide a date in ISO 8601 format"}]) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _select(value: Any, paths: list[list[str]], keep: bool) -> Any:
    """Keep (or drop) the dotted ``paths`` of ``value``; lists apply the paths to every item."""
    if isinstance(value, list):
        return [_select(item, paths, keep) for item in value]
    if not isinstance(value, dict):
        return value
    heads: dict[str, list[list[str]]] = {}
    for path in paths:
        heads.setdefault(path[0], []).append(path[1:])
    result: dict[str, Any] = {}
    for key, item in value.items():
        rests = heads.get(key)
        if rests is None:
            if not keep:
                result[key] = item
            continue
        if any(not rest for rest in rests):
            if keep:
                result[key] = item
            continue
        result[key] = _select(item, [r for r in rests if r], keep)
    return result


def _project(doc: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    """Apply Mailchimp's ``fields`` / ``exclude_fields`` partial-response parameters."""
    for param, keep in (("fields", True), ("exclude_fields", False)):
        if query.get(param):
            paths = [p.strip().split(".") for p in query[param].split(",") if p.strip()]
            doc = _select(doc, paths, keep)
    return doc
