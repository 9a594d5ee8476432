"""Reconciliation: staff edits and merges made in a CRM pulled back into core."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from donor_sync.delivery.reconcile import RemoteRecord, load_reconcile_settings, pull_destination
from donor_sync.delivery.reconcile.settings import DestinationReconcile
from donor_sync.errors import ConfigError
from donor_sync.resolve import load_resolve_rules, unmerge
from tests.resolve.test_donors_support import ACTOR, JANE, NOW, donor_of, new_batch, run, stage
from tests.resolve.test_review import MARCUS as MARCUS_LIKE

SETTINGS = load_reconcile_settings()


class FakeReader:
    """A CRM's changed records, filtered by the window like a real query."""

    def __init__(self, records: list[RemoteRecord]) -> None:
        self.records = records
        self.windows: list[tuple[datetime | None, datetime]] = []

    def changed_records(
        self, settings: DestinationReconcile, since: datetime | None, until: datetime
    ) -> Iterator[RemoteRecord]:
        self.windows.append((since, until))
        for r in sorted(self.records, key=lambda r: r.modified_at):
            if (since is None or r.modified_at >= since) and r.modified_at < until:
                yield r


def landed(db: psycopg.Connection, destination: str, donor: str, remote_id: str) -> None:
    """A contact of this donor that landed in the destination earlier."""
    db.execute(
        "INSERT INTO sync.destination_state"
        " (destination, entity, record_key, donor_id, remote_id, last_pushed_at)"
        " VALUES (%s, 'contact', %s, %s, %s, %s)",
        [destination, donor, donor, remote_id, NOW - timedelta(days=2)],
    )


def jane(db: psycopg.Connection, tag: str = "j") -> str:
    batch = new_batch()
    stage(db, batch, "donorbox", f"{tag}-1", **JANE)
    run(db, batch)
    return donor_of(db, "donorbox", f"{tag}-1")


def pull(db: psycopg.Connection, destination: str, reader: FakeReader, now: datetime = NOW) -> Any:
    report = pull_destination(
        db,
        reader,
        destination,
        SETTINGS.destinations[destination],
        rules=load_resolve_rules(),
        actor="crm-test",
        now=now,
    )
    db.commit()
    return report


def golden(db: psycopg.Connection, donor: str) -> dict[str, Any]:
    cur = db.execute("SELECT * FROM core.donors WHERE donor_id = %s", [donor])
    row = cur.fetchone()
    assert row is not None
    return dict(zip([c.name for c in cur.description or []], row, strict=True))


def test_staff_edits_win_where_the_crm_owns_the_field(db: psycopg.Connection) -> None:
    donor = jane(db)
    landed(db, "salesforce", donor, "003A")
    edit = RemoteRecord(
        "003A",
        NOW - timedelta(hours=1),
        key=donor,
        values={
            "FirstName": "Janet",
            "LastName": "Okafor",
            "Email": "jane.okafor@example.org",
            "Phone": "(617) 555-0142",
            "MailingStreet": "12 Elm Street",
            "MailingCity": "Cambridge",
            "MailingState": "MA",
            "MailingPostalCode": "02139",
            "MailingCountry": "United States",
            "npsp__Do_Not_Contact__c": True,
            "npsp__Deceased__c": False,
        },
    )
    report = pull(db, "salesforce", FakeReader([edit]))
    assert (report.read, report.matched, report.unmatched) == (1, 1, 0)
    after = golden(db, donor)
    assert after["first_name"] == "Janet", "the CRM comes first in source_priority for names"
    assert after["do_not_contact"] is True, "do-not-contact is most restrictive"
    assert (after["address_line1"], after["postal_code"], after["country_code"]) == (
        "12 Elm St",
        "02139",
        "US",
    )
    assert after["phone"] == "+16175550142"
    assert report.field_changes["first_name"] == 1
    assert report.field_changes["do_not_contact"] == 1
    assert "phone" not in report.field_changes, "same number, other format: no change"
    attrs = db.execute(
        "SELECT attributes, role FROM core.donor_sources WHERE system = 'salesforce' AND external_id = '003A'"
    ).fetchone()
    assert attrs is not None
    assert attrs[1] == "destination"
    assert attrs[0]["first_name"] == "Janet"
    assert db.execute(
        "SELECT cursor_ts FROM sync.watermarks WHERE source = 'salesforce' AND stream = 'reconcile_contact'"
    ).fetchone() == (NOW - timedelta(hours=1),)
    audit = db.execute("SELECT details FROM sync.audit_log WHERE action = 'crm.changes_pulled'").fetchone()
    assert audit is not None
    assert audit[0]["matched"] == 1
    assert "Janet" not in str(audit[0])


