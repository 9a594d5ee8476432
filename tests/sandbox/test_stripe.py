"""The Stripe emulator: lists, paging, filters, errors, rate limit and webhooks, against Stripe's OpenAPI."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import stripe
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.receiver import ReceiverEmulator
from sandbox.emulators.stripe import StripeEmulator

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "specs" / "stripe" / "spec3.yaml"
RESOURCES = ["charges", "payment_intents", "refunds", "customers", "events"]
KEY = "sk_test_sandbox"
AUTH = {"Authorization": f"Bearer {KEY}"}
T0 = 1_700_000_000


def _nullable_to_json_schema(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` as JSON Schema ``anyOf [schema, null]``.

    Stripe's document puts ``nullable`` beside ``anyOf`` (nullable references), which OpenAPI 3.0
    validators such as openapi-core's ignore; Stripe's own fixtures fail there, so the rewrite is needed.
    """
    if isinstance(node, dict):
        out = {
            k: _nullable_to_json_schema(v)
            for k, v in node.items()
            if not (k == "nullable" and isinstance(v, bool))
        }
        return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") is True else out
    if isinstance(node, list):
        return [_nullable_to_json_schema(v) for v in node]
    return node


@functools.cache
def _spec_registry() -> Registry[Any]:
    """Load Stripe's OpenAPI document once per test session."""
    with SPEC_PATH.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    resource: Resource[Any] = Resource.from_contents(
        _nullable_to_json_schema(spec), default_specification=DRAFT4
    )
    registry: Registry[Any] = Registry().with_resource("urn:stripe-spec3", resource)
    return registry


def _schema_errors(path: str, status: str, body: Any) -> list[str]:
    """Return the messages of ``body`` failing the spec's GET ``path`` response schema for ``status``."""
    parts = ["paths", path, "get", "responses", status, "content", "application/json", "schema"]
    pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)
    validator = jsonschema.Draft4Validator(
        {"$ref": f"urn:stripe-spec3#/{pointer}"}, registry=_spec_registry()
    )
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(body)]


needs_spec = pytest.mark.skipif(not SPEC_PATH.exists(), reason=f"Stripe OpenAPI document not at {SPEC_PATH}")


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(StripeEmulator({"read_requests_per_second": 10_000}), ReceiverEmulator())


@pytest.fixture
def api(box: Sandbox, https: requests.Session) -> Iterator[Running]:
    running = box["stripe"]
    running.emulator.reset()
    https.headers.update(AUTH)
    yield running
    running.emulator.settings.update({"read_requests_per_second": 10_000, "rate_limit_window_s": 1.0})


def _get(https: requests.Session, api: Running, path: str, **params: Any) -> requests.Response:
    return https.get(f"{api.base_url}{path}", params=params, timeout=5)


def _generate(https: requests.Session, api: Running, resource: str, count: int, step: int = 60) -> list[str]:
    response = https.post(
        f"{api.admin_url}/generate/{resource}", params={"count": count, "start": T0, "step": step}, timeout=5
    )
    response.raise_for_status()
    ids: list[str] = response.json()["ids"]
    return ids


@needs_spec
def test_stripe_own_fixtures_pass_the_schema_check() -> None:
    """The validator itself: Stripe's fixtures pass and a broken object fails."""
    fixtures = json.loads((SPEC_PATH.parent / "fixtures3.json").read_text(encoding="utf-8"))["resources"]
    assert _schema_errors("/v1/charges/{charge}", "200", fixtures["charge"]) == []
    assert _schema_errors("/v1/charges/{charge}", "200", {**fixtures["charge"], "amount": "1.00"})


