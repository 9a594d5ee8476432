"""Property: over random consent histories and suppressions, the outbox never holds a record the
policy blocks, nor a field the profile or consent withholds; allowed donors are queued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.delivery.outbox import queue_destination
from tests.privacy.gate.support import (
    ESP,
    EU,
    KEYS,
    SHARE,
    add_donor,
    add_gift,
    gate,
    outbox,
    renderer,
    set_consent,
    suppress,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PAIRS = [("marketing", "email"), ("marketing", "all"), ("marketing", "sms"), ("sharing", "all")]
STATUSES = ["opt_in", "soft_opt_in", "opt_out"]
REASONS = ["deceased", "do_not_contact", "bounced", "manual"]

consent_row = st.tuples(st.sampled_from(PAIRS), st.sampled_from(STATUSES), st.booleans())
donor_spec = st.fixed_dictionaries(
    {
        "country": st.sampled_from([None, "US", "DE", "GB"]),
        "deceased": st.booleans(),
        # (purpose, channel) -> (status, expired); later entries are newer
        "consent": st.lists(consent_row, max_size=4),
        "suppressions": st.lists(
            st.tuples(st.sampled_from(REASONS), st.booleans()), max_size=2, unique_by=lambda s: s[0]
        ),
    }
)


def _effective(spec: dict[str, Any], purpose: str, channel: str) -> str | None:
    """The oracle: the latest unexpired state of the purpose on the channel or on `all`."""
    found = None
    for (p, c), status, expired in spec["state"]:
        if p == purpose and c in (channel, "all") and not expired:
            found = status
    return found


def _region_eu(spec: dict[str, Any]) -> bool:
    return bool(spec["country"] == "DE")


def _esp_allowed(spec: dict[str, Any]) -> bool:
    active = {r for r, lifted in spec["suppressions"] if not lifted} | (
        {"deceased"} if spec["deceased"] else set()
    )
    return bool(
        not _region_eu(spec)
        and not active & {"deceased", "do_not_contact", "bounced"}
        and _effective(spec, "marketing", "email") in ("opt_in", "soft_opt_in")
    )


def _share_allowed(spec: dict[str, Any]) -> bool:
    return not _region_eu(spec) and _effective(spec, "sharing", "all") != "opt_out"


def _load(db: psycopg.Connection, specs: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for i, spec in enumerate(specs):
        donor = add_donor(db, country_code=spec["country"], is_deceased=spec["deceased"])
        gift = add_gift(db, donor, f"stripe:ch_prop{i}")
        latest: dict[tuple[str, str], tuple[tuple[str, str], str, bool]] = {}
        for n, (pair, status, expired) in enumerate(spec["consent"]):
            at = T0 + timedelta(days=n)
            expires = (at + timedelta(days=1)) if expired else None
            set_consent(db, donor, pair[0], pair[1], status, at=at, expires_at=expires)
            latest.pop(pair, None)
            latest[pair] = (pair, status, expired)
        spec["state"] = list(latest.values())  # one state per pair, in the order they were last set
        for reason, lifted in spec["suppressions"]:
            suppress(db, donor, reason, lifted=lifted)
        out.append((donor, gift, spec))
    return out


def _check_payloads(rows: list[dict[str, Any]], donors: dict[str, dict[str, Any]], destination: str) -> None:
    ring = KEYS.ring("pseudonym")
    assert ring is not None
    for row in rows:
        leaked = row["payload"]["_row"]
        if row["entity"] != "contact":
            continue
        spec = donors[row["record_key"]]
        assert "city" not in leaked, "excluded fields never reach a renderer"
        assert "middle_name" not in leaked
        assert set(leaked) <= {
            "donor_id",
            "email",
            "first_name",
            "last_name",
            "phone",
            "birth_date",
            "postal_code",
        }
        assert leaked["last_name"] == ring.hmac_hex(spec["last_name"].lower())
        assert row["payload"]["surname_hash"] == leaked["last_name"]
        assert leaked["birth_date"] == 1815
        assert row["payload"]["birth_year"] == 1815
        assert leaked["postal_code"] == "SW1"
        assert row["payload"]["zip"] == "SW1"
        phone_ok = destination != ESP or _effective(spec, "marketing", "sms") == "opt_in"
        assert ("phone" in row["payload"]) == phone_ok
        assert (leaked["phone"] is not None) == phone_ok


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(donor_spec, min_size=1, max_size=4))
def test_the_outbox_holds_only_what_the_policy_allows(
    db: psycopg.Connection, specs: list[dict[str, Any]]
) -> None:
    with db.transaction(force_rollback=True):
        loaded = _load(db, specs)
        names = {
            d: db.execute("SELECT last_name FROM core.donors WHERE donor_id = %s", (d,)).fetchone()
            for d, _, _ in loaded
        }
        donors = {}
        for donor, _, spec in loaded:
            spec["last_name"] = names[donor][0]  # type: ignore[index]
            donors[donor] = spec
        for destination, allowed in ((ESP, _esp_allowed), (SHARE, _share_allowed), (EU, lambda s: True)):
            render = renderer(destination)
            report = queue_destination(db, destination, render, gate=gate(destination, render))
            rows = outbox(db, destination)
            queued = {(r["entity"], r["record_key"]) for r in rows}
            for donor, gift, spec in loaded:
                expected = allowed(spec)
                assert (("contact", donor) in queued) == expected, (destination, spec)
                assert (("gift", gift) in queued) == expected, (destination, spec)
            _check_payloads(rows, donors, destination)
            blocked = sum(v for k, v in report.metrics().items() if k.startswith("gate_blocked_"))
            assert blocked == 2 * sum(not allowed(s) for _, _, s in loaded)
