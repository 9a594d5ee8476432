"""NPSP sObjects (Contact, Household Account, Opportunity, Recurring Donation): fields, describe,
record ids, errors and value conversion."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HOUSEHOLD_RECORD_TYPE_ID = "012000000000HHAAA2"
ORGANIZATION_RECORD_TYPE_ID = "012000000000ORGAA2"
DONATION_RECORD_TYPE_ID = "012000000000DONAA2"
SYSTEM_FIELDS = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")
#: Stages whose Opportunities are closed (``IsClosed``), and the one that is won (``IsWon``).
CLOSED_STAGES = ("Closed Won", "Closed Lost")
WON_STAGE = "Closed Won"
#: sObjects staff can merge in the UI (they carry ``MasterRecordId``).
MERGEABLE = ("Account", "Contact")


class SfError(Exception):
    """A Salesforce error for one record: ``statusCode``, message and the fields concerned."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = list(fields)

    def as_rest(self) -> dict[str, Any]:
        """Return the REST error item (``errorCode``)."""
        return {"message": self.message, "errorCode": self.code, "fields": self.fields}

    def as_collection(self) -> dict[str, Any]:
        """Return the sObject Collections error item (``statusCode``)."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_bulk(self) -> str:
        """Return the Bulk API ``sf__Error`` text: ``CODE:message:fields --``."""
        return f"{self.code}:{self.message}:" + (" ".join(self.fields) + " --" if self.fields else "--")


@dataclass(frozen=True)
class Field:
    """One field of an sObject, as describe reports it."""

    name: str
    type: str = "string"
    label: str = ""
    length: int = 0
    required: bool = False
    external_id: bool = False
    unique: bool = False
    updateable: bool = True
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: str = ""
    relationship: str = ""
    default: str | None = None

    def describe(self) -> dict[str, Any]:
        """Return the field's describe entry."""
        return {
            "name": self.name,
            "label": self.label or self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "length": self.length,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.external_id or self.name == "Id",
            "nillable": not self.required and self.type != "boolean",
            "createable": self.updateable,
            "updateable": self.updateable,
            "custom": self.name.endswith("__c"),
            "defaultValue": self.default,
            "restrictedPicklist": self.restricted,
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship or None,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
        }


@dataclass(frozen=True)
class SObject:
    """An sObject type: key prefix, fields and record types."""

    name: str
    prefix: str
    label: str
    fields: tuple[Field, ...]
    record_types: tuple[tuple[str, str, str], ...] = ()  # (id, name, developer name)

    def field(self, name: str) -> Field | None:
        """Return the field called ``name`` (case-insensitive)."""
        return _FIELD_INDEX[self.name].get(name.lower())

    def relationship(self, name: str) -> Field | None:
        """Return the reference field whose relationship is called ``name`` (case-insensitive)."""
        for f in self.fields:
            if f.relationship and f.relationship.lower() == name.lower():
                return f
        return None

    def describe(self) -> dict[str, Any]:
        """Return the sObject describe document."""
        return {
            "name": self.name,
            "label": self.label,
            "keyPrefix": self.prefix,
            "custom": self.name.endswith("__c"),
            "createable": True,
            "updateable": True,
            "queryable": True,
            "fields": [f.describe() for f in self.fields],
            "recordTypeInfos": [
                {
                    "recordTypeId": rid,
                    "name": name,
                    "developerName": dev,
                    "active": True,
                    "available": True,
                    "defaultRecordTypeMapping": i == 0,
                    "master": False,
                }
                for i, (rid, name, dev) in enumerate(self.record_types)
            ],
            "urls": {"sobject": f"/services/data/v59.0/sobjects/{self.name}"},
        }


def _system_fields() -> tuple[Field, ...]:
    return (
        Field("Id", "id", "Record ID", 18, updateable=False),
        Field("IsDeleted", "boolean", "Deleted", updateable=False),
        Field("CreatedDate", "datetime", "Created Date", updateable=False),
        Field("LastModifiedDate", "datetime", "Last Modified Date", updateable=False),
        Field("SystemModstamp", "datetime", "System Modstamp", updateable=False),
    )


def _master_record(obj: str) -> Field:
    """``MasterRecordId``: set by a merge on the deleted records, pointing at the survivor."""
    return Field(
        "MasterRecordId",
        "reference",
        "Master Record ID",
        18,
        updateable=False,
        reference_to=obj,
        relationship="MasterRecord",
    )


def _sync_id() -> Field:
    return Field("Donor_Sync_Id__c", "string", "Donor Sync Id", 64, external_id=True, unique=True)


_STAGES = ("Prospecting", "Pledged", "Posted", "Closed Won", "Closed Lost")
_PERIODS = ("Monthly", "Quarterly", "Yearly", "Weekly", "1st and 15th")

