"""Who gets in: every route refuses a missing, forged, expired, foreign, unsigned or revoked token
with 401 and no data. A viewer reads but neither sees donors nor decides. A change sent with the
login cookie needs the form's CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from donor_sync.db import connect
from tests.resolve.test_donors_support import JANE
from tests.web.dashboard.conftest import CSRF_SECRET, Seeded, Tokens, build_app

#: every route of the app: (method, path template, request body)
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/", {}),
    ("GET", "/circuits", {}),
    ("GET", "/dead-letters", {}),
    ("GET", "/reviews", {}),
    ("GET", "/reviews/{review_id}", {}),
    ("POST", "/reviews/{review_id}/decision", {"data": {"decision": "approve"}}),
    ("POST", "/api/reviews/{review_id}/decision", {"json": {"decision": "approve"}}),
    ("GET", "/api/summary", {}),
    ("GET", "/api/health", {}),
]

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

#: what must never appear in a refusal: the donor's name, email and the pair's details
LEAKS = (JANE["first_name"], JANE["last_name"], JANE["email"], "INVALID_EMAIL", "hubspot", "score")


def _queue_state(url: str, review_id: int) -> tuple[Any, ...]:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT r.status, (SELECT count(*) FROM sync.audit_log WHERE action IN ('pii.accessed',"
            " 'review.decided')), (SELECT count(*) FROM core.donors WHERE merged_into IS NOT NULL)"
            " FROM sync.review_queue r WHERE review_id = %s",
            (review_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def _call(client: TestClient, method: str, path: str, body: dict[str, Any], seeded: Seeded) -> Any:
    return client.request(method, path.format(review_id=seeded.review_id), **body)


def test_the_parametrized_routes_are_every_route_of_the_app(seeded: Seeded) -> None:
    from donor_sync.web.dashboard.auth import CsrfTokens

    app = build_app(seeded.url, CsrfTokens(CSRF_SECRET))
    served = {(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods}
    assert served == {(m, p) for m, p, _ in ROUTES}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_route_refuses_requests_without_a_valid_token(
    method: str,
    path: str,
    body: dict[str, Any],
    seeded: Seeded,
    tokens: Tokens,
    make_client: Callable[..., TestClient],
) -> None:
    before = _queue_state(seeded.url, seeded.review_id)
    attempts: dict[str, TestClient] = {"no token": make_client(seeded.url)}
    for name, token in tokens.bad().items():
        attempts[f"{name} bearer"] = make_client(seeded.url, bearer=token)
        attempts[f"{name} cookie"] = make_client(seeded.url, cookie=token)
    attempts["basic auth"] = make_client(seeded.url)
    attempts["basic auth"].headers["Authorization"] = "Basic YWRtaW46YWRtaW4="
    for name, client in attempts.items():
        response = _call(client, method, path, body, seeded)
        assert response.status_code == 401, (name, response.status_code, response.text[:300])
        assert response.headers["www-authenticate"] == "Bearer", name
        assert not any(leak in response.text for leak in LEAKS), (name, response.text[:300])
        if path.startswith("/api/"):
            assert response.json()["error"].startswith("token_"), name
        else:
            assert response.headers["content-type"].startswith("text/html"), name
            assert "Sign in to Airflow" in response.text, name
    assert _queue_state(seeded.url, seeded.review_id) == before, "a refused request changed something"


def test_each_kind_of_bad_token_is_named_in_the_refusal(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    codes = {
        name: make_client(seeded.url, bearer=token).get("/api/summary").json()["error"]
        for name, token in tokens.bad().items()
    }
    assert codes == {
        "garbage": "token_invalid",
        "forged": "token_invalid",
        "expired": "token_expired",
        "other_audience": "token_invalid",
        "unsigned": "token_invalid",
    }
    assert make_client(seeded.url).get("/api/summary").json()["error"] == "token_missing"


def test_a_browser_without_a_login_is_sent_to_airflows_login_page_and_back(
    seeded: Seeded, make_client: Callable[..., TestClient]
) -> None:
    response = make_client(seeded.url).get("/reviews?status=deferred", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login?next=%2Freviews%3Fstatus%3Ddeferred"
    # an API client asking for JSON is not redirected
    api = make_client(seeded.url).get("/api/summary", headers={"Accept": "text/html"})
    assert api.status_code == 401


def test_a_valid_token_in_the_header_or_the_cookie_is_accepted_and_a_revoked_one_is_not(
    seeded: Seeded, tokens: Tokens, auth_manager: Any, make_client: Callable[..., TestClient]
) -> None:
    token = tokens.valid()
    for client in (make_client(seeded.url, bearer=token), make_client(seeded.url, cookie=token)):
        response = client.get("/api/summary")
        assert response.status_code == 200, response.text
        assert response.json()["reviews"]["pending"] == 1
    auth_manager.revoke_token(token)  # what logging out of Airflow does
    revoked = make_client(seeded.url, cookie=token).get("/api/summary")
    assert (revoked.status_code, revoked.json()["error"]) == (401, "token_invalid")


def test_an_explicit_bad_header_wins_over_a_good_cookie(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(seeded.url, bearer=tokens.forged(), cookie=tokens.valid())
    assert client.get("/api/summary").status_code == 401


def test_a_viewer_reads_the_dashboard_but_neither_sees_donors_nor_decides(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    before = _queue_state(seeded.url, seeded.review_id)
    viewer = make_client(seeded.url, bearer=tokens.valid("vic", "viewer"))
    overview = viewer.get("/")
    assert overview.status_code == 200
    assert f'href="/reviews/{seeded.review_id}"' in overview.text
    assert JANE["email"] not in overview.text  # the list shows ids and scores, never donors
    pair = viewer.get(f"/reviews/{seeded.review_id}")
    assert pair.status_code == 403
    assert JANE["email"] not in pair.text
    decided = viewer.post(f"/api/reviews/{seeded.review_id}/decision", json={"decision": "reject"})
    assert (decided.status_code, decided.json()["error"]) == (403, "forbidden")
    assert _queue_state(seeded.url, seeded.review_id) == before
    # a user without any role is refused everything
    nobody = make_client(seeded.url, bearer=tokens.valid("nora", ""))
    assert nobody.get("/").status_code == 403


def test_a_change_sent_with_the_login_cookie_needs_the_forms_csrf_token(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    before = _queue_state(seeded.url, seeded.review_id)
    alex = make_client(seeded.url, cookie=tokens.valid("alex", "admin"))
    form_path = f"/reviews/{seeded.review_id}/decision"
    api_path = f"/api/reviews/{seeded.review_id}/decision"
    # what a cross-site page can send: the browser adds the cookie, the page knows no token
    assert alex.post(form_path, data={"decision": "approve"}).status_code == 403
    assert alex.post(api_path, json={"decision": "approve"}).status_code == 403
    # a token of another user, a tampered one, an old one
    from donor_sync.web.dashboard.auth import CsrfTokens

    other = CsrfTokens(CSRF_SECRET).issue("mallory")
    mine = CsrfTokens(CSRF_SECRET).issue("alex")
    stale = CsrfTokens(CSRF_SECRET, clock=lambda: 1_000_000_000.0).issue("alex")
    for bad in (other, mine[:-1] + ("0" if mine[-1] != "0" else "1"), stale, "", "123.abc"):
        refused = alex.post(form_path, data={"decision": "approve", "csrf_token": bad})
        assert (refused.status_code, 'data-code="csrf_failed"' in refused.text) == (403, True), bad
        refused_api = alex.post(api_path, json={"decision": "approve"}, headers={"X-CSRF-Token": bad})
        assert refused_api.json()["error"] == "csrf_failed"
    assert _queue_state(seeded.url, seeded.review_id) == before


def test_responses_carry_security_headers(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    for client in (make_client(seeded.url), make_client(seeded.url, bearer=tokens.valid())):
        response = client.get("/")
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "frame-ancestors 'self'" in csp
        assert "script-src" not in csp  # no script is allowed at all
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
