"""The review queue on the dashboard, on a real Postgres: a pair shown with both records (audited,
escaped), approved (merged), rejected (never proposed again) and deferred (kept), each decision
audited as the Airflow user."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.resolve.test_donors_support import JANE, donor_of, new_batch, run, stage
from tests.resolve.test_review import MARCUS, review_pair
from tests.web.dashboard.conftest import Tokens, audit_rows, csrf_token_in

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

SCRIPT_NAME = "<script>alert(1)</script>"


def _status(db: psycopg.Connection, review_id: int) -> tuple[str, str | None, str | None]:
    row = db.execute(
        "SELECT status, decision, decided_by FROM sync.review_queue WHERE review_id = %s", (review_id,)
    ).fetchone()
    db.commit()
    assert row is not None
    return row[0], row[1], row[2]


def test_a_pair_shows_both_records_escaped_and_each_view_is_audited(
    db: psycopg.Connection, db_url: str, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    person = {**MARCUS, "first_name": SCRIPT_NAME}
    left, right, review_id = review_pair(db, person, "x")
    alex = make_client(db_url, cookie=tokens.valid("alex", "admin"))

    listing = alex.get("/reviews")
    assert listing.status_code == 200
    assert f'href="/reviews/{review_id}"' in listing.text
    assert left in listing.text
    assert right in listing.text
    assert MARCUS["email"] not in listing.text
    assert "alert(1)" not in listing.text
    assert audit_rows(db, "pii.accessed") == []

    page = alex.get(f"/reviews/{review_id}")
    assert page.status_code == 200, page.text
    # both records side by side: the first email and the second record's own email and phone
    assert MARCUS["email"] in page.text
    assert "x@other.example.com" in page.text
    assert "Whitfield" in page.text
    # the name is data, never markup: escaped in the golden fields and in the records' JSON
    assert SCRIPT_NAME not in page.text
    assert "<script" not in page.text
    assert html.escape(SCRIPT_NAME, quote=True) in page.text
    # the explanation: per-comparison contributions
    assert 'id="contributions"' in page.text
    assert "last_name" in page.text
    assert page.text.count('name="decision"') == 3

    alex.get(f"/reviews/{review_id}")
    views = audit_rows(db, "pii.accessed")
    assert [(actor, object_id) for actor, object_id, _ in views] == [("airflow:alex", str(review_id))] * 2
    details = views[0][2]
    assert details["via"] == "dashboard"
    assert sorted(details["donor_ids"]) == sorted([left, right])
    assert "Whitfield" not in str(details)
    assert MARCUS["email"] not in str(details)


def test_approve_from_the_page_merges_the_pair_and_is_audited(
    db: psycopg.Connection, db_url: str, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    left, right, review_id = review_pair(db, JANE, "j")
    alex = make_client(db_url, cookie=tokens.valid("alex", "admin"))
    token = csrf_token_in(alex.get(f"/reviews/{review_id}").text)

    response = alex.post(
        f"/reviews/{review_id}/decision",
        data={"decision": "approve", "note": "same person, new email", "csrf_token": token},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/reviews?decided={review_id}&decision=approve&outcome=decided"
    after = alex.get(response.headers["location"])
    assert f"Review {review_id} approved: the two donors are merged." in after.text
    assert f'href="/reviews/{review_id}"' not in after.text  # decided: gone from the open queue

    merged = db.execute(
        "SELECT donor_id::text, merged_into::text FROM core.donors WHERE donor_id = ANY(%s::uuid[])",
        ([left, right],),
    ).fetchall()
    db.commit()
    survivors = {d for d, into in merged if into is None}
    assert len(survivors) == 1
    assert {into for _, into in merged if into is not None} == survivors
    assert _status(db, review_id) == ("decided", "approve", "airflow:alex")
    [(actor, object_id, details)] = audit_rows(db, "review.decided")
    assert (actor, object_id, details["decision"], details["status"]) == (
        "airflow:alex",
        str(review_id),
        "approve",
        "decided",
    )
    assert details["with_note"] is True
    assert [a for a, _, _ in audit_rows(db, "donor.merged")] == ["airflow:alex"]
    # the page of a decided review shows no form, and the form cannot decide it twice
    assert 'name="decision"' not in alex.get(f"/reviews/{review_id}").text
    again = alex.post(f"/reviews/{review_id}/decision", data={"decision": "reject", "csrf_token": token})
    assert again.status_code == 409
    assert _status(db, review_id) == ("decided", "approve", "airflow:alex")


def test_reject_through_the_api_is_never_proposed_again(
    db: psycopg.Connection, db_url: str, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    _left, right, review_id = review_pair(db, JANE, "j")
    # a script with a Bearer token: no CSRF token needed (a header cannot be sent cross-site)
    client = make_client(db_url, bearer=tokens.valid("sam", "user"))
    response = client.post(f"/api/reviews/{review_id}/decision", json={"decision": "reject", "note": "twins"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "review_id": review_id,
        "decision": "reject",
        "status": "decided",
        "survivor_id": None,
        "merged_donor_id": None,
        "decision_id": None,
    }
    assert _status(db, review_id) == ("decided", "reject", "airflow:sam")
    assert [(a, o) for a, o, _ in audit_rows(db, "review.decided")] == [("airflow:sam", str(review_id))]
    # another record of the second donor arrives: it joins that donor, and the pair is not queued again
    stage(
        db,
        batch := new_batch(),
        "stripe",
        "cus_j3",
        **{**JANE, "email": "j@other.example.com", "phone": "+16175550999"},
    )
    assert run(db, batch).review_queued == 0
    assert donor_of(db, "stripe", "cus_j3") == right
    assert client.get("/api/summary").json()["reviews"] == {"pending": 0, "deferred": 0}
    assert f'href="/reviews/{review_id}"' not in client.get("/reviews").text
    assert db.execute("SELECT count(*) FROM core.donors WHERE merged_into IS NOT NULL").fetchone() == (0,)
    # a bad decision is refused before anything is touched
    bad = client.post(f"/api/reviews/{review_id}/decision", json={"decision": "merge"})
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")
    missing = client.post("/api/reviews/999999/decision", json={"decision": "reject"})
    assert (missing.status_code, missing.json()["error"]) == (404, "no_review")


def test_defer_keeps_the_pair_in_the_queue(
    db: psycopg.Connection, db_url: str, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    _, _, review_id = review_pair(db, JANE, "j")
    alex = make_client(db_url, cookie=tokens.valid("alex", "op"))
    token = csrf_token_in(alex.get(f"/reviews/{review_id}").text)
    response = alex.post(f"/reviews/{review_id}/decision", data={"decision": "defer", "csrf_token": token})
    assert response.status_code == 303
    assert _status(db, review_id) == ("deferred", None, None)
    listing = alex.get("/reviews")
    assert f'href="/reviews/{review_id}"' in listing.text
    assert "deferred" in listing.text
    summary: dict[str, Any] = alex.get("/api/summary").json()
    assert summary["reviews"] == {"pending": 0, "deferred": 1}
    [(actor, _, details)] = audit_rows(db, "review.decided")
    assert (actor, details["decision"], details["status"]) == ("airflow:alex", "defer", "deferred")
    # still open: it can be decided later
    token = csrf_token_in(alex.get(f"/reviews/{review_id}").text)
    alex.post(f"/reviews/{review_id}/decision", data={"decision": "reject", "csrf_token": token})
    assert _status(db, review_id) == ("decided", "reject", "airflow:alex")
