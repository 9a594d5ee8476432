"""Rendering core rows into destination records: exact payloads, nulls, set-if-empty, dependencies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from donor_sync.delivery.contracts import Operation, RecordRef, SyncMode
from donor_sync.delivery.mapping import (
    DestinationMapping,
    RenderError,
    load_destination,
    push_order,
    render,
    render_one,
    validate_text,
)
from donor_sync.errors import ConfigError
from tests.delivery.mapping.rows import DONOR_ID, HOUSEHOLD_ID, donor, gift, household, plan

DONOR = str(DONOR_ID)
HOUSEHOLD = str(HOUSEHOLD_ID)


@pytest.fixture(scope="module")
def salesforce() -> DestinationMapping:
    return load_destination("salesforce")


@pytest.fixture(scope="module")
def hubspot() -> DestinationMapping:
    return load_destination("hubspot")


def _mapping(text: str) -> DestinationMapping:
    mapping, problems = validate_text(text, Path("snippet.yaml"))
    assert mapping is not None, [str(p) for p in problems]
    return mapping


# -- Salesforce ------------------------------------------------------------------------------------


def test_a_person_donor_becomes_a_contact_in_its_household_account(salesforce: DestinationMapping) -> None:
    record = render_one(salesforce, "contact", donor())
    assert record is not None
    assert record.entity == "contact"
    assert record.record_key == DONOR
    assert record.operation == Operation.UPSERT
    assert record.donor_id == DONOR
    assert record.priority == 100
    assert dict(record.payload) == {
        "Account": {"Donor_Sync_Id__c": HOUSEHOLD},
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Email": "Ada@Example.org",
        "npe01__HomeEmail__c": "Ada@Example.org",
        "npe01__Preferred_Email__c": "Personal",
        "Phone": "+442071234567",
        "MailingStreet": "12 St James's Square\nFlat 3",
        "MailingCity": "London",
        "MailingPostalCode": "SW1Y 4JH",
        "MailingCountry": "GB",
        "npsp__Deceased__c": False,
        "npsp__Do_Not_Contact__c": False,
    }
    assert "Donor_Sync_Id__c" not in record.payload  # the external id travels as the record key
    assert record.depends_on == (RecordRef("household_account", HOUSEHOLD),)
    assert record.set_if_empty == frozenset({"npe01__Preferred_Email__c"})
    json.dumps(record.payload)  # JSON-serializable as it is


def test_a_donor_without_household_has_no_account_reference(salesforce: DestinationMapping) -> None:
    record = render_one(salesforce, "contact", donor(household_id=None))
    assert record is not None
    assert "Account" not in record.payload  # NPSP creates the household itself
    assert record.depends_on == ()
    assert render_one(salesforce, "organization_account", donor()) is None


def test_an_organization_donor_gets_an_organization_account_its_contact_belongs_to(
    salesforce: DestinationMapping,
) -> None:
    org = donor(
        is_organization=True,
        organization_name="Analytical Engines Ltd",
        first_name=None,
        last_name=None,
        household_id=None,
        address_line2=None,
    )
    records = list(render(salesforce, "donor", [org]))
    assert [r.entity for r in records] == ["organization_account", "contact"]
    account, contact = records
    assert account.record_key == DONOR
    assert dict(account.payload) == {
        "Name": "Analytical Engines Ltd",
        "Type": "Organization",
        "BillingStreet": "12 St James's Square",
        "BillingCity": "London",
        "BillingPostalCode": "SW1Y 4JH",
        "BillingCountry": "GB",
    }
    assert contact.payload["Account"] == {"Donor_Sync_Id__c": DONOR}
    assert contact.payload["LastName"] == "Analytical Engines Ltd"
    assert "FirstName" not in contact.payload
    assert contact.depends_on == (RecordRef("organization_account", DONOR),)


def test_a_household_becomes_a_household_account(salesforce: DestinationMapping) -> None:
    (record,) = render(salesforce, "household", [household()])
    assert record.entity == "household_account"
    assert record.record_key == HOUSEHOLD
    assert record.donor_id is None
    assert dict(record.payload) == {
        "Name": "Lovelace Household",
        "Type": "Household",
        "npe01__SYSTEM_AccountType__c": "Household Account",
        "BillingStreet": "12 St James's Square",
        "BillingCity": "London",
        "BillingPostalCode": "SW1Y 4JH",
        "BillingCountry": "GB",
    }
    unnamed = render_one(salesforce, "household_account", household(name="   "))
    assert unnamed is not None
    assert unnamed.payload["Name"] == "Household"


def test_a_gift_becomes_an_opportunity_with_external_id_references(salesforce: DestinationMapping) -> None:
    (record,) = render(salesforce, "gift", [gift()])
    assert record.entity == "opportunity"
    assert record.record_key == "stripe:ch_3PZ"
    assert record.priority == 50
    assert record.donor_id == DONOR
    assert dict(record.payload) == {
        "npsp__Primary_Contact__r": {"Donor_Sync_Id__c": DONOR},
        "Account": {"Donor_Sync_Id__c": HOUSEHOLD},
        "Name": "Donation 2024-03-01 spring-appeal",
        "Amount": 25.5,
        "CloseDate": "2024-03-01",
        "StageName": "Closed Won",
        "LeadSource": "Web",
        "npsp__Acknowledgment_Status__c": "To Be Acknowledged",
    }
    assert "Campaign" not in record.payload  # disabled until the org has Campaign.Donor_Sync_Id__c
    assert record.depends_on == (
        RecordRef("contact", DONOR),
        RecordRef("household_account", HOUSEHOLD),
    )
    assert record.set_if_empty == frozenset({"npsp__Acknowledgment_Status__c"})


def test_an_installment_points_at_its_recurring_donation(salesforce: DestinationMapping) -> None:
    installment = gift(
        recurring_plan_key="stripe:sub_1Q",
        installment_number=4,
        household_id=None,
        campaign=None,
        utm_medium="carrier-pigeon",
        status="refunded",
    )
    record = render_one(salesforce, "opportunity", installment)
    assert record is not None
    assert record.payload["npe03__Recurring_Donation__r"] == {"Donor_Sync_Id__c": "stripe:sub_1Q"}
    assert record.payload["Name"] == "Donation 2024-03-01"
    assert record.payload["LeadSource"] == "Other"  # the lookup's fallback
    assert record.payload["StageName"] == "Closed Lost"
    assert "Account" not in record.payload
    assert record.depends_on == (
        RecordRef("contact", DONOR),
        RecordRef("recurring_donation", "stripe:sub_1Q"),
    )


def test_a_plan_becomes_an_npsp_recurring_donation(salesforce: DestinationMapping) -> None:
    (record,) = render(salesforce, "recurring_plan", [plan()])
    assert record.entity == "recurring_donation"
    assert record.record_key == "stripe:sub_1Q"
    assert record.priority == 60
    assert dict(record.payload) == {
        "npe03__Contact__r": {"Donor_Sync_Id__c": DONOR},
        "npe03__Amount__c": 10.0,
        "npe03__Installment_Period__c": "Monthly",
        "npsp__InstallmentFrequency__c": 1,
        "npsp__RecurringType__c": "Open",
        "npsp__Status__c": "Active",
        "npe03__Date_Established__c": "2023-11-05",
        "npsp__StartDate__c": "2023-11-05",
        "npe03__Next_Payment_Date__c": "2024-04-05",
    }
    assert record.set_if_empty == frozenset({"npsp__StartDate__c"})
    assert record.depends_on == (RecordRef("contact", DONOR),)


def test_a_value_without_translation_is_an_error_naming_ids_not_values(
    salesforce: DestinationMapping,
) -> None:
    with pytest.raises(RenderError) as caught:
        render_one(salesforce, "recurring_donation", plan(interval_unit="day"))
    message = str(caught.value)
    assert "recurring_donation stripe:sub_1Q" in message
    assert "npe03__Installment_Period__c" in message
    assert "'day'" not in message
    assert caught.value.field == "npe03__Installment_Period__c"
    assert caught.value.record_key == "stripe:sub_1Q"


def test_a_bad_row_does_not_stop_the_others_when_errors_are_collected(salesforce: DestinationMapping) -> None:
    errors: list[RenderError] = []
    rows = [
        plan(plan_key="stripe:sub_a"),
        plan(plan_key="stripe:sub_b", interval_unit="day"),
        plan(plan_key="stripe:sub_c"),
    ]
    records = list(render(salesforce, "recurring_plan", rows, on_error=errors.append))
    assert [r.record_key for r in records] == ["stripe:sub_a", "stripe:sub_c"]
    assert [e.record_key for e in errors] == ["stripe:sub_b"]
    with pytest.raises(RenderError):
        list(render(salesforce, "recurring_plan", rows))


def test_nulls_are_left_out_so_they_never_blank_the_destination(salesforce: DestinationMapping) -> None:
    record = render_one(
        salesforce,
        "contact",
        donor(email=None, phone="", address_line1=None, address_line2=None, city="  ", is_deceased=None),
    )
    assert record is not None
    for absent in (
        "Email",
        "npe01__HomeEmail__c",
        "Phone",
        "MailingStreet",
        "MailingCity",
        "npsp__Deceased__c",
    ):
        assert absent not in record.payload
    assert record.payload["LastName"] == "Lovelace"


def test_rows_missing_a_source_field_and_unknown_kinds_are_errors(salesforce: DestinationMapping) -> None:
    incomplete = donor()
    del incomplete["phone"]
    with pytest.raises(RenderError, match="the donor row has no field 'phone'"):
        render_one(salesforce, "contact", incomplete)
    with pytest.raises(ConfigError, match="unknown kind"):
        list(render(salesforce, "donors", [donor()]))
    with pytest.raises(ConfigError, match="no object 'account'"):
        render_one(salesforce, "account", donor())


def test_push_order_puts_parents_first(salesforce: DestinationMapping, hubspot: DestinationMapping) -> None:
    order = [o.entity for o in push_order(salesforce)]
    assert order == [
        "household_account",
        "organization_account",
        "contact",
        "recurring_donation",
        "opportunity",
    ]
    opportunity = push_order(salesforce)[-1]
    assert opportunity.object_name == "Opportunity"
    assert opportunity.source_kind == "gift"
    assert opportunity.key_field == "gift_key"
    assert opportunity.external_id_field == "Donor_Sync_Id__c"
    assert opportunity.depends_on == ("contact", "household_account", "recurring_donation")
    assert [o.entity for o in push_order(hubspot)] == [
        "contact",
        "deal",
        "deal_contact_association",
        "subscription_statuses",
    ]


# -- HubSpot ---------------------------------------------------------------------------------------


def test_hubspot_contact_deal_and_association(hubspot: DestinationMapping) -> None:
    contact, statuses = render(
        hubspot,
        "donor",
        [
            donor(
                consent_marketing_email_status="opt_in",
                consent_marketing_email_basis="consent",
                consent_fundraising_email_status="opt_out",
            )
        ],
    )
    assert statuses.entity == "subscription_statuses"
    assert statuses.depends_on == (RecordRef("contact", DONOR),)
    assert {k: v for k, v in statuses.payload.items() if k.endswith(("statusState", "legalBasis"))} == {
        "1001:statusState": "SUBSCRIBED",
        "1001:legalBasis": "CONSENT_WITH_NOTICE",
        "1002:statusState": "UNSUBSCRIBED",
        "1003:statusState": "SUBSCRIBED",
        "1003:legalBasis": "CONSENT_WITH_NOTICE",
    }
    assert contact.entity == "contact"
    assert contact.record_key == DONOR
    assert dict(contact.payload) == {
        "email": "ada@example.org",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "phone": "+442071234567",
        "address": "12 St James's Square, Flat 3",
        "city": "London",
        "zip": "SW1Y 4JH",
        "country": "GB",
        "lifecyclestage": "customer",
    }
    assert contact.set_if_empty == frozenset({"lifecyclestage"})
    deal, association = render(hubspot, "gift", [gift()])
    assert deal.entity == "deal"
    assert deal.record_key == "stripe:ch_3PZ"
    assert dict(deal.payload) == {
        "dealname": "Donation 2024-03-01 spring-appeal",
        "amount": 25.5,
        "deal_currency_code": "GBP",
        "closedate": "2024-03-02T04:30:05.250Z",  # 23:30:05.25 at UTC-5, in UTC
        "pipeline": "default",
        "dealstage": "closedwon",
    }
    assert deal.depends_on == ()
    assert association.entity == "deal_contact_association"
    assert association.record_key == "stripe:ch_3PZ"
    assert association.priority == 50
    assert dict(association.payload) == {
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
        "from_entity": "deal",
        "from_object": "deals",
        "to_entity": "contact",
        "to_object": "contacts",
    }
    assert association.depends_on == (RecordRef("deal", "stripe:ch_3PZ"), RecordRef("contact", DONOR))
    assert list(render(hubspot, "household", [household()])) == []


def test_hubspot_company_only_for_organizations(hubspot: DestinationMapping) -> None:
    person = render_one(hubspot, "contact", donor(organization_name="Babbage & Co"))
    org = render_one(hubspot, "contact", donor(is_organization=True, organization_name="Babbage & Co"))
    assert person is not None
    assert org is not None
    assert "company" not in person.payload
    assert org.payload["company"] == "Babbage & Co"


# -- options of a field ----------------------------------------------------------------------------

SNIPPET = """
version: 1
destination: salesforce
objects:
  - name: contact
    object: Contact
    source: donor
    key: donor_id
    external_id: Donor_Sync_Id__c
    mode: {mode}
    {extra}
    fields:
      - to: Phone
        from: phone
        type: string
        sync_nulls: true
      - to: Email
        from: email
        type: string
      - to: Description
        from: [first_name, last_name]
        type: string
        transforms: [{{concat: {{separator: " "}}}}, upper]
        set_if_empty: true
      - to: Gifts__c
        from: lifetime_giving
        type: integer
        transforms: [{{round: 0}}]
      - to: Lapsed__c
        from: recurring_status
        type: string
        when: {{field: recurring_status, one_of: [lapsed, canceled]}}
        transforms: [{{lookup: {{values: {{lapsed: L, canceled: C}}}}}}]
