"""Erase a donor from Salesforce NPSP: Contact anonymized or deleted, gifts kept without PII.

1. Find the donor's Contacts: by the Ids core knows, by ``Donor_Sync_Id__c`` (every donor id,
   merged ones included) and by email (``Email``, ``npe01__HomeEmail__c``).
2. Gifts are financial records and stay: an Opportunity (or NPSP Recurring Donation) whose Name
   holds the donor's name, email or phone (NPSP names installments after the donor) is renamed.
   Before a delete, their lookups to the Contact are cleared.
3. The Contact's PII fields are blanked (``anonymize``); ``delete`` then deletes it, by a Bulk
   API ``hardDelete`` job unless configured to use the recycle bin.
4. The Household Account, once no other member is left, is anonymized (or deleted when no gift
   hangs on it and ``household_account: delete``).
5. Read back: ``queryAll`` by Contact Id (hard delete: none; soft: only deleted rows without PII;
   anonymize: no PII field set), by external id and by email (none), and the names of the gifts
   and Accounts touched (no PII).

Idempotent: a second run finds only anonymized or no Contacts and answers ``not_held``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from donor_sync.delivery.connectors.salesforce import PollPolicy, SalesforceClient, bulk, collections
from donor_sync.delivery.connectors.salesforce.collections import RowOutcome
from donor_sync.delivery.connectors.salesforce.soql import chunks, ident, in_list
from donor_sync.delivery.contracts import DeliveryError, DestinationUnavailableError, FailureClass
from donor_sync.privacy.contracts import ErasureSubject, Receipt, RemoteRef
from donor_sync.privacy.erasers._common import PiiMatcher, failed_receipt
from donor_sync.privacy.erasers.settings import SalesforceErasure

log = logging.getLogger(__name__)

SYSTEM = "salesforce"
_OPP = "Opportunity"
_RD = "npe03__Recurring_Donation__c"
_PREFIX = {"Contact": "003", "Account": "001", _OPP: "006", _RD: "a09"}
_ENTITY_OBJECT = {
    "contact": "Contact",
    "household_account": "Account",
    "organization_account": "Account",
    "opportunity": _OPP,
    "recurring_donation": _RD,
}


class _RowsFailedError(Exception):
    """Some rows of a write came back failed (codes only)."""

    def __init__(self, step: str, outcomes: Sequence[RowOutcome]) -> None:
        codes = sorted({e.code for o in outcomes if not o.ok for e in o.errors})
        super().__init__(f"{step}: {len([o for o in outcomes if not o.ok])} rows failed ({', '.join(codes)})")
        self.step = step
        self.codes = codes


def _ids_of(subject: ErasureSubject, sobject: str) -> list[str]:
    refs = subject.remote_ids.get(SYSTEM, ())
    return sorted(
        {
            r.remote_id
            for r in refs
            if _ENTITY_OBJECT.get(r.entity) == sobject and r.remote_id.startswith(_PREFIX[sobject])
        }
    )


class SalesforceEraser:
    """Erase (anonymize or delete) a donor's Contacts in one org; see the module docstring.

    :param client: an authenticated :class:`SalesforceClient`.
    :param settings: the ``salesforce`` section of erasure.yaml.
    :param poll: how the ``hardDelete`` job is polled (tests poll fast).
    """

    system = SYSTEM

    def __init__(
        self, client: SalesforceClient, settings: SalesforceErasure, *, poll: PollPolicy | None = None
    ) -> None:
        self.client = client
        self.settings = settings
        self.poll = poll or PollPolicy()

    # -- the protocol ------------------------------------------------------------------------------
    def erase(self, subject: ErasureSubject) -> Receipt:
        """Erase the subject here and read back; never raises for vendor refusals."""
        action = "deleted" if self.settings.method == "delete" else "anonymized"
        step = "find"
        refs: list[RemoteRef] = []
        try:
            contacts = self._contacts(subject)
            accounts = self._accounts(subject, contacts)
            matcher = self._matcher(subject, contacts.values())
            step = "gifts"
            opportunities = self._opportunities(subject, contacts, accounts)
            renamed = self._rename_gifts(opportunities, matcher)
            plans = self._recurring_donations(contacts)
            renamed_plans = self._rename_plans(plans, matcher)
            holding = [c for c in contacts.values() if self._holds_pii(c)]
            if self.settings.method == "delete" and contacts:
                self._unlink(contacts, opportunities, plans)
            step = "contacts"
            self._blank(holding)
            refs += [RemoteRef("contact", c["Id"]) for c in holding]
            deleted = 0
            if self.settings.method == "delete" and contacts:
                deleted = self._delete(sorted(contacts))
            step = "household"
            anonymized, removed = self._households(accounts, set(contacts), matcher)
            refs += [RemoteRef("household_account", i) for i in [*anonymized, *removed]]
            refs += [RemoteRef("opportunity", i) for i in renamed]
            refs += [RemoteRef("recurring_donation", i) for i in renamed_plans]
            step = "read-back"
            verified, verification = self._read_back(
                subject, contacts, opportunities, plans, anonymized, matcher
            )
        except (DeliveryError, _RowsFailedError, ValueError) as exc:
            log.warning("Salesforce erasure for request %s failed at %s", subject.request_id, step)
            if isinstance(exc, _RowsFailedError):
                exc = DestinationUnavailableError(
                    str(exc), error_class=FailureClass.PERMANENT, error_code=",".join(exc.codes)[:80]
                )
            return failed_receipt(SYSTEM, action, exc, refs, step)
        acted = bool(holding or deleted or renamed or renamed_plans or anonymized or removed)
        counts = {
            "contacts_found": len(contacts),
            "contacts_blanked": len(holding),
            "contacts_deleted": deleted,
            "opportunities_renamed": len(renamed),
            "recurring_donations_renamed": len(renamed_plans),
            "accounts_anonymized": len(anonymized),
            "accounts_deleted": len(removed),
        }
        return Receipt(
            system=SYSTEM,
            action=action if acted else "not_held",
            status="done",
            remote_refs=tuple(refs),
            counts=counts,
            verified=verified,
            verification=verification,
        )

    # -- finding ---------------------------------------------------------------------------------
    def _query(self, soql: str, *, all_rows: bool = False) -> list[dict[str, Any]]:
        if not all_rows:
            return list(self.client.query(soql))
        body = self.client.get_json("/queryAll", {"q": soql})
        rows = [{k: v for k, v in r.items() if k != "attributes"} for r in body.get("records", [])]
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            body = self.client.get_json(str(body["nextRecordsUrl"]))
            rows += [{k: v for k, v in r.items() if k != "attributes"} for r in body.get("records", [])]
        return rows

    def _select(
        self, sobject: str, fields: Iterable[str], where_field: str, values: Sequence[Any], **kw: Any
    ) -> list[dict[str, Any]]:
        names = ", ".join(ident(f) for f in dict.fromkeys(fields))
        rows: list[dict[str, Any]] = []
        for chunk in chunks(list(values)):
            rows += self._query(
                f"SELECT {names} FROM {ident(sobject)} WHERE {ident(where_field)} IN {in_list(chunk)}", **kw
            )
        return rows

    def _contact_fields(self) -> list[str]:
        return ["Id", "AccountId", "FirstName", "LastName", "Email", "Phone", *self.settings.contact_clear]

    def _contacts(self, subject: ErasureSubject) -> dict[str, dict[str, Any]]:
        fields = self._contact_fields()
        found: dict[str, dict[str, Any]] = {}
        lookups: list[tuple[str, Sequence[str]]] = [
            ("Id", _ids_of(subject, "Contact")),
            (self.settings.external_id_field, list(subject.donor_ids)),
            ("Email", list(subject.emails)),
            ("npe01__HomeEmail__c", list(subject.emails)),
        ]
        for where_field, values in lookups:
            if values:
                for row in self._select("Contact", fields, where_field, values):
                    found[str(row["Id"])] = row
        return found

    def _accounts(
        self, subject: ErasureSubject, contacts: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        ids = {str(c["AccountId"]) for c in contacts.values() if c.get("AccountId")}
        ids |= set(_ids_of(subject, "Account"))
        if not ids:
            return {}
        fields = ["Id", "Name", "Type", *self.settings.account_clear]
        return {str(r["Id"]): r for r in self._select("Account", fields, "Id", sorted(ids))}

    def _matcher(
        self,
        subject: ErasureSubject,
        contacts: Iterable[Mapping[str, Any]],
    ) -> PiiMatcher:
        """Return a matcher of the donor's names (as Salesforce holds them), emails and phones."""
        placeholder = self.settings.anonymized_last_name
        rows = list(contacts)
        names = [str(c.get(f) or "") for c in rows for f in ("FirstName", "LastName")]
        emails = [
            *subject.emails,
            *(str(c.get(f) or "") for c in rows for f in ("Email", "npe01__HomeEmail__c")),
        ]
        phones = [*subject.phones, *(str(c.get("Phone") or "") for c in rows)]
        return PiiMatcher(
            names=[n for n in names if n != placeholder],
            emails=emails,
            phones=phones,
            ignore=[
                placeholder,
                self.settings.anonymized_household_name,
                "Household Donation Recurring Organization",
            ],
        )

    def _opportunities(
        self,
        subject: ErasureSubject,
        contacts: Mapping[str, Any],
        accounts: Mapping[str, Any],
    ) -> dict[str, dict[str, Any]]:
        fields = ["Id", "Name", "CloseDate", "Amount", "AccountId", "npsp__Primary_Contact__c"]
        found: dict[str, dict[str, Any]] = {}
        for where_field, values in (
            ("Id", _ids_of(subject, _OPP)),
            ("npsp__Primary_Contact__c", sorted(contacts)),
            ("AccountId", sorted(accounts)),
        ):
            if values:
                found.update({str(r["Id"]): r for r in self._select(_OPP, fields, where_field, values)})
        return found

    def _recurring_donations(self, contacts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        if not contacts:
            return {}
        rows = self._select(_RD, ["Id", "Name", "npe03__Contact__c"], "npe03__Contact__c", sorted(contacts))
        return {str(r["Id"]): r for r in rows}

    def _holds_pii(self, contact: Mapping[str, Any]) -> bool:
        if contact.get("LastName") != self.settings.anonymized_last_name:
            return True
        return any(contact.get(f) not in (None, "") for f in self.settings.contact_clear)

    # -- writing ---------------------------------------------------------------------------------
    def _update(self, sobject: str, records: Sequence[Mapping[str, Any]], step: str) -> None:
        if not records:
            return
        outcomes = collections.update(self.client, sobject, records)
        if not all(o.ok for o in outcomes):
            raise _RowsFailedError(step, outcomes)

    def _rename_gifts(self, opportunities: Mapping[str, Mapping[str, Any]], matcher: PiiMatcher) -> list[str]:
        updates = [
            {
                "Id": opp_id,
                "Name": self.settings.opportunity_name.format(
                    CloseDate=opp.get("CloseDate") or "", Amount=opp.get("Amount") or ""
                )[:120],
            }
            for opp_id, opp in sorted(opportunities.items())
            if matcher.found_in(str(opp.get("Name") or ""))
        ]
        self._update(_OPP, updates, "rename opportunities")
        return [str(u["Id"]) for u in updates]

    def _rename_plans(self, plans: Mapping[str, Mapping[str, Any]], matcher: PiiMatcher) -> list[str]:
        updates = [
            {"Id": plan_id, "Name": self.settings.recurring_donation_name}
            for plan_id, plan in sorted(plans.items())
            if matcher.found_in(str(plan.get("Name") or ""))
        ]
        self._update(_RD, updates, "rename recurring donations")
        return [str(u["Id"]) for u in updates]

    def _unlink(
        self,
        contacts: Mapping[str, Any],
        opportunities: Mapping[str, Mapping[str, Any]],
        plans: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Clear the gifts' lookups to Contacts about to be deleted (the gifts stay)."""
        self._update(
            _OPP,
            [
                {"Id": i, "npsp__Primary_Contact__c": None}
                for i, o in sorted(opportunities.items())
                if o.get("npsp__Primary_Contact__c") in contacts
            ],
            "unlink opportunities",
        )
        self._update(
            _RD,
            [
                {"Id": i, "npe03__Contact__c": None}
                for i, p in sorted(plans.items())
                if p.get("npe03__Contact__c")
            ],
            "unlink recurring donations",
        )

    def _blank(self, contacts: Sequence[Mapping[str, Any]]) -> None:
        blanks: dict[str, Any] = dict.fromkeys(self.settings.contact_clear)
        records = [
            {
                "Id": c["Id"],
                **blanks,
                "LastName": self.settings.anonymized_last_name,
                **self.settings.contact_set,
            }
            for c in contacts
        ]
        self._update("Contact", records, "blank contacts")

    def _delete(self, ids: Sequence[str]) -> int:
        if self.settings.hard_delete:
            outcomes = bulk.run_job(
                self.client,
                "Contact",
                "hardDelete",
                [{"Id": i} for i in ids],
                key_column="Id",
                poll=self.poll,
            )
            failed = [o for o in outcomes.values() if not o.ok]
            if failed or len(outcomes) != len(ids):
                raise _RowsFailedError("hard delete contacts", failed or [RowOutcome(False)])
            return len(ids)
        results = collections.delete(self.client, ids)
        failed = [o for o in results if not o.ok and not any(e.code == "ENTITY_IS_DELETED" for e in o.errors)]
        if failed:
            raise _RowsFailedError("delete contacts", failed)
        return sum(1 for o in results if o.ok)

    def _households(
        self, accounts: Mapping[str, Mapping[str, Any]], contact_ids: set[str], matcher: PiiMatcher
    ) -> tuple[list[str], list[str]]:
        """Anonymize (or delete) the donor's Accounts no other member is left in.

        :return: the ids anonymized and the ids deleted.
        """
        mode = self.settings.household_account
        if mode == "keep" or not accounts:
            return [], []
        members = self._select("Contact", ["Id", "AccountId"], "AccountId", sorted(accounts))
        shared = {str(m["AccountId"]) for m in members if str(m["Id"]) not in contact_ids}
        # Organization Accounts are the organization's, not a person's: left as they are.
        alone = {i: a for i, a in accounts.items() if i not in shared and a.get("Type") != "Organization"}
        to_delete: list[str] = []
        if mode == "delete" and alone:
            with_gifts = {
                str(r["AccountId"])
                for r in self._select(_OPP, ["Id", "AccountId"], "AccountId", sorted(alone))
            }
            to_delete = sorted(i for i in alone if i not in with_gifts)
        placeholder = self.settings.anonymized_household_name
        updates = [
            {"Id": i, "Name": placeholder, **dict.fromkeys(self.settings.account_clear)}
            for i, account in sorted(alone.items())
            if i not in to_delete and self._account_holds_pii(account, matcher)
        ]
        self._update("Account", updates, "anonymize households")
        if to_delete:
            results = collections.delete(self.client, to_delete)
            if not all(o.ok for o in results):
                raise _RowsFailedError("delete households", results)
        return [str(u["Id"]) for u in updates], to_delete

    def _account_holds_pii(self, account: Mapping[str, Any], matcher: PiiMatcher) -> bool:
        if account.get("Name") != self.settings.anonymized_household_name and (
            matcher.found_in(str(account.get("Name") or "")) or account.get("Type") == "Household"
        ):
            return True
        return any(account.get(f) not in (None, "") for f in self.settings.account_clear)

    # -- reading back ----------------------------------------------------------------------------
    def _read_back(  # noqa: PLR0917 - private, called once
        self,
        subject: ErasureSubject,
        contacts: Mapping[str, Any],
        opportunities: Mapping[str, Any],
        plans: Mapping[str, Any],
        anonymized_accounts: Sequence[str],
        matcher: PiiMatcher,
    ) -> tuple[bool, str]:
        """Ask again; return (no PII left, what was asked and found — counts and ids only)."""
        problems: list[str] = []
        notes: list[str] = []
        if contacts:
            rows = self._select(
                "Contact",
                ["Id", "IsDeleted", *self._contact_fields()[2:]],
                "Id",
                sorted(contacts),
                all_rows=True,
            )
            if self.settings.method == "delete":
                live = [r for r in rows if not r.get("IsDeleted")]
                if live:
                    problems.append(f"{len(live)} Contacts still live")
                if self.settings.hard_delete and rows:
                    problems.append(f"{len(rows)} Contacts still in the recycle bin")
            with_pii = [r["Id"] for r in rows if self._holds_pii(r)]
            if with_pii:
                problems.append(f"Contacts still holding PII: {', '.join(with_pii[:5])}")
            notes.append(
                f"queryAll Contact by Id: {len(contacts)} asked, {len(rows)} rows, {len(with_pii)} with PII"
            )
        for where_field, values in (
            (self.settings.external_id_field, list(subject.donor_ids)),
            ("Email", list(subject.emails)),
            ("npe01__HomeEmail__c", list(subject.emails)),
        ):
            if values:
                rows = self._select("Contact", ["Id"], where_field, values)
                notes.append(f"Contact by {where_field}: {len(rows)} found")
                if rows:
                    problems.append(
                        f"Contacts still found by {where_field}: {', '.join(r['Id'] for r in rows[:5])}"
                    )
        for sobject, ids in (
            (_OPP, sorted(opportunities)),
            (_RD, sorted(plans)),
            ("Account", list(anonymized_accounts)),
        ):
            if ids:
                rows = self._select(sobject, ["Id", "Name"], "Id", ids)
                named = [r["Id"] for r in rows if matcher.found_in(str(r.get("Name") or ""))]
                notes.append(f"{sobject} names: {len(rows)} checked, {len(named)} with PII")
                if named:
                    problems.append(f"{sobject} names still holding PII: {', '.join(named[:5])}")
        return not problems, "; ".join(notes + problems) or "nothing to ask: no identifiers"