@needs_spec
@pytest.mark.parametrize("resource", RESOURCES)
def test_list_and_retrieve_validate_against_stripes_openapi(
    api: Running, https: requests.Session, resource: str
) -> None:
    ids = _generate(https, api, resource, 12)
    listed = _get(https, api, f"/v1/{resource}", limit=5, **{"created[gte]": T0})
    assert listed.status_code == 200
    assert _schema_errors(f"/v1/{resource}", "200", listed.json()) == []
    param = {"charges": "charge", "payment_intents": "intent", "refunds": "refund", "customers": "customer"}
    item_path = f"/v1/{resource}/{{{param.get(resource, 'id')}}}"
    one = _get(https, api, f"/v1/{resource}/{ids[3]}")
    assert one.status_code == 200
    assert one.json()["id"] == ids[3]
    assert _schema_errors(item_path, "200", one.json()) == []
    missing = _get(https, api, f"/v1/{resource}/nope_1")
    assert missing.status_code == 404
    assert _schema_errors(item_path, "default", missing.json()) == []


@needs_spec
def test_seeded_partial_records_are_completed_into_valid_objects(
    api: Running, https: requests.Session
) -> None:
    records = [
        {
            "id": "ch_seed1",
            "amount": 2500,
            "currency": "usd",
            "created": T0,
            "billing_details": {"email": "a@x.org"},
        },
        {"id": "ch_seed2", "amount": 1000, "currency": "gbp", "created": T0 + 10, "customer": "cus_seed"},
    ]
    loaded = https.post(f"{api.admin_url}/seed/charges", json=records, timeout=5)
    assert loaded.json() == {"loaded": 2}
    https.post(
        f"{api.admin_url}/seed/customers",
        json=[{"id": "cus_seed", "created": T0, "email": "b@x.org"}],
        timeout=5,
    )
    body = _get(https, api, "/v1/charges").json()
    assert [c["id"] for c in body["data"]] == ["ch_seed2", "ch_seed1"]
    assert body["data"][1]["billing_details"]["email"] == "a@x.org"
    assert body["data"][1]["object"] == "charge"
    assert body["data"][1]["refunds"]["url"] == "/v1/charges/ch_seed1/refunds"
    assert _schema_errors("/v1/charges", "200", body) == []
    unknown = https.post(f"{api.admin_url}/seed/invoices", json=[], timeout=5)
    assert unknown.status_code == 404


def test_paging_is_newest_first_with_cursors_and_has_more(api: Running, https: requests.Session) -> None:
    ids = _generate(https, api, "charges", 25)
    newest_first = list(reversed(ids))
    seen: list[str] = []
    pages: list[bool] = []
    params: dict[str, Any] = {"limit": 10}
    while True:
        body = _get(https, api, "/v1/charges", **params).json()
        assert body["object"] == "list"
        assert body["url"] == "/v1/charges"
        seen += [c["id"] for c in body["data"]]
        pages.append(body["has_more"])
        if not body["has_more"]:
            break
        params["starting_after"] = body["data"][-1]["id"]
    assert seen == newest_first
    assert pages == [True, True, False]
    back = _get(https, api, "/v1/charges", limit=3, ending_before=newest_first[10]).json()
    assert [c["id"] for c in back["data"]] == newest_first[7:10]
    assert back["has_more"] is True
    top = _get(https, api, "/v1/charges", limit=5, ending_before=newest_first[3]).json()
    assert ([c["id"] for c in top["data"]], top["has_more"]) == (newest_first[:3], False)
    assert len(_get(https, api, "/v1/charges").json()["data"]) == 10, "default limit is 10"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"created[gte]": T0 + 120}, [4, 3, 2], id="gte"),
        pytest.param({"created[gt]": T0 + 120}, [4, 3], id="gt"),
        pytest.param({"created[lte]": T0 + 60}, [1, 0], id="lte"),
        pytest.param({"created[lt]": T0 + 60}, [0], id="lt"),
        pytest.param({"created[gte]": T0 + 60, "created[lt]": T0 + 180}, [2, 1], id="range"),
        pytest.param({"created": T0 + 120}, [2], id="exact"),
    ],
)
def test_created_filters(
    api: Running, https: requests.Session, params: dict[str, int], expected: list[int]
) -> None:
    ids = _generate(https, api, "payment_intents", 5)
    body = _get(https, api, "/v1/payment_intents", **params).json()
    assert [p["id"] for p in body["data"]] == [ids[i] for i in expected]