SOBJECTS: dict[str, SObject] = {
    o.name: o
    for o in (
        SObject(
            "Account",
            "001",
            "Account",
            (
                *_system_fields(),
                _master_record("Account"),
                Field("Name", "string", "Account Name", 255, required=True),
                Field(
                    "RecordTypeId",
                    "reference",
                    "Record Type ID",
                    18,
                    reference_to="RecordType",
                    relationship="RecordType",
                ),
                Field("Type", "picklist", "Account Type", 255, picklist=("Household", "Organization")),
                _sync_id(),
                Field("BillingStreet", "textarea", "Billing Street", 255),
                Field("BillingCity", "string", "Billing City", 40),
                Field("BillingState", "string", "Billing State/Province", 80),
                Field("BillingPostalCode", "string", "Billing Zip/Postal Code", 20),
                Field("BillingCountry", "string", "Billing Country", 80),
                Field("npo02__TotalOppAmount__c", "currency", "Total Gifts", updateable=False),
                Field("npe01__SYSTEM_AccountType__c", "string", "Account Type (system)", 100),
            ),
            (
                (HOUSEHOLD_RECORD_TYPE_ID, "Household Account", "HH_Account"),
                (ORGANIZATION_RECORD_TYPE_ID, "Organization", "Organization"),
            ),
        ),
        SObject(
            "Contact",
            "003",
            "Contact",
            (
                *_system_fields(),
                _master_record("Contact"),
                Field("FirstName", "string", "First Name", 40),
                Field("LastName", "string", "Last Name", 80, required=True),
                Field("Name", "string", "Full Name", 121, updateable=False),
                Field("Email", "email", "Email", 80),
                Field("Phone", "phone", "Phone", 40),
                Field(
                    "AccountId", "reference", "Account ID", 18, reference_to="Account", relationship="Account"
                ),
                _sync_id(),
                Field("Legacy_Id__c", "string", "Legacy Id", 64, external_id=True),
                Field("Stripe_Customer_Id__c", "string", "Stripe Customer Id", 64, unique=True),
                Field("MailingStreet", "textarea", "Mailing Street", 255),
                Field("MailingCity", "string", "Mailing City", 40),
                Field("MailingState", "string", "Mailing State/Province", 80),
                Field("MailingPostalCode", "string", "Mailing Zip/Postal Code", 20),
                Field("MailingCountry", "string", "Mailing Country", 80),
                Field("HasOptedOutOfEmail", "boolean", "Email Opt Out", default="false"),
                Field("DoNotCall", "boolean", "Do Not Call", default="false"),
                Field("npsp__Deceased__c", "boolean", "Deceased", default="false"),
                Field("npsp__Do_Not_Contact__c", "boolean", "Do Not Contact", default="false"),
                Field("npe01__HomeEmail__c", "email", "Personal Email", 80),
                Field(
                    "npe01__Preferred_Email__c",
                    "picklist",
                    "Preferred Email",
                    255,
                    picklist=("Personal", "Work", "Alternate"),
                ),
            ),
        ),
        SObject(
            "Opportunity",
            "006",
            "Opportunity",
            (
                *_system_fields(),
                Field("Name", "string", "Name", 120, required=True),
                Field("Amount", "currency", "Amount"),
                Field("CloseDate", "date", "Close Date", required=True),
                Field("StageName", "picklist", "Stage", 255, required=True, picklist=_STAGES),
                Field("IsClosed", "boolean", "Closed", updateable=False),
                Field("IsWon", "boolean", "Won", updateable=False),
                Field(
                    "AccountId", "reference", "Account ID", 18, reference_to="Account", relationship="Account"
                ),
                Field(
                    "RecordTypeId",
                    "reference",
                    "Record Type ID",
                    18,
                    reference_to="RecordType",
                    relationship="RecordType",
                ),
                _sync_id(),
                Field("Stripe_Charge_Id__c", "string", "Stripe Charge Id", 64, external_id=True, unique=True),
                Field(
                    "npsp__Primary_Contact__c",
                    "reference",
                    "Primary Contact",
                    18,
                    reference_to="Contact",
                    relationship="npsp__Primary_Contact__r",
                ),
                Field(
                    "npe03__Recurring_Donation__c",
                    "reference",
                    "Recurring Donation",
                    18,
                    reference_to="npe03__Recurring_Donation__c",
                    relationship="npe03__Recurring_Donation__r",
                ),
                Field(
                    "npsp__Acknowledgment_Status__c",
                    "picklist",
                    "Acknowledgment Status",
                    255,
                    picklist=(
                        "To Be Acknowledged",
                        "Acknowledged",
                        "Do Not Acknowledge",
                        "Email Acknowledgment Now",
                    ),
                ),
                Field("LeadSource", "picklist", "Lead Source", 255, picklist=("Web", "Event", "Other")),
            ),
            ((DONATION_RECORD_TYPE_ID, "Donation", "Donation"),),
        ),
        SObject(
            "npe03__Recurring_Donation__c",
            "a09",
            "Recurring Donation",
            (
                *_system_fields(),
                Field("Name", "string", "Recurring Donation Name", 80),
                _sync_id(),
                Field(
                    "npe03__Contact__c",
                    "reference",
                    "Contact",
                    18,
                    reference_to="Contact",
                    relationship="npe03__Contact__r",
                ),
                Field(
                    "npe03__Organization__c",
                    "reference",
                    "Organization",
                    18,
                    reference_to="Account",
                    relationship="npe03__Organization__r",
                ),
                Field("npe03__Amount__c", "currency", "Amount"),
                Field(
                    "npe03__Installment_Period__c",
                    "picklist",
                    "Installment Period",
                    255,
                    picklist=_PERIODS,
                    restricted=True,
                    default="Monthly",
                ),
                Field("npe03__Date_Established__c", "date", "Date Established"),
                Field("npe03__Next_Payment_Date__c", "date", "Next Payment Date"),
                Field(
                    "npsp__RecurringType__c",
                    "picklist",
                    "Recurring Type",
                    255,
                    picklist=("Open", "Fixed"),
                    restricted=True,
                    default="Open",
                ),
                Field(
                    "npsp__Status__c",
                    "picklist",
                    "Status",
                    255,
                    picklist=("Active", "Lapsed", "Closed", "Paused"),
                    restricted=True,
                    default="Active",
                ),
                Field("npsp__StartDate__c", "date", "Effective Date"),
                Field(
                    "npsp__Day_of_Month__c",
                    "picklist",
                    "Day of Month",
                    255,
                    picklist=(*map(str, range(1, 29)),),
                ),
                Field("npsp__InstallmentFrequency__c", "double", "Installment Frequency"),
                Field(
                    "npsp__PaymentMethod__c",
                    "picklist",
                    "Payment Method",
                    255,
                    picklist=("Credit Card", "ACH", "Check", "PayPal"),
                ),
                Field("npsp__ClosedReason__c", "string", "Closed Reason", 255),
                Field("npsp__CommitmentId__c", "string", "Commitment Id", 255),
            ),
        ),
    )
}
_FIELD_INDEX: dict[str, dict[str, Field]] = {
    name: {f.name.lower(): f for f in obj.fields} for name, obj in SOBJECTS.items()
}