def test_the_next_pull_reads_from_the_watermark_and_an_older_edit_loses(db: psycopg.Connection) -> None:
    donor = jane(db)
    landed(db, "salesforce", donor, "003A")
    first = RemoteRecord("003A", NOW - timedelta(hours=1), key=donor, values={"FirstName": "Janet"})
    reader = FakeReader([first])
    pull(db, "salesforce", reader)
    stale = RemoteRecord("003A", NOW - timedelta(hours=3), key=donor, values={"FirstName": "Jan"})
    reader.records = [first, stale]
    report = pull(db, "salesforce", reader, now=NOW + timedelta(days=1))
    since, _ = reader.windows[-1]
    assert since == NOW - timedelta(hours=1) - timedelta(minutes=10), "watermark minus the overlap"
    assert report.read == 1, "the stale edit is before the window"
    assert golden(db, donor)["first_name"] == "Janet"


def test_unknown_crm_records_are_counted_not_imported(db: psycopg.Connection) -> None:
    before = db.execute("SELECT count(*) FROM core.donors").fetchone()
    staff_made = RemoteRecord(
        "003Z", NOW - timedelta(hours=1), values={"FirstName": "Ada", "LastName": "Byron"}
    )
    report = pull(db, "salesforce", FakeReader([staff_made]))
    assert (report.read, report.matched, report.unmatched) == (1, 0, 1)
    assert db.execute("SELECT count(*) FROM core.donors").fetchone() == before


def test_a_crm_merge_merges_the_donors_reversibly(db: psycopg.Connection) -> None:
    a = jane(db, "a")
    batch = new_batch()
    stage(db, batch, "classy", "b-1", **MARCUS_LIKE)
    run(db, batch)
    b = donor_of(db, "classy", "b-1")
    assert a != b
    landed(db, "hubspot", a, "101")
    landed(db, "hubspot", b, "102")
    db.execute(
        "INSERT INTO sync.destination_merges (destination, entity, survivor_key, merged_key, method)"
        " VALUES ('hubspot', 'contact', %s, %s, 'api')",
        [a, b],
    )
    merged = RemoteRecord("101", NOW - timedelta(hours=1), key=a, values={}, merged_remote_ids=("102",))
    report = pull(db, "hubspot", FakeReader([merged]))
    assert report.merges == 1
    assert golden(db, b)["merged_into"] is not None
    assert str(golden(db, b)["merged_into"]) == a
    assert db.execute(
        "SELECT remote_deleted_at IS NOT NULL FROM sync.destination_state WHERE remote_id = '102'"
    ).fetchone() == (True,)
    assert db.execute("SELECT status FROM sync.destination_merges").fetchone() == ("merged",)
    # Both CRM ids are the survivor's now; undoing the merge gives each donor its own back.
    unmerge(db, b, actor=ACTOR, rules=load_resolve_rules())
    db.commit()
    assert golden(db, b)["merged_into"] is None
    assert donor_of(db, "classy", "b-1") == b


def test_a_file_with_a_source_owned_field_pulled_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "reconcile.yaml"
    path.write_text(
        "destinations:\n  salesforce:\n    entity: contact\n    object: Contact\n    key_field: K\n"
        "    fields:\n      npo02__TotalOppAmount__c: {to: lifetime_giving, policy: pull}\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"reconcile.yaml: line 6, destinations.salesforce.fields: .*lifetime_giving.*source-owned",
    ):
        load_reconcile_settings(path)


def test_a_crm_value_survivorship_does_not_take_is_reported_as_drift(db: psycopg.Connection) -> None:
    donor = jane(db)
    landed(db, "salesforce", donor, "003A")
    # Staff typed another email; the donor's verified email (a receipt went to it) survives.
    edit = RemoteRecord(
        "003A",
        NOW - timedelta(hours=1),
        key=donor,
        values={"Email": "jane@work.example.org", "LastName": "Okafor"},
    )
    report = pull(db, "salesforce", FakeReader([edit]))
    assert golden(db, donor)["email"] == "jane.okafor@example.org"
    assert report.drift == {"email": 1}
    assert report.metrics()["drift_email"] == 1
    assert report.metrics()["drift_records"] == 1