def test_cursor_and_created_filter_combine(api: Running, https: requests.Session) -> None:
    ids = _generate(https, api, "charges", 10)
    first = _get(https, api, "/v1/charges", limit=2, **{"created[gte]": T0 + 300}).json()
    assert [c["id"] for c in first["data"]] == [ids[9], ids[8]]
    rest = _get(
        https, api, "/v1/charges", limit=10, starting_after=ids[8], **{"created[gte]": T0 + 300}
    ).json()
    assert ([c["id"] for c in rest["data"]], rest["has_more"]) == ([ids[7], ids[6], ids[5]], False)


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        pytest.param(
            {"limit": 101}, 400, {"param": "limit", "message": "Invalid limit: must be between 1 and 100"}
        ),
        pytest.param({"limit": 0}, 400, {"param": "limit"}),
        pytest.param({"limit": "ten"}, 400, {"param": "limit", "message": "Invalid integer: ten"}),
        pytest.param({"created[gte]": "soon"}, 400, {"param": "created[gte]"}),
        pytest.param({"created[after]": 1}, 400, {"code": "parameter_unknown", "param": "created[after]"}),
        pytest.param(
            {"colour": "red"},
            400,
            {"code": "parameter_unknown", "message": "Received unknown parameter: colour"},
        ),
        pytest.param(
            {"starting_after": "ch_missing"}, 404, {"code": "resource_missing", "param": "starting_after"}
        ),
        pytest.param({"starting_after": "ch_a", "ending_before": "ch_b"}, 404, {"code": "resource_missing"}),
    ],
)
def test_bad_list_parameters_answer_in_stripes_error_shape(
    api: Running, https: requests.Session, params: dict[str, Any], status: int, error: dict[str, str]
) -> None:
    response = _get(https, api, "/v1/charges", **params)
    assert response.status_code == status
    body = response.json()["error"]
    assert body["type"] == "invalid_request_error"
    assert {k: body.get(k) for k in error} == error
    assert response.headers["Request-Id"].startswith("req_")


def test_both_cursors_is_an_error(api: Running, https: requests.Session) -> None:
    ids = _generate(https, api, "charges", 3)
    response = _get(https, api, "/v1/charges", starting_after=ids[0], ending_before=ids[2])
    assert response.status_code == 400
    assert "ending_before, starting_after" in response.json()["error"]["message"]


def test_max_page_size_is_a_setting(api: Running, https: requests.Session) -> None:
    _generate(https, api, "customers", 5)
    api.emulator.settings["max_page_size"] = 3
    try:
        assert _get(https, api, "/v1/customers", limit=4).status_code == 400
        assert len(_get(https, api, "/v1/customers", limit=3).json()["data"]) == 3
    finally:
        api.emulator.settings["max_page_size"] = 100


def test_missing_and_invalid_keys_are_401(api: Running, https: requests.Session) -> None:
    url = f"{api.base_url}/v1/charges"
    none = requests.get(url, verify=https.verify, timeout=5)
    assert none.status_code == 401
    assert none.json()["error"]["message"].startswith("You did not provide an API key")
    assert none.json()["error"]["type"] == "invalid_request_error"
    bad = requests.get(
        url, headers={"Authorization": "Bearer sk_test_wrongwrongwrong1234"}, verify=https.verify, timeout=5
    )
    assert bad.status_code == 401
    assert bad.json()["error"]["message"] == "Invalid API Key provided: sk_test_****1234"
    assert bad.headers["WWW-Authenticate"] == 'Basic realm="Stripe"'
    basic = requests.get(url, auth=(KEY, ""), verify=https.verify, timeout=5)
    assert basic.status_code == 200
    restricted = requests.get(
        url, headers={"Authorization": "Bearer rk_test_sandbox"}, verify=https.verify, timeout=5
    )
    assert restricted.status_code == 200