def find_sobject(name: str) -> SObject | None:
    """Return the sObject called ``name`` (case-insensitive)."""
    for key, obj in SOBJECTS.items():
        if key.lower() == name.lower():
            return obj
    return None


def with_checksum(id15: str) -> str:
    """Return the 18-character form of a 15-character Salesforce id."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, c in enumerate(chunk) if c.isupper())
        suffix += _SUFFIX[bits]
    return id15 + suffix


def make_id(prefix: str, number: int) -> str:
    """Return an 18-character id with key ``prefix`` for the ``number``-th record."""
    digits = ""
    for _ in range(9):
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    return with_checksum(f"{prefix}000{digits}")


def sf_datetime(moment: dt.datetime) -> str:
    """Format a datetime the way the REST API does (``2024-01-02T03:04:05.000+0000``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> dt.datetime:
    """Parse an ISO-8601 datetime as Salesforce accepts it (``Z``, ``+0000`` or ``+00:00``)."""
    value = text.strip().replace("Z", "+00:00")
    value = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", value)
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() not in ("true", "false", "1", "0"):
        raise ValueError(value)
    return str(value).lower() in ("true", "1")


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "currency": float,
    "double": float,
    "boolean": _boolean,
    "date": lambda v: dt.date.fromisoformat(str(v)[:10]).isoformat(),
    "datetime": lambda v: sf_datetime(parse_datetime(str(v))),
}


def coerce(f: Field, value: Any) -> Any:
    """Convert ``value`` (JSON or CSV text) to the stored form of field ``f``; raise SfError."""
    if value is None or value == "" or (isinstance(value, str) and value.strip() == "#N/A"):
        return None
    convert = _CONVERTERS.get(f.type)
    if convert is not None:
        try:
            return convert(value)
        except ValueError:
            raise SfError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {value}", [f.name]
            ) from None
    text = str(value)
    if f.length and len(text) > f.length:
        raise SfError(
            "STRING_TOO_LONG",
            f"{f.label}: data value too large: {text[:20]} (max length={f.length})",
            [f.name],
        )
    if f.type == "email" and not _EMAIL.match(text):
        raise SfError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [f.name])
    if f.type == "picklist" and f.restricted and text not in f.picklist:
        raise SfError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{f.label}: bad value for restricted picklist field: {text}",
            [f.name],
        )
    return text


def index_key(value: Any) -> str:
    """Return the index key of an external-id value (external ids are case-insensitive)."""
    return str(value).lower()
