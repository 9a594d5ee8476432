"""Sync health on real data: the summary's counts, open circuits with what to do, and dead letters
listed read-only with the commands that act on them and without payloads or vendor messages."""

from __future__ import annotations

import re
from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.resolve.test_donors_support import JANE
from tests.web.dashboard.conftest import Seeded, Tokens, seed_health

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def _rows(html: str, table_id: str) -> list[str]:
    """Return the body rows of the table with this id (as HTML)."""
    found = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert found, f"no table {table_id}"
    return re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)


def test_the_summary_counts_what_is_open(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    body = make_client(seeded.url, bearer=tokens.valid("vic", "viewer")).get("/api/summary").json()
    assert body["reviews"] == {"pending": 1, "deferred": 0}
    assert body["dead_letters"] == {
        "open": 2,
        "by_destination": {"hubspot": 1, "salesforce": 1},
        "by_error_class": {"auth": 1, "validation": 1},
    }
    circuits = body["circuits"]
    assert circuits["open"] == 2
    assert [(c["destination"], c["state"]) for c in circuits["destinations"]] == [
        ("mailchimp", "half_open"),
        ("hubspot", "open"),
    ]
    assert circuits["destinations"][1]["last_error_class"] == "transient"
    assert circuits["destinations"][1]["next_probe_at"] is not None


def test_the_overview_shows_circuits_reviews_and_dead_letters(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    page = make_client(seeded.url, cookie=tokens.valid("vic", "viewer")).get("/")
    assert page.status_code == 200
    circuits = _rows(page.text, "circuits")
    assert [re.search(r"<td>(\w+)</td>", r).group(1) for r in circuits] == ["mailchimp", "hubspot"]  # type: ignore[union-attr]
    assert "rate limit" in circuits[0] or "quota" in circuits[0]  # the class's remediation text
    [review] = _rows(page.text, "reviews")
    assert f'href="/reviews/{seeded.review_id}"' in review
    assert seeded.left in review
    assert seeded.right in review
    letters = _rows(page.text, "dead-letters")
    assert len(letters) == 2  # the open ones, oldest first
    assert "salesforce / gift" in letters[0]
    assert "hubspot / contact" in letters[1]
    assert "signed in as vic" in page.text


def test_dead_letters_are_listed_with_commands_and_without_payloads(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(seeded.url, bearer=tokens.valid("vic", "viewer"))
    page = client.get("/dead-letters")
    assert page.status_code == 200
    rows = _rows(page.text, "dead-letters")
    assert len(rows) == 2
    first_id = re.search(r"<td>(\d+)</td>", rows[0]).group(1)  # type: ignore[union-attr]
    assert f"donor-sync dlq replay {first_id}" in rows[0]
    assert f"donor-sync dlq discard {first_id} --note" in rows[0]
    assert "INVALID_SESSION_ID" in rows[0]
    assert "remediation for auth" in rows[0]
    assert 'href="/dags/dlq_replay"' in page.text
    # neither the payload nor the vendor's message (which may echo donor values) is shown
    assert "secret.donor@example.org" not in page.text
    assert "Payloadname" not in page.text
    assert JANE["email"] not in page.text
    # filters
    validation = _rows(client.get("/dead-letters?error_class=validation").text, "dead-letters")
    assert len(validation) == 1
    assert "INVALID_EMAIL" in validation[0]
    everything = _rows(client.get("/dead-letters?status=all").text, "dead-letters")
    assert len(everything) == 3
    assert "cli:sam" in everything[0]
    refused = client.get("/dead-letters?error_class=<b>bogus</b>")
    assert refused.status_code == 400
    assert "<b>bogus" not in refused.text  # the echoed filter is escaped


def test_circuits_page_lists_open_and_half_open_breakers_only(
    db: psycopg.Connection, db_url: str, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(db_url, bearer=tokens.valid())
    empty = client.get("/circuits")
    assert "Every circuit is closed" in empty.text
    seed_health(db)
    rows = _rows(client.get("/circuits").text, "circuits")
    assert len(rows) == 2
    assert 'class="state-open">open<' in rows[1]
    assert "donor-sync outbox status -d hubspot" in rows[1]
    assert "salesforce" not in "".join(rows)
