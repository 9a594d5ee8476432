"""How each destination erases a donor: ``include/mappings/privacy/erasure.yaml``, validated.

Secrets never live in the file: outbound subscribers name an Airflow connection (``connection``)
whose password holds the signing secret(s) and whose host is the base URL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

__all__ = [
    "BrazeErasure",
    "ErasureSettings",
    "HubSpotErasure",
    "MailchimpErasure",
    "OutboundErasure",
    "OutboundSubscriber",
    "SalesforceErasure",
    "default_config_path",
    "load_erasure_settings",
]

_API_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Contact fields blanked when a Contact is anonymized (and before it is deleted, so a soft-deleted
#: copy in the recycle bin holds no PII either).
DEFAULT_CONTACT_CLEAR: tuple[str, ...] = (
    "FirstName",
    "Email",
    "npe01__HomeEmail__c",
    "Phone",
    "MailingStreet",
    "MailingCity",
    "MailingState",
    "MailingPostalCode",
    "MailingCountry",
    "Donor_Sync_Id__c",
    "Legacy_Id__c",
    "Stripe_Customer_Id__c",
)
#: Contact fields set when a Contact is anonymized: nobody may contact it again.
DEFAULT_CONTACT_SET: dict[str, bool | str] = {
    "HasOptedOutOfEmail": True,
    "DoNotCall": True,
    "npsp__Do_Not_Contact__c": True,
}
DEFAULT_ACCOUNT_CLEAR: tuple[str, ...] = (
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "BillingCountry",
    "Donor_Sync_Id__c",
)


class SalesforceErasure(_Strict):
    """Salesforce NPSP.

    :param method: ``anonymize`` keeps the Contact (its giving history rolls up to an anonymous
        person) with every PII field blanked; ``delete`` blanks it, then deletes it.
    :param hard_delete: ``delete`` through a Bulk API 2.0 ``hardDelete`` job (the org's user
        needs "Bulk API Hard Delete"), so no copy waits 15 days in the recycle bin; false moves
        it to the recycle bin, already blanked.
    :param household_account: the donor's Household Account once no other member is left:
        ``anonymize`` (name and billing address), ``delete`` (only when no gift hangs on it,
        else anonymized: gifts are financial records), ``keep``.
    :param opportunity_name: the new Name of a gift (Opportunity) whose name holds the donor's
        name or email; ``{CloseDate}`` and ``{Amount}`` are filled in.
    """

    enabled: bool = True
    method: Literal["delete", "anonymize"] = "anonymize"
    hard_delete: bool = True
    household_account: Literal["anonymize", "delete", "keep"] = "anonymize"
    anonymized_last_name: str = Field(default="Anonymized", min_length=1, max_length=80)
    anonymized_household_name: str = Field(default="Anonymized Household", min_length=1, max_length=255)
    opportunity_name: str = Field(default="Donation {CloseDate}", min_length=1, max_length=120)
    recurring_donation_name: str = Field(default="Recurring Donation", min_length=1, max_length=80)
    contact_clear: tuple[str, ...] = DEFAULT_CONTACT_CLEAR
    contact_set: dict[str, bool | str] = Field(default_factory=lambda: dict(DEFAULT_CONTACT_SET))
    account_clear: tuple[str, ...] = DEFAULT_ACCOUNT_CLEAR
    external_id_field: str = Field(default="Donor_Sync_Id__c", pattern=_API_NAME)

    @field_validator("contact_clear", "account_clear")
    @classmethod
    def _api_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not re.match(_API_NAME, v)]
        if bad:
            raise ValueError(f"not Salesforce field API names: {bad}")
        if "LastName" in value or "Name" in value:
            raise ValueError("LastName/Name are required fields: they are replaced, not cleared")
        return value

    @field_validator("opportunity_name")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(CloseDate="2000-01-01", Amount="0")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{CloseDate}} and {{Amount}} may be filled in ({exc})") from None
        return value


class HubSpotErasure(_Strict):
    """HubSpot: the GDPR delete of every contact of the donor (deals stay, renamed if named after them).

    :param blocklist_unmatched_emails: also GDPR-delete by email the donor's emails no contact
        holds, which makes HubSpot refuse to re-create them from forms and imports.
    :param deal_name: the new ``dealname`` of a deal whose name holds PII; ``{closedate}`` filled in.
    """

    enabled: bool = True
    method: Literal["gdpr_delete"] = "gdpr_delete"
    blocklist_unmatched_emails: bool = True
    deal_name: str = Field(default="Donation {closedate}", min_length=1, max_length=200)

    @field_validator("deal_name")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(closedate="2000-01-01")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{closedate}} may be filled in ({exc})") from None
        return value


class MailchimpErasure(_Strict):
    """Mailchimp: every email of the donor, in the configured audiences.

    :param method: ``delete_permanent`` forgets the email for good (a later import of it is
        refused); ``archive`` only hides the member (its data stays: not an erasure).
    :param list_ids: audiences to erase from; empty: the connection's ``list_id`` extra.
    :param all_lists: erase from every audience of the account instead.
    """

    enabled: bool = True
    method: Literal["delete_permanent", "archive"] = "delete_permanent"
    list_ids: tuple[str, ...] = ()
    all_lists: bool = False


class BrazeErasure(_Strict):
    """Braze: ``/users/delete`` by external id (the donor ids), and by email/phone for email-only profiles."""

    enabled: bool = True
    method: Literal["users_delete"] = "users_delete"
    by_email: bool = True
    by_phone: bool = False


class OutboundSubscriber(_Strict):
    """A system notified of erasures with a signed ``donor.erased`` event.

    :param connection: Airflow connection: host = base URL, password = signing secret(s),
        comma-separated while one is rolled.
    :param url: the full URL; default: the connection's host + ``path``.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    connection: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,250}$")
    path: str = Field(default="/", pattern=r"^/")
    url: str | None = Field(default=None, pattern=r"^https://")


class OutboundErasure(_Strict):
    """Outbound webhook subscribers to tell about an erasure."""

    enabled: bool = True
    subscribers: tuple[OutboundSubscriber, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> OutboundErasure:
        names = [s.name for s in self.subscribers]
        if len(names) != len(set(names)):
            raise ValueError("subscriber names must be unique")
        return self


class _Destinations(_Strict):
    salesforce: SalesforceErasure = SalesforceErasure()
    hubspot: HubSpotErasure = HubSpotErasure()
    mailchimp: MailchimpErasure = MailchimpErasure()
    braze: BrazeErasure = BrazeErasure()
    outbound_webhooks: OutboundErasure = OutboundErasure()


class ErasureSettings(_Strict):
    """The whole file."""

    version: Literal[1] = 1
    destinations: _Destinations = _Destinations()

    def enabled_systems(self) -> list[str]:
        """Return the systems whose erasure is on, in cascade order."""
        d = self.destinations
        pairs: list[tuple[str, bool]] = [
            ("salesforce", d.salesforce.enabled),
            ("hubspot", d.hubspot.enabled),
            ("mailchimp", d.mailchimp.enabled),
            ("braze", d.braze.enabled),
            ("outbound_webhooks", d.outbound_webhooks.enabled),
        ]
        return [name for name, on in pairs if on]


def default_config_path() -> Path:
    """Return ``include/mappings/privacy/erasure.yaml``."""
    return include_dir() / "mappings" / "privacy" / "erasure.yaml"


def load_erasure_settings(path: Path | None = None) -> ErasureSettings:
    """Load and validate the erasure settings.

    :raises ConfigError: naming the file, line and field of every problem.
    """
    return load_yaml_model(path or default_config_path(), ErasureSettings)
