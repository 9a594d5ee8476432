"""NPSP Enhanced Recurring Donations automation: the installment Opportunities NPSP creates itself.

An active recurring donation, when created, gets its next installment: an open Opportunity
(StageName ``Pledged``) dated ``npe03__Next_Payment_Date__c`` (else the effective date, else the
date established, else today), for ``npe03__Amount__c``, linked to the recurring donation, to its
contact (``npsp__Primary_Contact__c``) and to the contact's household (``AccountId``; the
organization for an organizational donation), with no ``Donor_Sync_Id__c``. When an installment
closes, NPSP schedules the one after it (by ``npe03__Installment_Period__c`` and
``npsp__InstallmentFrequency__c``) unless an open one already follows, and moves the recurring
donation's next payment date. This is what a sync must match payments to instead of inserting
parallel gifts.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from sandbox.emulators.salesforce.objects import SOBJECTS
from sandbox.emulators.salesforce.store import Change, Store, Transaction

RD = "npe03__Recurring_Donation__c"
OPEN_STAGE = "Pledged"
ACTIVE = "Active"
_MONTHS = {"Monthly": 1, "Quarterly": 3, "Yearly": 12}


def add_months(day: dt.date, months: int, day_of_month: int | None = None) -> dt.date:
    """Return ``day`` moved by ``months``, on ``day_of_month`` (or the same day), clamped to the month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day_of_month or day.day, last))


def next_installment_date(plan: dict[str, Any], after: dt.date) -> dt.date:
    """Return the installment date that follows ``after`` on ``plan``'s schedule."""
    period = plan.get("npe03__Installment_Period__c") or "Monthly"
    frequency = max(1, int(plan.get("npsp__InstallmentFrequency__c") or 1))
    day_of_month = int(plan["npsp__Day_of_Month__c"]) if plan.get("npsp__Day_of_Month__c") else None
    if period == "Weekly":
        return after + dt.timedelta(weeks=frequency)
    if period == "1st and 15th":
        return after.replace(day=15) if after.day < 15 else add_months(after, 1, 1)
    return add_months(after, _MONTHS.get(period, 1) * frequency, day_of_month)


def _first_date(plan: dict[str, Any], now: dt.datetime) -> dt.date:
    for name in ("npe03__Next_Payment_Date__c", "npsp__StartDate__c", "npe03__Date_Established__c"):
        if plan.get(name):
            return dt.date.fromisoformat(str(plan[name]))
    return now.date()


def _donor(store: Store, plan: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """Return (contact id, account id, display name) of the plan's donor."""
    contact = store.find("Contact", plan["npe03__Contact__c"]) if plan.get("npe03__Contact__c") else None
    if contact is not None:
        return contact["Id"], contact.get("AccountId"), str(contact.get("Name") or "")
    org_id = plan.get("npe03__Organization__c")
    org = store.find("Account", org_id) if org_id else None
    if org is not None:
        return None, org["Id"], str(org.get("Name") or "")
    return None, None, ""


def _create_installment(
    store: Store, plan: dict[str, Any], close: dt.date, now: dt.datetime, tx: Transaction
) -> str:
    """Insert the open installment of ``plan`` on ``close``; move the plan's next payment date."""
    contact_id, account_id, donor = _donor(store, plan)
    amount = plan.get("npe03__Amount__c")
    label = f"{donor} " if donor else ""
    name = f"{label}{amount if amount is not None else ''} Donation {close.isoformat()}".strip()
    record = {
        "Name": name[:120],
        "StageName": OPEN_STAGE,
        "CloseDate": close.isoformat(),
        "Amount": amount,
        "npe03__Recurring_Donation__c": plan["Id"],
        "npsp__Primary_Contact__c": contact_id,
        "AccountId": account_id,
    }
    opportunity = SOBJECTS["Opportunity"]
    installment_id, _ = store.write(opportunity, None, store.validate(opportunity, record), now, tx)
    if plan.get("npe03__Next_Payment_Date__c") != close.isoformat():
        store.touch(SOBJECTS[RD], plan["Id"], {"npe03__Next_Payment_Date__c": close.isoformat()}, now, tx)
    return installment_id


def after_write(store: Store, change: Change) -> None:
    """Run NPSP's recurring-donation triggers after a write (the emulator's ``Store.after_write``)."""
    record, old, now = change.record, change.old, change.now
    if change.obj.name == RD and old is None and record.get("npsp__Status__c") == ACTIVE:
        _create_installment(store, record, _first_date(record, now), now, change.tx)
        return
    if change.obj.name != "Opportunity" or old is None or old.get("IsClosed") or not record["IsClosed"]:
        return  # only an installment that closes with this write schedules the next one
    plan = store.find(RD, str(record[RD])) if record.get(RD) else None
    if plan is None or plan.get("npsp__Status__c") != ACTIVE:
        return
    scheduled = dt.date.fromisoformat(str(old.get("CloseDate") or record["CloseDate"]))
    siblings = store.children(SOBJECTS["Opportunity"], RD, plan["Id"])
    others = [r for r in siblings if r["Id"] != record["Id"]]
    if any(not r["IsClosed"] and dt.date.fromisoformat(r["CloseDate"]) > scheduled for r in others):
        return
    following = next_installment_date(plan, scheduled)
    taken = {r["CloseDate"] for r in others}
    while following.isoformat() in taken:
        following = next_installment_date(plan, following)
    _create_installment(store, plan, following, now, change.tx)
