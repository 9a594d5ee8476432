"""Mappings checked against destination metadata: the emulators' real describe documents, and the cache."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
import pytest

from donor_sync.delivery.mapping import (
    DescribeCache,
    DescribedObject,
    DescribeLookup,
    DescribeUnavailableError,
    DestinationMapping,
    check_against_describe,
    mapping_path,
    normalize,
    normalize_hubspot,
    normalize_salesforce,
    validate_text,
)
from donor_sync.errors import DonorSyncError
from tests.delivery.mapping.conftest import Fetch


def _lookup(destination: str, fetch: Fetch) -> DescribeLookup:
    def lookup(name: str) -> DescribedObject | None:
        document = fetch(name)
        return None if document is None else normalize(destination, name, document)

    return lookup


def _shipped_with(
    destination: str, old: str, new: str, tmp_path: Path
) -> tuple[DestinationMapping, Path, int]:
    text = mapping_path(destination).read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    changed = text.replace(old, new)
    path = tmp_path / f"{destination}.yaml"
    path.write_text(changed, encoding="utf-8")
    mapping, problems = validate_text(changed, path)
    assert mapping is not None, [str(p) for p in problems]
    return mapping, path, changed.count("\n", 0, changed.index(new)) + 1


# -- normalization -----------------------------------------------------------------------------------


def test_salesforce_describe_normalizes_types_picklists_and_relationships() -> None:
    doc = {
        "name": "Opportunity",
        "fields": [
            {"name": "Name", "type": "string", "length": 120, "createable": True, "updateable": True},
            {
                "name": "StageName",
                "type": "picklist",
                "length": 255,
                "picklistValues": [
                    {"value": "Closed Won", "active": True},
                    {"value": "Old", "active": False},
                ],
            },
            {"name": "Amount", "type": "currency", "length": 0},
            {"name": "Id", "type": "id", "createable": False, "updateable": False},
            {
                "name": "npsp__Primary_Contact__c",
                "type": "reference",
                "referenceTo": ["Contact"],
                "relationshipName": "npsp__Primary_Contact__r",
            },
            {"name": "Donor_Sync_Id__c", "type": "string", "externalId": True, "length": 64},
        ],
    }
    described = normalize_salesforce(doc)
    stage = described.field("stagename")  # Salesforce names are case-insensitive
    assert stage is not None
    assert (stage.type, stage.picklist_values, stage.length) == ("picklist", frozenset({"Closed Won"}), 255)
    amount = described.field("Amount")
    assert amount is not None
    assert (amount.type, amount.length) == ("number", None)
    ident = described.field("Id")
    assert ident is not None
    assert not ident.createable
    relation = described.relationship("NPSP__PRIMARY_CONTACT__R")
    assert relation is not None
    assert (relation.name, relation.reference_to) == ("npsp__Primary_Contact__c", ("Contact",))
    ext = described.field("Donor_Sync_Id__c")
    assert ext is not None
    assert ext.external_id


def test_hubspot_properties_normalize_options_uniqueness_and_read_only() -> None:
    doc = {
        "results": [
            {
                "name": "dealstage",
                "type": "enumeration",
                "fieldType": "select",
                "options": [{"value": "closedwon", "hidden": False}, {"value": "legacy", "hidden": True}],
            },
            {"name": "donor_sync_gift_key", "type": "string", "fieldType": "text", "hasUniqueValue": True},
            {"name": "hs_object_id", "type": "number", "modificationMetadata": {"readOnlyValue": True}},
            {"name": "paid", "type": "enumeration", "fieldType": "booleancheckbox", "options": []},
        ]
    }
    described = normalize_hubspot("deals", doc)
    stage = described.field("dealstage")
    assert stage is not None
    assert (stage.type, stage.picklist_values) == ("picklist", frozenset({"closedwon"}))
    assert described.field("DEALSTAGE") is None  # HubSpot names are case-sensitive
    key = described.field("donor_sync_gift_key")
    assert key is not None
    assert key.external_id
    object_id = described.field("hs_object_id")
    assert object_id is not None
    assert not object_id.updateable
    paid = described.field("paid")
    assert paid is not None
    assert paid.type == "boolean"


# -- against the emulators ---------------------------------------------------------------------------


def test_the_shipped_mappings_pass_against_the_emulators_metadata(
    salesforce_fetch: Fetch, hubspot_fetch: Fetch
) -> None:
    for destination, fetch in (("salesforce", salesforce_fetch), ("hubspot", hubspot_fetch)):
        mapping, problems = validate_text(mapping_path(destination).read_text(encoding="utf-8"), destination)
        assert mapping is not None, problems
        found = check_against_describe(mapping, _lookup(destination, fetch))
        assert found == [], [str(p) for p in found]


@pytest.mark.parametrize(
    ("old", "new", "field", "says", "total"),
    [
        pytest.param(
            "    succeeded: Closed Won",
            "    succeeded: Won",
            "opportunity.StageName.to",
            "'Won' is not an active value of Opportunity.StageName",
            1,
            id="picklist-translation-to-a-missing-value",
        ),
        pytest.param(
            "value: Open\n",
            "value: Sometimes\n",
            "recurring_donation.npsp__RecurringType__c.to",
            "'Sometimes' is not an active value of npe03__Recurring_Donation__c.npsp__RecurringType__c",
            1,
            id="constant-picklist-value",
        ),
        pytest.param(
            "lead_source, fallback: Other}",
            "lead_source, fallback: Newsletter}",
            "opportunity.LeadSource.to",
            "'Newsletter' is not an active value of Opportunity.LeadSource",
            1,
            id="lookup-fallback-value",
        ),
        pytest.param(
            "- to: FirstName",
            "- to: FirstNam",
            "contact.FirstNam.to",
            "Contact has no field 'FirstNam'",
            1,
            id="unknown-field",
        ),
        pytest.param(
            "- to: npe01__HomeEmail__c",
            "- to: Name",
            "contact.Name.to",
            "does not let this field be set on create",
            1,
            id="read-only-field",
        ),
        pytest.param(
            "[trim, {truncate: 40}]\n      - to: LastName",
            "[trim, {truncate: 50}]\n      - to: LastName",
            "contact.FirstName.transforms",
            "truncate 50 exceeds FirstName's length of 40 characters",
            1,
            id="truncate-beyond-length",
        ),
        pytest.param(
            "      - to: Amount\n        from: amount\n        type: number",
            "      - to: Amount\n        from: amount\n        type: date",
            "opportunity.Amount.type",
            "Amount is a currency field; a date cannot be written to it",
            1,
            id="type-mismatch",
        ),
        pytest.param(
            "- to: npe03__Contact__r",
            "- to: npe03__Contacts__r",
            "recurring_donation.npe03__Contacts__r.to",
            "has no relationship 'npe03__Contacts__r'",
            1,
            id="unknown-relationship",
        ),
        pytest.param(
            "    object: npe03__Recurring_Donation__c",
            "    object: npe03__Recurring_Gift__c",
            "recurring_donation.object",
            "the destination has no object 'npe03__Recurring_Gift__c'",
            2,
            id="unknown-object",
        ),
        pytest.param(
            "name: household_account\n    object: Account\n    source: household\n    key: household_id\n"
            "    external_id: Donor_Sync_Id__c",
            "name: household_account\n    object: Account\n    source: household\n    key: household_id\n"
            "    external_id: npo02__TotalOppAmount__c",
            "household_account.external_id",
            "Account.npo02__TotalOppAmount__c is not an external id (unique) field",
            3,
            id="external-id-not-unique",
        ),
    ],
)
def test_salesforce_metadata_problems_name_file_line_and_field(
    tmp_path: Path, salesforce_fetch: Fetch, old: str, new: str, field: str, says: str, total: int
) -> None:
    mapping, path, _ = _shipped_with("salesforce", old, new, tmp_path)
    problems = check_against_describe(mapping, _lookup("salesforce", salesforce_fetch))
    matching = [p for p in problems if says in p.message]
    assert len(matching) == 1, [str(p) for p in problems]
    (problem,) = matching
    assert problem.field == field
    assert problem.file == str(path)
    text = path.read_text(encoding="utf-8").splitlines()
    assert problem.line is not None
    *_, name, key = field.split(".")
    assert name in text[problem.line - 1] or key in text[problem.line - 1]
    assert len(problems) == total, [str(p) for p in problems]  # only the change's consequences


def test_hubspot_key_must_be_a_unique_property(tmp_path: Path, hubspot_fetch: Fetch) -> None:
    mapping, path, line = _shipped_with(
        "hubspot",
        "external_id: donor_sync_id\n    mode: upsert\n    priority: 100",
        "external_id: jobtitle\n    mode: upsert\n    priority: 100",
        tmp_path,
    )
    (problem,) = check_against_describe(mapping, _lookup("hubspot", hubspot_fetch))
    assert str(problem) == (
        f"{path}:{line}: contact.external_id: contacts.jobtitle is not an external id (unique) field: "
        "upserts cannot key on it"
    )


def test_a_metadata_fetch_failure_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    mapping, _, _ = _shipped_with(
        "hubspot",
        "external_id: donor_sync_id\n    mode: upsert\n    priority: 100",
        "external_id: donor_sync_id\n    mode: upsert\n    priority: 100",
        tmp_path,
    )

    def failing(name: str) -> DescribedObject | None:
        raise DonorSyncError("HubSpot refused the token")

    problems = check_against_describe(mapping, failing)
    assert [p.field for p in problems] == ["contact.object", "deal.object"]
    assert "cannot read the metadata of contacts: HubSpot refused the token" in problems[0].message


# -- the cache ---------------------------------------------------------------------------------------


def test_metadata_is_cached_with_a_time_to_live(db: psycopg.Connection, hubspot_fetch: Fetch) -> None:
    calls: list[str] = []

    def counting(name: str) -> Any:
        calls.append(name)
        return hubspot_fetch(name)

    first = DescribeCache(db, "hubspot", counting)("contacts")
    assert first is not None
    assert first.field("donor_sync_id") is not None
    stored = db.execute(
        "SELECT metadata, fetched_at FROM sync.describe_cache"
        " WHERE destination = 'hubspot' AND object_name = 'contacts'"
    ).fetchone()
    assert stored is not None
    assert {p["name"] for p in stored[0]["results"]} >= {"email", "donor_sync_id"}
    again = DescribeCache(db, "hubspot", counting)
    assert again("contacts") == first
    assert again("contacts") == first
    assert calls == ["contacts"]  # fresh in the cache: no second call
    DescribeCache(db, "hubspot", counting, max_age=dt.timedelta(0))("contacts")
    DescribeCache(db, "hubspot", counting, refresh=True)("contacts")
    assert calls == ["contacts", "contacts", "contacts"]
    refetched = db.execute(
        "SELECT fetched_at FROM sync.describe_cache WHERE object_name = 'contacts'"
    ).fetchone()
    assert refetched is not None
    assert refetched[0] >= stored[1]
    assert DescribeCache(db, "hubspot", counting)("tickets_nope") is None
    assert db.execute("SELECT count(*) FROM sync.describe_cache").fetchone() == (1,)


def test_cache_only_reads_what_is_cached_whatever_its_age(
    db: psycopg.Connection, hubspot_fetch: Fetch
) -> None:
    DescribeCache(db, "hubspot", hubspot_fetch)("contacts")
    db.execute("UPDATE sync.describe_cache SET fetched_at = now() - interval '30 days'")
    offline = DescribeCache(db, "hubspot")
    contacts = offline("contacts")
    assert contacts is not None
    assert contacts.field("email") is not None
    with pytest.raises(DescribeUnavailableError, match="no cached hubspot metadata for deals"):
        offline("deals")
    mapping, _ = validate_text(mapping_path("hubspot").read_text(encoding="utf-8"), "hubspot.yaml")
    assert mapping is not None
    problems = check_against_describe(mapping, DescribeCache(db, "hubspot"))
    assert [p.field for p in problems] == ["deal.object"]
    assert "no cached hubspot metadata for deals" in problems[0].message