def test_read_rate_limit_is_429_rate_limit_and_recovers(api: Running, https: requests.Session) -> None:
    api.emulator.settings.update({"read_requests_per_second": 10, "rate_limit_window_s": 0.5})
    statuses = [_get(https, api, "/v1/charges").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    limited = _get(https, api, "/v1/charges")
    assert limited.json()["error"]["code"] == "rate_limit"
    assert limited.json()["error"]["type"] == "invalid_request_error"
    time.sleep(0.55)
    assert _get(https, api, "/v1/charges").status_code == 200


def test_default_rate_limit_is_25_reads_per_second() -> None:
    assert StripeEmulator.default_settings["read_requests_per_second"] == 25


def test_list_filters_by_reference_email_and_event_type(api: Running, https: requests.Session) -> None:
    emulator = api.emulator
    assert isinstance(emulator, StripeEmulator)
    seed = emulator.store
    seed(
        "charges",
        [
            {"id": "ch_1", "customer": "cus_1", "created": T0},
            {"id": "ch_2", "customer": "cus_2", "created": T0},
        ],
    )
    seed(
        "refunds",
        [{"id": "re_1", "charge": "ch_1", "created": T0}, {"id": "re_2", "charge": "ch_2", "created": T0}],
    )
    seed(
        "customers",
        [
            {"id": "cus_1", "email": "a@x.org", "created": T0},
            {"id": "cus_2", "email": "b@x.org", "created": T0},
        ],
    )
    seed(
        "events",
        [
            {"id": "evt_1", "type": "charge.refunded", "created": T0},
            {"id": "evt_2", "type": "customer.created", "created": T0},
        ],
    )

    def ids(path: str, **params: str) -> list[str]:
        return [o["id"] for o in _get(https, api, path, **params).json()["data"]]

    assert ids("/v1/charges", customer="cus_2") == ["ch_2"]
    assert ids("/v1/refunds", charge="ch_1") == ["re_1"]
    assert ids("/v1/customers", email="b@x.org") == ["cus_2"]
    assert ids("/v1/events", type="charge.*") == ["evt_1"]
    assert ids("/v1/events", **{"types[]": "customer.created"}) == ["evt_2"]


def test_expand_replaces_ids_with_stored_objects(api: Running, https: requests.Session) -> None:
    emulator = api.emulator
    assert isinstance(emulator, StripeEmulator)
    emulator.store("customers", [{"id": "cus_x", "email": "x@x.org", "created": T0}])
    emulator.store("charges", [{"id": "ch_x", "customer": "cus_x", "created": T0}])
    listed = _get(https, api, "/v1/charges", **{"expand[]": "data.customer"}).json()
    assert listed["data"][0]["customer"]["email"] == "x@x.org"
    one = _get(https, api, "/v1/charges/ch_x", **{"expand[]": "customer"}).json()
    assert one["customer"]["id"] == "cus_x"
    assert _get(https, api, "/v1/charges/ch_x").json()["customer"] == "cus_x"


def test_unrecognized_url_is_404_in_stripes_shape(api: Running, https: requests.Session) -> None:
    response = _get(https, api, "/v1/widgets")
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/widgets)")


@pytest.mark.parametrize(
    ("rule", "status", "check"),
    [
        pytest.param({"kind": "expired_token"}, 401, {"code": "api_key_expired"}, id="expired"),
        pytest.param({"kind": "status", "status": 500}, 500, {"type": "api_error"}, id="500"),
        pytest.param({"kind": "status", "status": 429}, 429, {"code": "rate_limit"}, id="429"),
    ],
)
def test_injected_faults_answer_in_stripes_error_shape(
    api: Running, https: requests.Session, rule: dict[str, Any], status: int, check: dict[str, str]
) -> None:
    https.put(f"{api.admin_url}/faults", json=[{**rule, "path": "^/v1/charges$", "count": 1}], timeout=5)
    response = _get(https, api, "/v1/charges")
    assert response.status_code == status
    assert {k: response.json()["error"].get(k) for k in check} == check
    if SPEC_PATH.exists():
        assert _schema_errors("/v1/charges", "default", response.json()) == []
    assert _get(https, api, "/v1/charges").status_code == 200


