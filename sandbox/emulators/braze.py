"""Braze REST API: /users/track, /users/delete, /users/export/ids, subscription groups, triggers.

Behaviour follows ../shared/reference/vendor-apis.md section 4 and braze.com/docs/api:

- ``Authorization: Bearer <REST API key>``; an unknown key is 401, a key without the endpoint's
  permission (``key_permissions`` setting) is 403. Bodies are ``{"message": …, "errors": […]}``.
- ``/users/track`` takes at most ``users_track_max_objects`` (75) objects, counted across
  attributes, events and purchases (``users_track_limit_mode`` ``combined``) or per array
  (``per_array``, legacy accounts); more is 400. Objects with problems are reported in ``errors``
  beside ``"message": "success"`` (201); when no object is valid the request is 400. Attributes
  upsert by ``external_id``; events and purchases are appended and never deduplicated.
- Rate limits are fixed windows per API key and endpoint group (``rate_limits`` setting, 3,000
  per 3 s for ``/users/track``); every answer carries ``X-RateLimit-Limit``, ``-Remaining`` and
  ``-Reset`` (UTC epoch seconds), and the request over the limit is 429.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from fastapi import FastAPI, Request, Response

from sandbox.common.emulator import Emulator

DEFAULT_API_KEY = "sandbox-braze-rest-key"
EMAIL_GROUP = "sandbox-email-newsletter"
SMS_GROUP = "sandbox-sms-alerts"
_JSON = "application/json; charset=utf-8"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_PHONE_RE = re.compile(r"^\+[1-9]\d{6,14}$")
_SUBSCRIBE_VALUES = ("opted_in", "subscribed", "unsubscribed")
_GROUP_STATES = ("subscribed", "unsubscribed")
_IDENTIFIERS = ("external_id", "user_alias", "braze_id", "email", "phone")
_NO_IDENTIFIER = "'external_id', 'user_alias', 'braze_id', 'email' or 'phone' is required"
_DELETE_TYPES = ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")
_NO_VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."

#: endpoint -> (rate-limit group, permission)
_ENDPOINTS: dict[str, tuple[str, str]] = {
    "/users/track": ("users_track", "users.track"),
    "/users/delete": ("users_delete", "users.delete"),
    "/users/export/ids": ("users_export", "users.export.ids"),
    "/subscription/status/set": ("subscription", "subscription.status.set"),
    "/v2/subscription/status/set": ("subscription", "subscription.status.set"),
    "/subscription/status/get": ("subscription_get", "subscription.status.get"),
    "/canvas/trigger/send": ("messaging", "canvas.trigger.send"),
    "/campaigns/trigger/send": ("messaging", "campaigns.trigger.send"),
}


class BrazeError(Exception):
    """A fatal Braze error: ``{"message": …, "errors": […]}`` with a 4xx status."""

    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """Return the JSON body."""
        doc: dict[str, Any] = {"message": self.message}
        if self.errors:
            doc["errors"] = self.errors
        return doc


def _bad(message: str, errors: list[Any] | None = None) -> BrazeError:
    return BrazeError(400, message, errors)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _valid_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class BrazeEmulator(Emulator):
    """Braze REST API."""

    name: ClassVar[str] = "braze"
    default_settings: ClassVar[dict[str, Any]] = {
        "api_keys": [DEFAULT_API_KEY],
        "key_permissions": {},
        "users_track_max_objects": 75,
        "users_track_limit_mode": "combined",
        "users_delete_max_ids": 50,
        "subscription_max_ids": 50,
        "trigger_max_recipients": 50,
        "rate_limits": {
            "users_track": {"limit": 3000, "window_s": 3.0},
            "users_delete": {"limit": 20000, "window_s": 60.0},
            "users_export": {"limit": 2500, "window_s": 60.0},
            "subscription": {"limit": 5000, "window_s": 60.0},
            "subscription_get": {"limit": 250000, "window_s": 3600.0},
            "messaging": {"limit": 250000, "window_s": 3600.0},
        },
        "subscription_groups": {EMAIL_GROUP: "email", SMS_GROUP: "sms"},
        "canvas_ids": ["sandbox-canvas"],
        "campaign_ids": ["sandbox-campaign"],
    }

    # -- state ---------------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget users, sends and rate-limit windows."""
        self.users: dict[str, dict[str, Any]] = {}
        self.by_external_id: dict[str, str] = {}
        self.by_alias: dict[tuple[str, str], str] = {}
        self.deleted_external_ids: list[str] = []
        self.sends: list[dict[str, Any]] = []
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def snapshot(self) -> dict[str, Any]:
        """Return users (by external id where they have one), deletions and sends."""
        return {
            "users": [dict(u) for u in self.users.values()],
            "deleted_external_ids": list(self.deleted_external_ids),
            "sends": list(self.sends),
        }

    def seed(self, kind: str, records: list[dict[str, Any]]) -> int:
        """Load ``users``: each record is a /users/track attributes object."""
        if kind != "users":
            return super().seed(kind, records)
        for record in records:
            self._track_attributes(record)
        return len(records)

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Answer injected faults with Braze's ``{"message": …}`` body."""
        messages = {
            401: "Invalid API Key",
            429: "Too Many Requests",
            504: "Gateway Timeout",
        }
        return json.dumps({"message": messages.get(status, "Internal Server Error")}).encode(), _JSON

    # -- HTTP ------------------------------------------------------------------------------------
    def routes(self, app: FastAPI) -> None:
        """Register the endpoints; each runs through auth, the rate limit and JSON parsing."""
        handlers: dict[str, Callable[[Any], tuple[int, dict[str, Any]]]] = {
            "/users/track": self._users_track,
            "/users/delete": self._users_delete,
            "/users/export/ids": self._users_export_ids,
            "/subscription/status/set": self._subscription_set,
            "/v2/subscription/status/set": self._subscription_set_v2,
            "/canvas/trigger/send": self._canvas_send,
            "/campaigns/trigger/send": self._campaign_send,
        }
        for path, handler in handlers.items():
            self._register_post(app, path, handler)

        @app.get("/subscription/status/get")
        def subscription_get(request: Request) -> Response:
            return self._serve(request, "/subscription/status/get", b"", self._subscription_get)

    def _register_post(
        self, app: FastAPI, path: str, handler: Callable[[Any], tuple[int, dict[str, Any]]]
    ) -> None:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            return self._serve(request, path, raw, handler)

        app.add_api_route(path, endpoint, methods=["POST"])

    def _serve(
        self, request: Request, path: str, raw: bytes, handler: Callable[[Any], tuple[int, dict[str, Any]]]
    ) -> Response:
        group, permission = _ENDPOINTS[path]
        headers: dict[str, str] = {}
        try:
            key = self._authenticate(request.headers.get("authorization", ""), permission)
            with self.lock:
                headers = self._count(key, group)
                if headers.pop("limited", ""):
                    raise BrazeError(429, "Too Many Requests")
                body: Any = dict(request.query_params) if request.method == "GET" else self._parse(raw)
                status, payload = handler(body)
        except BrazeError as error:
            return Response(json.dumps(error.body()), error.status, headers=headers, media_type=_JSON)
        return Response(json.dumps(payload), status, headers=headers, media_type=_JSON)

    def _authenticate(self, header: str, permission: str) -> str:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key not in self.settings["api_keys"]:
            raise BrazeError(401, "Invalid API Key")
        allowed = self.settings["key_permissions"].get(key)
        if allowed is not None and permission not in allowed:
            raise BrazeError(403, f"The API key does not have the {permission} permission.")
        return key

    def _count(self, key: str, group: str) -> dict[str, str]:
        """Count a request in its fixed window; return the rate-limit headers (and ``limited``)."""
        rule = self.settings["rate_limits"].get(group) or {"limit": 250000, "window_s": 3600.0}
        limit, window = int(rule["limit"]), float(rule["window_s"])
        now = time.time()
        started, used = self._windows.get((key, group), (now, 0))
        if now - started >= window:
            started, used = now, 0
        limited = used >= limit
        if not limited:
            used += 1
        self._windows[(key, group)] = (started, used)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": str(math.ceil(started + window)),
        }
        if limited:
            headers["limited"] = "1"
        return headers

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            raise _bad("Invalid JSON in request body") from exc
        if not isinstance(body, dict):
            raise _bad("The request body must be a JSON object")
        return body

    # -- users -----------------------------------------------------------------------------------
    def _find(self, obj: dict[str, Any]) -> str | None:
        """Return the braze_id of the user ``obj`` identifies, if that user exists."""
        if obj.get("external_id") is not None:
            return self.by_external_id.get(str(obj["external_id"]))
        alias = obj.get("user_alias")
        if isinstance(alias, dict):
            return self.by_alias.get((str(alias.get("alias_name")), str(alias.get("alias_label"))))
        if obj.get("braze_id") is not None:
            return str(obj["braze_id"]) if str(obj["braze_id"]) in self.users else None
        for field_name in ("email", "phone"):
            if obj.get(field_name):
                for braze_id, user in self.users.items():
                    if user.get(field_name) == obj[field_name]:
                        return braze_id
        return None

    def _identifier_problem(self, obj: dict[str, Any]) -> str | None:
        if not any(obj.get(k) not in (None, "") for k in _IDENTIFIERS):
            return _NO_IDENTIFIER
        alias = obj.get("user_alias")
        if alias is not None and (not isinstance(alias, dict) or not alias.get("alias_name")):
            return "'user_alias' is not valid"
        if obj.get("braze_id") is not None and obj.get("external_id") is None and self._find(obj) is None:
            return "'braze_id' does not exist"
        return None

    def _user(self, obj: dict[str, Any], *, create: bool) -> dict[str, Any] | None:
        """Return the user ``obj`` identifies, creating it when allowed."""
        found = self._find(obj)
        if found is not None:
            return self.users[found]
        if not create:
            return None
        braze_id = uuid.uuid4().hex[:24]
        user: dict[str, Any] = {
            "braze_id": braze_id,
            "custom_attributes": {},
            "subscription_groups": {},
            "events": [],
            "purchases": [],
        }
        if obj.get("external_id") is not None:
            user["external_id"] = str(obj["external_id"])
            self.by_external_id[user["external_id"]] = braze_id
        alias = obj.get("user_alias")
        if isinstance(alias, dict):
            key = (str(alias.get("alias_name")), str(alias.get("alias_label")))
            user["user_aliases"] = [{"alias_name": key[0], "alias_label": key[1]}]
            self.by_alias[key] = braze_id
        for field_name in ("email", "phone"):
            if obj.get(field_name):
                user[field_name] = obj[field_name]
        self.users[braze_id] = user
        return user

    def _attribute_problem(self, obj: dict[str, Any]) -> str | None:
        for field_name in ("email_subscribe", "push_subscribe"):
            if field_name in obj and obj[field_name] not in _SUBSCRIBE_VALUES:
                return f"'{field_name}' is not valid"
        if "email" in obj and obj["email"] is not None and not _EMAIL_RE.match(str(obj["email"])):
            return "'email' is not valid"
        groups = obj.get("subscription_groups")
        if groups is not None:
            for group in _as_list(groups):
                if not isinstance(group, dict) or group.get("subscription_state") not in _GROUP_STATES:
                    return "'subscription_groups' is not valid"
                if group.get("subscription_group_id") not in self.settings["subscription_groups"]:
                    return "'subscription_group_id' is not valid"
        return None

    def _track_attributes(self, obj: dict[str, Any]) -> None:
        user = self._user(obj, create=not obj.get("_update_existing_only", False))
        if user is None:
            return
        for key, value in obj.items():
            if key in ("external_id", "user_alias", "braze_id", "_update_existing_only"):
                continue
            if key == "subscription_groups":
                for group in _as_list(value):
                    user["subscription_groups"][group["subscription_group_id"]] = group["subscription_state"]
            elif isinstance(value, dict) and set(value) <= {"inc", "add", "remove"} and value:
                user["custom_attributes"][key] = _apply_operation(user["custom_attributes"].get(key), value)
            elif value is None:
                user["custom_attributes"].pop(key, None)
                user.pop(key, None)
            elif key in (
                "email",
                "phone",
                "first_name",
                "last_name",
                "email_subscribe",
                "push_subscribe",
                "country",
                "city",
                "language",
                "dob",
                "gender",
                "home_city",
                "time_zone",
            ):
                user[key] = value
            else:
                user["custom_attributes"][key] = value

    def _event_problem(self, obj: dict[str, Any]) -> str | None:
        if not isinstance(obj.get("name"), str) or not obj["name"]:
            return "'name' is required"
        if not _valid_time(obj.get("time")):
            return "'time' is not valid"
        return None

    def _purchase_problem(self, obj: dict[str, Any]) -> str | None:
        if not isinstance(obj.get("product_id"), str) or not obj["product_id"]:
            return "'product_id' is required"
        currency = obj.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            return "'currency' is not valid"
        price = obj.get("price")
        if isinstance(price, bool) or not isinstance(price, int | float):
            return "'price' is not valid"
        quantity = obj.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 100:
            return "'quantity' is not valid"
        if not _valid_time(obj.get("time")):
            return "'time' is not valid"
        return None

    def _check_track_size(self, arrays: dict[str, list[Any]]) -> None:
        cap = int(self.settings["users_track_max_objects"])
        if self.settings["users_track_limit_mode"] == "per_array":
            for name, items in arrays.items():
                if len(items) > cap:
                    raise _bad(f"Too many {name}: at most {cap} {name} per request.")
        elif sum(len(items) for items in arrays.values()) > cap:
            raise _bad(
                f"Too many objects: at most {cap} attributes, events and purchases in total per request."
            )

    def _track_arrays(self, body: dict[str, Any]) -> dict[str, list[Any]]:
        arrays: dict[str, list[Any]] = {}
        for name in ("attributes", "events", "purchases"):
            if name in body:
                if not isinstance(body[name], list):
                    raise _bad(f"'{name}' must be an array")
                arrays[name] = body[name]
        if not any(arrays.values()):
            raise _bad(_NO_VALID_DATA)
        self._check_track_size(arrays)
        return arrays

    def _sort_track_objects(
        self, arrays: dict[str, list[Any]]
    ) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        """Split the objects into valid ones per array and errors (``type``, ``input_array``, ``index``)."""
        checks: dict[str, Callable[[dict[str, Any]], str | None]] = {
            "attributes": self._attribute_problem,
            "events": self._event_problem,
            "purchases": self._purchase_problem,
        }
        errors: list[dict[str, Any]] = []
        valid: dict[str, list[dict[str, Any]]] = {name: [] for name in arrays}
        for name, items in arrays.items():
            for index, item in enumerate(items):
                obj = item if isinstance(item, dict) else {}
                problem = self._identifier_problem(obj) or checks[name](obj)
                if problem:
                    errors.append({"type": problem, "input_array": name, "index": index})
                else:
                    valid[name].append(obj)
        return valid, errors

    def _users_track(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        arrays = self._track_arrays(body)
        valid, errors = self._sort_track_objects(arrays)
        if not any(valid.values()):
            raise _bad(_NO_VALID_DATA, errors)
        for obj in valid.get("attributes", []):
            self._track_attributes(obj)
        for name in ("events", "purchases"):
            for obj in valid.get(name, []):
                user = self._user(obj, create=True)
                if user is not None:
                    user[name].append({k: v for k, v in obj.items() if k not in _IDENTIFIERS})
        response: dict[str, Any] = {"message": "success"}
        for name in arrays:
            response[f"{name}_processed"] = len(valid[name])
        if errors:
            response["errors"] = errors
        return 201, response

    def _users_delete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        given = [t for t in _DELETE_TYPES if body.get(t)]
        if len(given) != 1:
            raise _bad("Provide exactly one of: " + ", ".join(_DELETE_TYPES))
        kind = given[0]
        ids = _as_list(body[kind])
        cap = int(self.settings["users_delete_max_ids"])
        if len(ids) > cap:
            raise _bad(f"'{kind}' can contain at most {cap} identifiers.")
        deleted = 0
        for identifier in ids:
            braze_id = self._find(_delete_lookup(kind, identifier))
            if braze_id is None:
                continue
            user = self.users.pop(braze_id)
            self.by_external_id = {k: v for k, v in self.by_external_id.items() if v != braze_id}
            self.by_alias = {k: v for k, v in self.by_alias.items() if v != braze_id}
            if "external_id" in user:
                self.deleted_external_ids.append(user["external_id"])
            deleted += 1
        return 201, {"deleted": deleted, "message": "success"}

    def _users_export_ids(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``/users/export/ids``: the profiles of external ids, aliases, a braze id, an email or a phone."""
        lookups: list[tuple[str, Any]] = [("external_id", i) for i in _as_list(body.get("external_ids"))]
        lookups += [("user_alias", a) for a in _as_list(body.get("user_aliases"))]
        for field_name, key in (("braze_id", "braze_id"), ("email", "email_address"), ("phone", "phone")):
            if body.get(key):
                lookups.append((field_name, body[key]))
        if not lookups:
            raise _bad("Provide 'external_ids', 'user_aliases', 'braze_id', 'email_address' or 'phone'")
        if len(lookups) > int(self.settings["users_delete_max_ids"]):
            raise _bad(f"At most {self.settings['users_delete_max_ids']} identifiers per request.")
        wanted = body.get("fields_to_export")
        users: list[dict[str, Any]] = []
        invalid: list[Any] = []
        seen: set[str] = set()
        for field_name, value in lookups:
            matches = (
                [b for b, u in self.users.items() if u.get(field_name) == value]
                if field_name in ("email", "phone")
                else [b for b in [self._find({field_name: value})] if b is not None]
            )
            if not matches and field_name == "external_id":
                invalid.append(value)
            for braze_id in matches:
                if braze_id not in seen:
                    seen.add(braze_id)
                    user = dict(self.users[braze_id])
                    users.append({k: v for k, v in user.items() if not wanted or k in wanted})
        response: dict[str, Any] = {"users": users, "message": "success"}
        if invalid:
            response["invalid_user_ids"] = invalid
        return 200, response

    # -- subscription groups ---------------------------------------------------------------------
    def _set_group(self, group_id: Any, state: Any, ids: dict[str, list[Any]]) -> None:
        channel = self.settings["subscription_groups"].get(group_id)
        if channel is None:
            raise _bad("'subscription_group_id' is not valid")
        if state not in _GROUP_STATES:
            raise _bad("'subscription_state' must be 'subscribed' or 'unsubscribed'")
        cap = int(self.settings["subscription_max_ids"])
        if not any(ids.values()):
            raise _bad("Provide 'external_id', 'email' or 'phone'")
        for kind, values in ids.items():
            if len(values) > cap:
                raise _bad(f"'{kind}' can contain at most {cap} identifiers.")
        if ids["phone"] and channel != "sms":
            raise _bad("'phone' can only be used with an SMS subscription group")
        if ids["email"] and channel != "email":
            raise _bad("'email' can only be used with an email subscription group")
        for value in ids["phone"]:
            if not _PHONE_RE.match(str(value)):
                raise _bad(f"'{value}' is not a valid E.164 phone number")
        for kind, values in ids.items():
            for value in values:
                user = self._user({kind: str(value)}, create=True)
                if user is not None:
                    user["subscription_groups"][group_id] = state

    def _subscription_set(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ids = {k: _as_list(body.get(k)) for k in ("external_id", "email", "phone")}
        self._set_group(body.get("subscription_group_id"), body.get("subscription_state"), ids)
        return 201, {"message": "success"}

    def _subscription_set_v2(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        groups = body.get("subscription_groups")
        if not isinstance(groups, list) or not groups:
            raise _bad("'subscription_groups' must be a non-empty array")
        for group in groups:
            if not isinstance(group, dict):
                raise _bad("'subscription_groups' is not valid")
            ids = {
                "external_id": _as_list(group.get("external_ids")),
                "email": _as_list(group.get("emails")),
                "phone": _as_list(group.get("phones")),
            }
            self._set_group(group.get("subscription_group_id"), group.get("subscription_state"), ids)
        return 201, {"message": "success"}

    def _subscription_get(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        group_id = query.get("subscription_group_id")
        if group_id not in self.settings["subscription_groups"]:
            raise _bad("'subscription_group_id' is not valid")
        statuses: dict[str, str] = {}
        for kind in ("external_id", "email", "phone"):
            for value in [v for v in query.get(kind, "").split(",") if v]:
                user = self._user({kind: value}, create=False)
                state = (user or {}).get("subscription_groups", {}).get(group_id)
                statuses[value] = state.capitalize() if state else "Unknown"
        if not statuses:
            raise _bad("Provide 'external_id', 'email' or 'phone'")
        return 200, {"status": statuses, "message": "success"}

    # -- messaging -------------------------------------------------------------------------------
    def _recipients(self, body: dict[str, Any], properties_key: str) -> list[dict[str, Any]]:
        recipients = body.get("recipients")
        broadcast = bool(body.get("broadcast", False))
        if recipients is not None and not isinstance(recipients, list):
            raise _bad("'recipients' must be an array")
        if broadcast and recipients:
            raise _bad("'recipients' cannot be used when 'broadcast' is true")
        if not broadcast and not recipients and not body.get("audience"):
            raise _bad("Provide 'recipients', an 'audience', or set 'broadcast' to true")
        cap = int(self.settings["trigger_max_recipients"])
        if recipients and len(recipients) > cap:
            raise _bad(f"'recipients' can contain at most {cap} entries.")
        reached: list[dict[str, Any]] = []
        for recipient in recipients or []:
            reached.extend(self._recipient(recipient, properties_key))
        return reached

    def _recipient(self, recipient: Any, properties_key: str) -> list[dict[str, Any]]:
        if not isinstance(recipient, dict):
            raise _bad("Each recipient must be an object")
        lookup = {
            "external_id": recipient.get("external_user_id"),
            "user_alias": recipient.get("user_alias"),
            "email": recipient.get("email"),
        }
        lookup = {k: v for k, v in lookup.items() if v is not None}
        if len(lookup) != 1:
            raise _bad("Each recipient needs exactly one of 'external_user_id', 'user_alias' or 'email'")
        existing_only = recipient.get("send_to_existing_only", True)
        attributes = recipient.get("attributes")
        if not existing_only and not isinstance(attributes, dict):
            raise _bad("'attributes' are required when 'send_to_existing_only' is false")
        if not existing_only and "external_id" not in lookup:
            raise _bad("'send_to_existing_only' false needs an 'external_user_id'")
        if isinstance(attributes, dict):
            self._track_attributes({**attributes, **lookup, "_update_existing_only": existing_only})
        user = self._user(lookup, create=False)
        if user is None:
            return []
        properties = recipient.get(properties_key) or recipient.get("context") or {}
        return [
            {"braze_id": user["braze_id"], "external_id": user.get("external_id"), "properties": properties}
        ]

    def _canvas_send(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("canvas_id") not in self.settings["canvas_ids"]:
            raise _bad("Invalid 'canvas_id'")
        reached = self._recipients(body, "canvas_entry_properties")
        properties = body.get("canvas_entry_properties") or body.get("context") or {}
        return self._record_send("canvas", str(body["canvas_id"]), properties, reached, body)

    def _campaign_send(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("campaign_id") not in self.settings["campaign_ids"]:
            raise _bad("Invalid 'campaign_id'")
        reached = self._recipients(body, "trigger_properties")
        return self._record_send(
            "campaign", str(body["campaign_id"]), body.get("trigger_properties") or {}, reached, body
        )

    def _record_send(
        self, kind: str, target: str, properties: Any, reached: list[dict[str, Any]], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        dispatch_id = uuid.uuid4().hex
        self.sends.append(
            {
                "kind": kind,
                "id": target,
                "dispatch_id": dispatch_id,
                "send_id": body.get("send_id"),
                "broadcast": bool(body.get("broadcast", False)),
                "properties": properties,
                "recipients": reached,
            }
        )
        return 201, {"dispatch_id": dispatch_id, "message": "success"}


def _apply_operation(current: Any, operation: dict[str, Any]) -> Any:
    """Apply Braze's ``{"inc": n}`` / ``{"add": [...]}`` / ``{"remove": [...]}`` attribute operations."""
    if "inc" in operation:
        base = current if isinstance(current, int | float) and not isinstance(current, bool) else 0
        return base + operation["inc"]
    values = list(current) if isinstance(current, list) else []
    values += [v for v in _as_list(operation.get("add")) if v not in values]
    return [v for v in values if v not in _as_list(operation.get("remove"))]


def _delete_lookup(kind: str, identifier: Any) -> dict[str, Any]:
    field_name = {
        "external_ids": "external_id",
        "user_aliases": "user_alias",
        "braze_ids": "braze_id",
        "email_addresses": "email",
        "phone_numbers": "phone",
    }[kind]
    return {field_name: identifier}