"""


def test_sync_nulls_sends_null_and_set_if_empty_names_the_field() -> None:
    mapping = _mapping(SNIPPET.format(mode="upsert", extra=""))
    record = render_one(mapping, "contact", donor(phone=None, email=None))
    assert record is not None
    assert dict(record.payload) == {"Phone": None, "Description": "ADA LOVELACE", "Gifts__c": 150}
    assert record.set_if_empty == frozenset({"Description"})
    lapsed = render_one(mapping, "contact", donor(recurring_status="lapsed"))
    assert lapsed is not None
    assert lapsed.payload["Lapsed__c"] == "L"


@pytest.mark.parametrize(
    ("mode", "extra", "operation"),
    [
        pytest.param("upsert", "", Operation.UPSERT, id="upsert"),
        pytest.param("update_only", "", Operation.UPDATE, id="update_only"),
        pytest.param("create_only", "", Operation.CREATE, id="create_only"),
        pytest.param("mirror", "mirror_action: delete", Operation.UPSERT, id="mirror"),
    ],
)
def test_modes_give_operations(mode: str, extra: str, operation: Operation) -> None:
    mapping = _mapping(SNIPPET.format(mode=mode, extra=extra))
    record = render_one(mapping, "contact", donor())
    assert record is not None
    assert record.operation == operation
    (info,) = push_order(mapping)
    assert info.mode == SyncMode(mode)
    assert info.operation == operation
    assert info.mirror_action == ("delete" if mode == "mirror" else None)


def test_rendering_does_not_change_its_input(salesforce: DestinationMapping) -> None:
    row: dict[str, Any] = gift()
    before = dict(row)
    list(render(salesforce, "gift", [row]))
    assert row == before