@pytest.fixture
def hooked(box: Sandbox, api: Running, sandbox_tls: TlsFiles) -> Iterator[Running]:
    receiver = box["receiver"]
    receiver.emulator.reset()
    api.emulator.settings.update(
        {
            "webhook_endpoint_url": f"{receiver.base_url}/hooks/stripe",
            "webhook_ca_cert": str(sandbox_tls.ca_cert),
        }
    )
    yield receiver
    api.emulator.settings.update(
        {"webhook_endpoint_url": "", "webhook_ca_cert": "", "webhook_previous_secret": ""}
    )


def test_events_are_delivered_signed_and_verify_with_stripes_sdk(
    api: Running, hooked: Running, https: requests.Session
) -> None:
    answer = https.post(
        f"{api.admin_url}/events",
        json={"type": "charge.succeeded", "object": {"object": "charge", "id": "ch_hook", "amount": 4200}},
        timeout=10,
    ).json()
    assert answer["delivery"]["status"] == 200
    (delivery,) = hooked.emulator.snapshot()["deliveries"]
    payload, header = delivery["text"], delivery["headers"]["stripe-signature"]
    parts = dict(p.split("=", 1) for p in header.split(","))
    signed = f"{parts['t']}.{payload}".encode()
    assert parts["v1"] == hmac.new(b"whsec_sandbox", signed, hashlib.sha256).hexdigest()
    event = stripe.Webhook.construct_event(payload, header, "whsec_sandbox")
    assert (event.id, event.type, event.data.object.id) == (
        answer["event"]["id"],
        "charge.succeeded",
        "ch_hook",
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_other")
    assert _get(https, api, "/v1/charges/ch_hook").json()["amount"] == 4200
    listed = _get(https, api, "/v1/events", type="charge.succeeded").json()["data"]
    assert [e["id"] for e in listed] == [event.id]
    assert listed[0]["pending_webhooks"] == 0


def test_events_can_be_redelivered_and_signed_with_a_rolling_secret(
    api: Running, hooked: Running, https: requests.Session
) -> None:
    api.emulator.settings["webhook_previous_secret"] = "whsec_old"
    event = https.post(
        f"{api.admin_url}/events",
        json={"type": "customer.created", "object": {"object": "customer"}},
        timeout=10,
    ).json()["event"]
    again = https.post(f"{api.admin_url}/events/{event['id']}/deliver", timeout=10).json()
    assert again["status"] == 200
    first, second = hooked.emulator.snapshot()["deliveries"]
    assert json.loads(first["text"])["id"] == json.loads(second["text"])["id"] == event["id"]
    for secret in ("whsec_sandbox", "whsec_old"):
        stripe.Webhook.construct_event(second["text"], second["headers"]["stripe-signature"], secret)
    assert second["headers"]["stripe-signature"].count("v1=") == 2


def test_failed_deliveries_are_recorded(api: Running, hooked: Running, https: requests.Session) -> None:
    hooked.emulator.settings["respond_status"] = {"stripe": 500}
    try:
        answer = https.post(
            f"{api.admin_url}/events",
            json={"type": "charge.refunded", "object": {"object": "charge"}},
            timeout=10,
        ).json()
    finally:
        hooked.emulator.settings["respond_status"] = {}
    assert answer["delivery"]["status"] == 500
    assert answer["event"]["pending_webhooks"] == 1
    assert api.emulator.snapshot()["deliveries"][0]["status"] == 500
