"""The HubSpot reconcile reader against the emulator: staff edits, window bounds, merges, and a
whole pull into core."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from donor_sync.delivery.connectors.hubspot import HubSpotConnector
from donor_sync.delivery.connectors.hubspot.reader import HubSpotReader, merged_ids, modified_at
from donor_sync.delivery.contracts import Operation
from donor_sync.delivery.reconcile import load_reconcile_settings, pull_destination
from donor_sync.errors import ConfigError
from donor_sync.resolve import load_resolve_rules
from tests.delivery.connectors.hubspot.conftest import Admin, contact
from tests.resolve.test_donors_support import JANE, donor_of, new_batch, run, stage
from tests.resolve.test_review import MARCUS

SETTINGS = load_reconcile_settings().destinations["hubspot"]


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=1)


def _land(connector: HubSpotConnector, *records: tuple[str, dict[str, Any]]) -> list[str]:
    """Push contacts keyed by donor id; return their HubSpot ids, each modified at its own millisecond."""
    ids = []
    for i, (donor, props) in enumerate(records, start=1):
        result = connector.push("contact", Operation.UPSERT, [contact(i, donor, **props)])[0]
        assert result.ok, result
        ids.append(str(result.remote_id))
        time.sleep(0.005)
    return ids


def _stamp(admin: Admin, remote_id: str) -> datetime:
    body = admin.api("GET", f"/crm/v3/objects/contacts/{remote_id}?properties=lastmodifieddate").json()
    stamp = modified_at(body["properties"]["lastmodifieddate"])
    assert stamp is not None
    return stamp


def test_a_staff_edit_is_read_back_with_key_values_and_an_aware_time(
    connector: HubSpotConnector, admin: Admin
) -> None:
    [remote_id] = _land(connector, ("d-1", {"email": "ada@example.org", "firstname": "Ada", "lastname": "B"}))
    before_edit = datetime.now(UTC)
    time.sleep(0.005)
    edited = admin.api(
        "PATCH",
        f"/crm/v3/objects/contacts/{remote_id}",
        {"properties": {"firstname": "Adah", "city": "Leeds", "lifecyclestage": "customer"}},
    )
    assert edited.status_code == 200, edited.text

    records = list(HubSpotReader(connector).changed_records(SETTINGS, before_edit, _later()))

    assert len(records) == 1
    record = records[0]
    assert (record.remote_id, record.key) == (remote_id, "d-1")
    assert record.values == {
        "firstname": "Adah",
        "lastname": "B",
        "email": "ada@example.org",
        "city": "Leeds",
    }
    assert "lifecyclestage" not in record.values, "only the fields reconcile.yaml names"
    assert "phone" not in record.values, "an empty HubSpot property does not blank core"
    assert record.modified_at.tzinfo is not None
    assert record.modified_at == _stamp(admin, remote_id)
    assert record.modified_at >= before_edit
    assert record.merged_remote_ids == ()
    assert not record.deleted


def test_the_window_is_since_inclusive_until_exclusive_and_oldest_first(
    connector: HubSpotConnector, admin: Admin
) -> None:
    ids = _land(
        connector,
        ("d-1", {"email": "a@example.org"}),
        ("d-2", {"email": "b@example.org"}),
        ("d-3", {"email": "c@example.org"}),
    )
    stamps = [_stamp(admin, i) for i in ids]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 3
    reader = HubSpotReader(connector, page_size=1)

    everything = list(reader.changed_records(SETTINGS, None, _later()))
    assert [r.remote_id for r in everything] == ids, "a first pull (no watermark) reads all, oldest first"

    middle = list(reader.changed_records(SETTINGS, stamps[1], stamps[2]))
    assert [(r.remote_id, r.key) for r in middle] == [(ids[1], "d-2")]

    # The reader stops paging at the window's end instead of reading the rest of the account.
    admin.running.emulator.request_log.clear()
    assert [r.remote_id for r in reader.changed_records(SETTINGS, None, stamps[1])] == [ids[0]]
    searches = [r for r in admin.request_log() if r["path"].endswith("/search")]
    assert len(searches) == 2


def test_a_merge_in_hubspot_yields_the_merged_ids_on_the_survivor(
    connector: HubSpotConnector, admin: Admin
) -> None:
    ids = _land(
        connector,
        ("d-1", {"email": "a@example.org", "firstname": "Ann"}),
        ("d-2", {"email": "a.other@example.org", "firstname": "Anne"}),
        ("d-3", {"email": "a.third@example.org"}),
    )
    for loser in ids[1:]:
        merged = admin.api(
            "POST", "/crm/v3/objects/contacts/merge", {"primaryObjectId": ids[0], "objectIdToMerge": loser}
        )
        assert merged.status_code == 200, merged.text

    records = list(HubSpotReader(connector).changed_records(SETTINGS, None, _later()))

    assert [r.remote_id for r in records] == [ids[0]], "merged-away contacts are gone"
    assert records[0].merged_remote_ids == (ids[1], ids[2])
    assert records[0].key == "d-1"
    assert records[0].values is not None
    assert records[0].values["firstname"] == "Ann", "the primary's values win a HubSpot merge"


def test_naive_times_and_an_object_the_connection_does_not_sync_are_refused(
    connector: HubSpotConnector,
) -> None:
    reader = HubSpotReader(connector)
    with pytest.raises(ValueError, match="aware"):
        list(reader.changed_records(SETTINGS, None, datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="aware"):
        list(reader.changed_records(SETTINGS, datetime(2026, 1, 1), _later()))
    with pytest.raises(ConfigError, match="tickets"):
        list(reader.changed_records(SETTINGS.model_copy(update={"object": "tickets"}), None, _later()))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "2026-03-01T10:00:00.123Z", datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC), id="iso-z"
        ),
        pytest.param(
            "2026-03-01T12:00:00+02:00", datetime(2026, 3, 1, 10, tzinfo=UTC), id="iso-offset-to-utc"
        ),
        pytest.param("1772359200000", datetime(2026, 3, 1, 10, tzinfo=UTC), id="epoch-ms"),
        pytest.param("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC), id="naive-taken-as-utc"),
        pytest.param("yesterday", None, id="junk"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="none"),
    ],
)
def test_modified_at_parses_hubspot_timestamps_to_aware_utc(value: Any, expected: datetime | None) -> None:
    parsed = modified_at(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("101;102", ("101", "102"), id="two"),
        pytest.param(" 101 ; ;102;101", ("101", "102"), id="blanks-spaces-repeats"),
        pytest.param("100;101", ("101",), id="own-id-dropped"),
        pytest.param("", (), id="empty"),
        pytest.param(None, (), id="none"),
        pytest.param(102, ("102",), id="a-number"),
    ],
)
def test_merged_ids_split_the_semicolon_list(value: Any, expected: tuple[str, ...]) -> None:
    assert merged_ids(value, "100") == expected


# -- end to end: pull_destination over the reader ------------------------------------------------


def _landed(db: psycopg.Connection, donor: str, remote_id: str) -> None:
    db.execute(
        "INSERT INTO sync.destination_state"
        " (destination, entity, record_key, donor_id, remote_id, last_pushed_at)"
        " VALUES ('hubspot', 'contact', %s, %s, %s, now())",
        [donor, donor, remote_id],
    )


def _golden(db: psycopg.Connection, donor: str) -> dict[str, Any]:
    cur = db.execute("SELECT * FROM core.donors WHERE donor_id = %s", [donor])
    row = cur.fetchone()
    assert row is not None
    return dict(zip([c.name for c in cur.description or []], row, strict=True))


def test_a_pull_through_the_reader_merges_the_donors_and_takes_the_staff_edit(
    db: psycopg.Connection, connector: HubSpotConnector, admin: Admin
) -> None:
    batch = new_batch()
    stage(db, batch, "donorbox", "jane-1", **JANE)
    stage(db, batch, "classy", "marcus-1", **MARCUS)
    run(db, batch)
    jane, marcus = donor_of(db, "donorbox", "jane-1"), donor_of(db, "classy", "marcus-1")
    assert jane != marcus
    jane_id, marcus_id = _land(
        connector,
        (jane, {"email": JANE["email"], "firstname": "Jane", "lastname": "Okafor"}),
        (marcus, {"email": MARCUS["email"], "firstname": "Marcus", "lastname": "Whitfield"}),
    )
    _landed(db, jane, jane_id)
    _landed(db, marcus, marcus_id)
    db.commit()
    # Staff merge Marcus's contact into Jane's, then correct her first name.
    assert admin.api(
        "POST", "/crm/v3/objects/contacts/merge", {"primaryObjectId": jane_id, "objectIdToMerge": marcus_id}
    ).ok
    time.sleep(0.005)
    assert admin.api(
        "PATCH", f"/crm/v3/objects/contacts/{jane_id}", {"properties": {"firstname": "Janet"}}
    ).ok
    edited_at = _stamp(admin, jane_id)

    report = pull_destination(
        db,
        HubSpotReader(connector),
        "hubspot",
        SETTINGS,
        rules=load_resolve_rules(),
        actor="crm-test",
        now=datetime.now(UTC) + timedelta(seconds=5),
    )
    db.commit()

    assert (report.read, report.matched, report.merges, report.merge_conflicts) == (1, 1, 1, 0)
    assert str(_golden(db, marcus)["merged_into"]) == jane
    after = _golden(db, jane)
    assert after["first_name"] == "Janet", "HubSpot comes before the donation platforms for names"
    assert report.field_changes["first_name"] == 1
    assert report.watermark == edited_at
    assert db.execute(
        "SELECT remote_deleted_at IS NOT NULL FROM sync.destination_state WHERE remote_id = %s", [marcus_id]
    ).fetchone() == (True,)
    attributes = db.execute(
        "SELECT attributes FROM core.donor_sources WHERE system = 'hubspot' AND external_id = %s", [jane_id]
    ).fetchone()
    assert attributes is not None
    assert attributes[0]["first_name"] == "Janet"

    # Nothing changed since: the next pull reads only the overlap and merges nothing again.
    again = pull_destination(
        db,
        HubSpotReader(connector),
        "hubspot",
        SETTINGS,
        rules=load_resolve_rules(),
        actor="crm-test",
        now=datetime.now(UTC) + timedelta(seconds=6),
    )
    db.commit()
    assert (again.merges, again.donors_changed) == (0, 0)
