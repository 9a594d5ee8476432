"""Stripe (API version 2023-08-16): the read side a donation sync uses, and signed webhook deliveries.

Vendor endpoints (secret or restricted key as ``Authorization: Bearer sk_…``; HTTP Basic with the
key as the user name works too, as on Stripe):

- ``GET /v1/{charges|payment_intents|refunds|customers|events}`` — lists, newest first, with
  ``created`` (an integer or ``created[gt|gte|lt|lte]``), ``limit`` (1 to ``max_page_size``, default
  10), cursor paging by ``starting_after`` / ``ending_before`` and the per-resource filters of the
  official OpenAPI document (``customer``, ``payment_intent``, ``charge``, ``email``, ``type``,
  ``types[]``; ``delivery_success`` is accepted and ignored); answers
  ``{"object": "list", "data": […], "has_more": …, "url": "/v1/…"}``;
- ``GET /v1/{resource}/{id}`` — retrieve, ``expand[]`` of stored references (``customer``,
  ``payment_intent``, ``charge``, ``latest_charge``; ``data.…`` on lists).

Errors are in Stripe's shape ``{"error": {"type", "code", "message", "param", "doc_url"}}`` with a
``Request-Id`` header; unknown parameters are ``parameter_unknown``; missing objects and cursors are
404 ``resource_missing``. Reads are limited to ``read_requests_per_second`` (test mode: 25) per
``rate_limit_window_s``; beyond that 429 with code ``rate_limit``.

Admin additions (beside the common admin API):

- ``POST /__admin/objects/{resource}`` — complete a partial object into a plausible one and store it;
- ``POST /__admin/generate/{resource}?count=&start=&step=`` — store ``count`` plausible objects;
- ``POST /__admin/events`` ``{"type", "object", "deliver"}`` — record an event (and its object) and
  deliver it, signed, to ``webhook_endpoint_url``;
- ``POST /__admin/events/{id}/deliver`` — deliver a stored event again (duplicates happen on Stripe).

Deliveries carry ``Stripe-Signature: t=<unix>,v1=<hex>``: HMAC-SHA256 of ``"{t}.{raw body}"`` with
``webhook_signing_secret`` (plus a second ``v1`` with ``webhook_previous_secret`` while a secret is
being rolled), as stripe-python's ``Webhook.construct_event`` expects.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import itertools
import json
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import requests
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from sandbox.common.emulator import Emulator

_TEMPLATES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "stripe_data" / "templates.json").read_text(encoding="utf-8")
)
_ALPHABET = string.ascii_letters + string.digits
_RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
)
_NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). "
    "See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."
)
_EXPANDABLE = ("customer", "payment_intent", "charge", "latest_charge")


@dataclass(frozen=True)
class _Resource:
    """One listable Stripe resource: its URL segment, object name, id prefix and list filters."""

    path: str
    object: str
    prefix: str
    filters: tuple[str, ...]


_RESOURCES: dict[str, _Resource] = {
    r.path: r
    for r in (
        _Resource("charges", "charge", "ch_", ("customer", "payment_intent", "transfer_group")),
        _Resource("payment_intents", "payment_intent", "pi_", ("customer",)),
        _Resource("refunds", "refund", "re_", ("charge", "payment_intent")),
        _Resource("customers", "customer", "cus_", ("email", "test_clock")),
        _Resource("events", "event", "evt_", ("type", "types", "delivery_success")),
    )
}
_BY_OBJECT = {r.object: r for r in _RESOURCES.values()}
_LIST_PARAMS = ("created", "ending_before", "expand", "limit", "starting_after")
_CREATED_OPS = ("gt", "gte", "lt", "lte")


class StripeError(Exception):
    """A Stripe API error, answered in Stripe's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.error: dict[str, Any] = {"type": type_, "message": message}
        if code:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.error["param"] = param


def _token(length: int = 24) -> str:
    """Return a random Stripe-style id body."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overlay`` laid over it, merging nested objects key by key."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and value:
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_int(raw: str, param: str) -> int:
    """Parse a Stripe integer parameter or raise Stripe's error."""
    try:
        return int(raw)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {raw}", param=param) from None


