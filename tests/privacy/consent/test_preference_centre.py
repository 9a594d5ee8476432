"""The preference centre over HTTP (TestClient): signed links, reads, changes, refusals."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from donor_sync.privacy.consent.links import LinkRefused, sign_link, verify_link
from donor_sync.privacy.keys import StaticKeys
from donor_sync.web.preferences.app import create_app
from donor_sync.web.preferences.config import load_preference_settings
from tests.privacy.consent.support import T0, donor, event, merge, refresh

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)
OLD_KEY = base64.b64encode(b"k" * 32).decode()
NEW_KEY = base64.b64encode(b"n" * 32).decode()
KEYS = StaticKeys({"links": {"current": "l2", "keys": {"l1": OLD_KEY, "l2": NEW_KEY}}})
_RING = KEYS.ring("links")
assert _RING is not None
RING = _RING


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(db_url: str, clock: Clock) -> TestClient:
    return TestClient(create_app(load_preference_settings(), conninfo=db_url, keys=KEYS, clock=clock))


def _token(donor_id: str, days: int = 30) -> str:
    return sign_link(RING, donor_id, expires_at=NOW + timedelta(days=days))


def _choices(body: dict[str, Any]) -> dict[tuple[str, str], str | None]:
    return {(c["purpose"], c["channel"]): c["status"] for c in body["choices"]}


def test_a_valid_link_reads_the_choices_and_a_change_records_events(
    db: psycopg.Connection, client: TestClient
) -> None:
    d = donor(db, first_name="Jane", email="jane@example.org")
    event(db, d, "marketing", "email", "soft_opt_in", T0)
    refresh(db, d)
    db.commit()
    token = _token(d)

    read = client.get(f"/preferences/{token}")
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["form_version"] == "2026-01"
    assert _choices(body)[("marketing", "email")] == "soft_opt_in"
    assert _choices(body)[("sharing", "all")] is None
    assert "Jane" not in read.text, "no PII in the preference centre"
    assert "jane@" not in read.text

    changed = client.post(
        f"/preferences/{token}",
        json={
            "choices": [
                {"purpose": "marketing", "channel": "email", "status": "opt_out"},
                {"purpose": "fundraising", "channel": "sms", "status": "opt_in"},
                {"purpose": "sharing", "channel": "all", "status": "opt_out"},
            ]
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["recorded"] == 3
    after = _choices(changed.json())
    assert after[("marketing", "email")] == "opt_out"
    assert after[("fundraising", "sms")] == "opt_in"
    assert after[("sharing", "all")] == "opt_out"
    events = db.execute(
        "SELECT purpose, channel, status, lawful_basis, source, evidence, occurred_at"
        " FROM core.consent_events"
        " WHERE donor_id = %s AND source = 'preference_centre' ORDER BY purpose",
        [d],
    ).fetchall()
    assert [(e[0], e[1], e[2], e[3]) for e in events] == [
        ("fundraising", "sms", "opt_in", "consent"),
        ("marketing", "email", "opt_out", None),
        ("sharing", "all", "opt_out", None),
    ]
    assert events[0][5]["form_version"] == "2026-01"
    assert events[0][5]["form_text"].startswith("Choose how we may contact you")
    assert token not in str(events[0][5]), "the link is never stored"
    assert events[0][6] == NOW
    state = db.execute(
        "SELECT status FROM core.consent_state WHERE donor_id = %s AND purpose = 'sharing'"
        " AND channel = 'mail'",
        [d],
    ).fetchone()
    assert state == ("opt_out",), "an 'all' choice covers every channel"

    # Sending the same choices again records nothing new.
    again = client.post(
        f"/preferences/{token}",
        json={"choices": [{"purpose": "marketing", "channel": "email", "status": "opt_out"}]},
    )
    assert again.json()["recorded"] == 0
    actions = [
        r[0]
        for r in db.execute(
            "SELECT action FROM sync.audit_log WHERE object_id = %s ORDER BY audit_id", [d]
        ).fetchall()
    ]
    assert actions.count("preferences.viewed") == 1
    assert actions.count("preferences.changed") == 2
    assert "consent.changed" in actions


def test_tampered_expired_unknown_key_and_erased_links_are_refused(
    db: psycopg.Connection, client: TestClient, clock: Clock
) -> None:
    d = donor(db)
    db.commit()
    token = _token(d, days=1)
    parts = token.split(".")
    other = donor(db)
    db.commit()
    forged = ".".join([parts[0], parts[1], other.replace("-", ""), parts[3], parts[4]])
    longer = ".".join([*parts[:3], str(int(parts[3]) + 86400), parts[4]])
    for bad in (forged, longer, token[:-2] + "AA", "v1.l2.nothex.1.x", "garbage"):
        response = client.get(f"/preferences/{bad}")
        assert response.status_code == 403, bad
        assert response.json()["error"] == "link_invalid"
    unknown_key = StaticKeys({"links": {"current": "zz", "keys": {"zz": NEW_KEY}}}).ring("links")
    assert unknown_key is not None
    assert (
        client.get(
            f"/preferences/{sign_link(unknown_key, d, expires_at=NOW + timedelta(days=1))}"
        ).status_code
        == 403
    )

    clock.now = NOW + timedelta(days=2)
    expired = client.get(f"/preferences/{token}")
    assert expired.status_code == 410
    assert expired.json()["error"] == "link_expired"
    assert (
        client.post(
            f"/preferences/{token}",
            json={"choices": [{"purpose": "marketing", "channel": "email", "status": "opt_in"}]},
        ).status_code
        == 410
    )

    clock.now = NOW
    db.execute("UPDATE core.donors SET erased_at = now() WHERE donor_id = %s", [d])
    db.commit()
    gone = client.get(f"/preferences/{token}")
    assert gone.status_code == 410
    assert gone.json()["error"] == "donor_gone"
    assert db.execute("SELECT count(*) FROM core.consent_events").fetchone() == (0,)


def test_links_survive_rotation_and_merges(db: psycopg.Connection, client: TestClient) -> None:
    survivor, merged = donor(db), donor(db)
    merge(db, merged, survivor, T0)
    db.commit()
    old_ring = StaticKeys({"links": {"current": "l1", "keys": {"l1": OLD_KEY}}}).ring("links")
    assert old_ring is not None
    before_rotation = sign_link(old_ring, merged, expires_at=NOW + timedelta(days=3))
    assert verify_link(RING, before_rotation, now=NOW).key_id == "l1"
    response = client.post(
        f"/preferences/{before_rotation}",
        json={"choices": [{"purpose": "marketing", "channel": "sms", "status": "opt_in"}]},
    )
    assert response.status_code == 200, response.text
    owner = db.execute(
        "SELECT donor_id::text FROM core.consent_events WHERE source = 'preference_centre'"
    ).fetchone()
    assert owner == (survivor,), "a merged donor's link records against the survivor"
    with pytest.raises(LinkRefused) as refused:
        verify_link(RING, before_rotation, now=NOW + timedelta(days=4))
    assert refused.value.reason == "expired"


def test_bad_bodies_are_refused(db: psycopg.Connection, client: TestClient) -> None:
    d = donor(db)
    db.commit()
    token = _token(d)
    huge = client.post(
        f"/preferences/{token}",
        content=b"{" + b" " * 9000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    not_offered = client.post(
        f"/preferences/{token}",
        json={"choices": [{"purpose": "profiling", "channel": "email", "status": "opt_in"}]},
    )
    assert not_offered.status_code == 422
    assert not_offered.json()["error"] == "not_offered"
    soft = client.post(
        f"/preferences/{token}",
        json={"choices": [{"purpose": "marketing", "channel": "email", "status": "soft_opt_in"}]},
    )
    assert soft.status_code == 422, "a donor chooses in or out; soft opt-in is not theirs to pick"
    assert db.execute("SELECT count(*) FROM core.consent_events").fetchone() == (0,)