@dataclass
class _Store:
    """The objects of one resource, with their (created, sequence, id) keys kept sorted (oldest first)."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    order: list[tuple[int, int, str]] = field(default_factory=list)

    def put(self, obj: dict[str, Any], seq: int) -> None:
        """Insert or replace ``obj``."""
        oid = str(obj["id"])
        old = self.keys.get(oid)
        key = (int(obj["created"]), old[1] if old else seq, oid)
        if old is not None and old != key:
            del self.order[bisect.bisect_left(self.order, old)]
        if old != key:
            bisect.insort(self.order, key)
        self.keys[oid] = key
        self.objects[oid] = obj

    def put_many(self, objs: list[dict[str, Any]], seqs: itertools.count[int]) -> None:
        """Insert or replace many objects with one sort."""
        fresh = [o for o in objs if str(o["id"]) not in self.keys]
        for obj in objs:
            if str(obj["id"]) in self.keys:
                self.put(obj, next(seqs))
        for obj in fresh:
            oid = str(obj["id"])
            key = (int(obj["created"]), next(seqs), oid)
            self.keys[oid] = key
            self.objects[oid] = obj
            self.order.append(key)
        self.order.sort()


@dataclass
class _ListQuery:
    """The parsed parameters of a list request."""

    limit: int
    lo: int
    hi: int
    ending_before: bool
    match: Callable[[dict[str, Any]], bool]
    expand: list[str]


class StripeEmulator(Emulator):
    """Stripe's charges, payment intents, refunds, customers and events, and webhook deliveries."""

    name: ClassVar[str] = "stripe"
    default_settings: ClassVar[dict[str, Any]] = {
        "api_keys": ["sk_test_sandbox", "rk_test_sandbox"],
        "api_version": "2023-08-16",
        "read_requests_per_second": 25,
        "rate_limit_window_s": 1.0,
        "default_page_size": 10,
        "max_page_size": 100,
        "webhook_endpoint_url": "",
        "webhook_signing_secret": "whsec_sandbox",
        "webhook_previous_secret": "",
        "webhook_ca_cert": "",
        "webhook_timeout_s": 10.0,
    }

    def reset_state(self) -> None:
        """Forget every object, event, delivery and the rate-limit window."""
        self.stores: dict[str, _Store] = {path: _Store() for path in _RESOURCES}
        self.deliveries: list[dict[str, Any]] = []
        self._reads: deque[float] = deque()
        self._seq = itertools.count(1)
        self._rate_lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        """Return object counts per resource and the webhook deliveries made."""
        return {
            "counts": {path: len(store.objects) for path, store in self.stores.items()},
            "deliveries": list(self.deliveries),
        }

    def error_body(self, status: int, kind: str) -> tuple[bytes, str]:
        """Answer injected faults in Stripe's error shape."""
        if kind == "expired_token":
            error: dict[str, Any] = {
                "type": "invalid_request_error",
                "code": "api_key_expired",
                "doc_url": "https://stripe.com/docs/error-codes/api-key-expired",
                "message": "Expired API Key provided: sk_test_****dbox",
            }
        elif status == 429:
            error = StripeError(429, _RATE_LIMIT_MESSAGE, code="rate_limit").error
        elif status >= 500:
            error = {"type": "api_error", "message": "An unknown error occurred"}
        else:
            error = {"type": "invalid_request_error", "message": f"Request failed with status {status}"}
        return json.dumps({"error": error}).encode(), "application/json"

    # -- objects ---------------------------------------------------------------------------------
    def complete(self, resource: str, record: dict[str, Any]) -> dict[str, Any]:
        """Return a full Stripe object of ``resource`` built from the (possibly partial) ``record``."""
        spec = _RESOURCES[resource]
        # Nested parts of the template are shared between objects (seeding 10^5 objects stays fast):
        # stored objects are read-only; only new top-level dicts are ever changed.
        obj = _deep_merge(_TEMPLATES[spec.object], record)
        obj["object"] = spec.object
        obj["id"] = str(record.get("id") or f"{spec.prefix}{_token()}")
        obj["created"] = int(record.get("created") or time.time())
        obj.setdefault("livemode", False)
        if spec.object == "charge":
            if "amount_captured" not in record and obj.get("captured"):
                obj["amount_captured"] = obj["amount"]
            refunds = obj.get("refunds")
            if isinstance(refunds, dict):
                obj["refunds"] = {**refunds, "url": f"/v1/charges/{obj['id']}/refunds"}
        elif spec.object == "payment_intent" and "amount_received" not in record:
            obj["amount_received"] = obj["amount"] if obj.get("status") == "succeeded" else 0
        return obj

    def store(self, resource: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Complete and store ``records`` of ``resource``; return the stored objects."""
        objs = [self.complete(resource, r) for r in records]
        with self.lock:
            self.stores[resource].put_many(objs, self._seq)
        return objs

    def generate(self, resource: str, count: int, start: int, step: int = 60) -> list[dict[str, Any]]:
        """Store ``count`` plausible objects created ``step`` seconds apart from ``start``."""
        records = [{"created": start + i * step, "amount": 500 + (i % 20) * 250} for i in range(count)]
        if resource in ("customers", "events"):
            records = [{"created": r["created"]} for r in records]
        return self.store(resource, records)

    def seed(self, kind: str, records: list[dict[str, Any]]) -> int:
        """Load Stripe-shaped ``charges``, ``customers``, ``payment_intents``, ``refunds`` or ``events``."""
        if kind not in _RESOURCES:
            raise HTTPException(status_code=404, detail=f"stripe takes no seed data of kind {kind!r}")
        return len(self.store(kind, records))

    # -- webhooks --------------------------------------------------------------------------------
    def signature_header(self, payload: bytes, timestamp: int) -> str:
        """Return the ``Stripe-Signature`` header for ``payload`` signed at ``timestamp``."""
        signed = f"{timestamp}.".encode() + payload
        parts = [f"t={timestamp}"]
        for secret in (self.settings["webhook_signing_secret"], self.settings["webhook_previous_secret"]):
            if secret:
                digest = hmac.new(str(secret).encode(), signed, hashlib.sha256).hexdigest()
                parts.append(f"v1={digest}")
        return ",".join(parts)

    def record_event(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (when it is a listed resource) and an event of ``event_type`` about it."""
        spec = _BY_OBJECT.get(str(obj.get("object", "")))
        if spec is not None and spec.path != "events":
            obj = self.store(spec.path, [obj])[0]
        pending = 1 if self.settings["webhook_endpoint_url"] else 0
        event = {
            "type": event_type,
            "api_version": self.settings["api_version"],
            "data": {"object": obj},
            "pending_webhooks": pending,
            "request": {"id": None, "idempotency_key": None},
        }
        return self.store("events", [event])[0]

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        """POST ``event``, signed, to the configured endpoint; return (and record) the outcome."""
        url = str(self.settings["webhook_endpoint_url"])
        if not url:
            raise HTTPException(status_code=409, detail="webhook_endpoint_url is not set")
        payload = json.dumps(event, indent=2).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": self.signature_header(payload, timestamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        verify: bool | str = str(self.settings["webhook_ca_cert"]) or True
        outcome: dict[str, Any] = {"event_id": event["id"], "url": url, "timestamp": timestamp}
        try:
            response = requests.post(
                url,
                data=payload,
                headers=headers,
                timeout=float(self.settings["webhook_timeout_s"]),
                verify=verify,
            )
            outcome["status"] = response.status_code
        except requests.RequestException as exc:
            outcome["status"] = None
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        with self.lock:
            self.deliveries.append(outcome)
            if outcome["status"] is not None and 200 <= outcome["status"] < 300:
                stored = self.stores["events"].objects.get(event["id"])
                if stored is not None:
                    stored["pending_webhooks"] = max(0, int(stored["pending_webhooks"]) - 1)
        return outcome

    # -- request handling ------------------------------------------------------------------------
    def _authenticate(self, request: Request) -> None:
        """Check the API key (Bearer, or Basic with the key as user name)."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credential.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credential).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        challenge = {"WWW-Authenticate": 'Basic realm="Stripe"'}
        if not key:
            raise StripeError(401, _NO_KEY_MESSAGE, headers=challenge)
        if key not in self.settings["api_keys"]:
            shown = f"{key[:8]}{'*' * 4}{key[-4:]}" if len(key) > 12 else key
            raise StripeError(401, f"Invalid API Key provided: {shown}", headers=challenge)

    def _take_read(self) -> None:
        """Count a read against the sliding window; raise 429 ``rate_limit`` when it is full."""
        window = float(self.settings["rate_limit_window_s"])
        limit = int(self.settings["read_requests_per_second"] * window)
        now = time.monotonic()
        with self._rate_lock:
            while self._reads and self._reads[0] <= now - window:
                self._reads.popleft()
            if len(self._reads) >= limit:
                raise StripeError(429, _RATE_LIMIT_MESSAGE, code="rate_limit")
            self._reads.append(now)

    def _answer(
        self, request: Request, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> JSONResponse:
        """Return a JSON response with Stripe's ``Request-Id`` and ``Stripe-Version`` headers."""
        headers = {
            **headers,
            "Request-Id": f"req_{_token(14)}",
            "Stripe-Version": request.headers.get("stripe-version") or str(self.settings["api_version"]),
        }
        return JSONResponse(body, status_code=status, headers=headers)

    def _serve(self, request: Request, handler: Callable[[], dict[str, Any]]) -> JSONResponse:
        """Authenticate, rate-limit and run ``handler``, answering errors in Stripe's shape."""
        try:
            self._authenticate(request)
            if request.method == "GET":
                self._take_read()
            return self._answer(request, 200, handler(), {})
        except StripeError as err:
            return self._answer(request, err.status, {"error": err.error}, err.headers)

    def _parse_list(self, resource: str, request: Request) -> _ListQuery:
        """Parse and check a list request's parameters."""
        spec = _RESOURCES[resource]
        store = self.stores[resource]
        params: dict[str, list[tuple[str, str]]] = {}
        for name, value in request.query_params.multi_items():
            base = name.partition("[")[0]
            if base not in _LIST_PARAMS and base not in spec.filters:
                raise StripeError(
                    400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
                )
            params.setdefault(base, []).append((name, value))
        limit = self._parse_limit(params.get("limit"))
        lo, hi = self._created_bounds(store, params.get("created", []))
        after = self._cursor(spec, store, params.get("starting_after"))
        before = self._cursor(spec, store, params.get("ending_before"))
        if after is not None and before is not None:
            raise StripeError(
                400, "You may only specify one of these parameters: ending_before, starting_after."
            )
        if after is not None:
            hi = min(hi, bisect.bisect_left(store.order, after))
        if before is not None:
            lo = max(lo, bisect.bisect_right(store.order, before))
        filters = {k: [v for _, v in vs] for k, vs in params.items() if k in spec.filters}
        return _ListQuery(
            limit=limit,
            lo=lo,
            hi=hi,
            ending_before=before is not None,
            match=_matcher(filters),
            expand=[v for _, v in params.get("expand", [])],
        )

    def _parse_limit(self, values: list[tuple[str, str]] | None) -> int:
        """Return the page size: default, or the given one within 1..max_page_size."""
        if not values:
            return int(self.settings["default_page_size"])
        limit = _parse_int(values[-1][1], "limit")
        maximum = int(self.settings["max_page_size"])
        if not 1 <= limit <= maximum:
            raise StripeError(400, f"Invalid limit: must be between 1 and {maximum}", param="limit")
        return limit

    @staticmethod
    def _created_bounds(store: _Store, values: list[tuple[str, str]]) -> tuple[int, int]:
        """Turn ``created`` / ``created[op]`` into an index range of ``store.order``."""
        lo, hi = 0, len(store.order)
        for name, raw in values:
            op = name[len("created") :].strip("[]")
            if name != "created" and op not in _CREATED_OPS:
                raise StripeError(
                    400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
                )
            value = _parse_int(raw, name)
            if op in ("", "gte"):
                lo = max(lo, bisect.bisect_left(store.order, (value,)))
            if op == "gt":
                lo = max(lo, bisect.bisect_left(store.order, (value + 1,)))
            if op in ("", "lte"):
                hi = min(hi, bisect.bisect_left(store.order, (value + 1,)))
            if op == "lt":
                hi = min(hi, bisect.bisect_left(store.order, (value,)))
        return lo, hi

    @staticmethod
    def _cursor(
        spec: _Resource, store: _Store, values: list[tuple[str, str]] | None
    ) -> tuple[int, int, str] | None:
        """Return the sort key of a cursor object, or raise ``resource_missing``."""
        if not values:
            return None
        name, oid = values[-1]
        key = store.keys.get(oid)
        if key is None:
            raise StripeError(404, f"No such {spec.object}: '{oid}'", code="resource_missing", param=name)
        return key

    def _list(self, resource: str, request: Request) -> dict[str, Any]:
        """Return one page of ``resource``, newest first."""
        with self.lock:
            query = self._parse_list(resource, request)
            store = self.stores[resource]
            found: list[dict[str, Any]] = []
            indexes = (
                range(query.lo, query.hi) if query.ending_before else range(query.hi - 1, query.lo - 1, -1)
            )
            for index in indexes:
                obj = store.objects[store.order[index][2]]
                if query.match(obj):
                    found.append(obj)
                    if len(found) > query.limit:
                        break
            has_more = len(found) > query.limit
            page = found[: query.limit]
            if query.ending_before:
                page.reverse()
            expand = [p.removeprefix("data.") for p in query.expand if p.startswith("data.")]
            data = [self._expand(obj, expand) for obj in page]
        return {"object": "list", "data": data, "has_more": has_more, "url": f"/v1/{resource}"}

    def _retrieve(self, resource: str, oid: str, request: Request) -> dict[str, Any]:
        """Return one object of ``resource`` or raise ``resource_missing``."""
        spec = _RESOURCES[resource]
        for name in request.query_params:
            if name.partition("[")[0] != "expand":
                raise StripeError(
                    400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
                )
        with self.lock:
            obj = self.stores[resource].objects.get(oid)
            if obj is None:
                raise StripeError(404, f"No such {spec.object}: '{oid}'", code="resource_missing", param="id")
            return self._expand(
                obj, [v for k, v in request.query_params.multi_items() if k.startswith("expand")]
            )

    def _expand(self, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        """Return ``obj`` with the stored objects its ``paths`` refer to expanded in place of their ids."""
        if not paths:
            return obj
        out = dict(obj)
        for path in paths:
            head, _, rest = path.partition(".")
            value = out.get(head)
            if head in _EXPANDABLE and isinstance(value, str):
                target = _BY_OBJECT["charge" if head == "latest_charge" else head].path
                found = self.stores[target].objects.get(value)
                if found is not None:
                    out[head] = self._expand(found, [rest] if rest else [])
            elif isinstance(value, dict) and rest:
                out[head] = self._expand(value, [rest])
        return out

    def routes(self, app: FastAPI) -> None:
        """Register the list and retrieve endpoints, the unknown-URL answer and the admin additions."""
        self._admin_routes(app)
        for resource in _RESOURCES:
            self._resource_routes(app, resource)

        @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "DELETE"])
        def unrecognized(rest: str, request: Request) -> JSONResponse:
            def fail() -> dict[str, Any]:
                raise StripeError(
                    404,
                    f"Unrecognized request URL ({request.method}: /v1/{rest}). "
                    "Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
                )

            return self._serve(request, fail)

    def _resource_routes(self, app: FastAPI, resource: str) -> None:
        """Register ``GET /v1/{resource}`` and ``GET /v1/{resource}/{id}``."""

        def list_objects(request: Request) -> JSONResponse:
            return self._serve(request, lambda: self._list(resource, request))

        def retrieve(oid: str, request: Request) -> JSONResponse:
            return self._serve(request, lambda: self._retrieve(resource, oid, request))

        app.add_api_route(f"/v1/{resource}", list_objects, methods=["GET"], name=f"list_{resource}")
        app.add_api_route(f"/v1/{resource}/{{oid}}", retrieve, methods=["GET"], name=f"retrieve_{resource}")

    def _admin_routes(self, app: FastAPI) -> None:
        """Register the admin endpoints that create objects and events and deliver webhooks."""

        def known(resource: str) -> str:
            if resource not in _RESOURCES:
                raise HTTPException(status_code=404, detail=f"unknown resource {resource!r}")
            return resource

        @app.post("/__admin/objects/{resource}")
        def create_object(resource: str, record: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
            return self.store(known(resource), [record])[0]

        @app.post("/__admin/generate/{resource}")
        def generate(
            resource: str, count: int = 10, start: int | None = None, step: int = 60
        ) -> dict[str, Any]:
            objs = self.generate(known(resource), count, start or int(time.time()) - count * step, step)
            return {"created": len(objs), "ids": [o["id"] for o in objs]}

        @app.post("/__admin/events")
        def create_event(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
            if not isinstance(body.get("type"), str) or not isinstance(body.get("object"), dict):
                raise HTTPException(
                    status_code=400, detail='body needs "type" (string) and "object" (object)'
                )
            event = self.record_event(body["type"], body["object"])
            delivery = (
                self.deliver(event)
                if body.get("deliver", True) and self.settings["webhook_endpoint_url"]
                else None
            )
            return {"event": event, "delivery": delivery}

        @app.post("/__admin/events/{event_id}/deliver")
        def redeliver(event_id: str) -> dict[str, Any]:
            with self.lock:
                event = self.stores["events"].objects.get(event_id)
            if event is None:
                raise HTTPException(status_code=404, detail=f"no event {event_id!r}")
            return self.deliver(event)


def _matcher(filters: dict[str, list[str]]) -> Callable[[dict[str, Any]], bool]:
    """Return a predicate for the equality filters of a list request (``type`` takes ``*`` wildcards)."""
    wanted_types = filters.get("types", []) + filters.get("type", [])
    plain = {k: v[-1] for k, v in filters.items() if k not in ("type", "types", "delivery_success")}

    def type_matches(event_type: str) -> bool:
        return any(
            event_type == t or (t.endswith("*") and event_type.startswith(t[:-1])) for t in wanted_types
        )

    def match(obj: dict[str, Any]) -> bool:
        for key, value in plain.items():
            field_value = obj.get(key)
            if isinstance(field_value, dict):
                field_value = field_value.get("id")
            if field_value != value:
                return False
        return not wanted_types or type_matches(str(obj.get("type", "")))

    return match
