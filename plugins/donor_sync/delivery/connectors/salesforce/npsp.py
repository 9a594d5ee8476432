"""Recurring gifts matched to the installment Opportunities NPSP creates itself.

Enhanced Recurring Donations create open installment Opportunities ahead of time. A payment
that arrives from a donation platform is one of those installments, so inserting it as a new
Opportunity would count the gift twice. Before an installment gift is upserted, this module
looks for an open installment of the same recurring donation that donor-sync has not claimed
yet (``Donor_Sync_Id__c`` empty) whose close date is nearest the gift's, within one installment
period; the connector then claims it (sets ``Donor_Sync_Id__c`` to the gift key, by Id) and the
normal upsert on the external id updates it. Once claimed, re-runs find it by external id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from donor_sync.delivery.connectors.salesforce.client import SalesforceClient
from donor_sync.delivery.connectors.salesforce.soql import chunks, ident, in_list, literal
from donor_sync.delivery.contracts import OutboundRecord

log = logging.getLogger(__name__)

RD_RELATIONSHIP = "npe03__Recurring_Donation__r"
RD_FIELD = "npe03__Recurring_Donation__c"
RD_PERIOD_FIELD = "npe03__Installment_Period__c"
#: The standard way to ask for installments not yet paid; an org whose stages do not set
#: IsClosed (or a test double without it) passes its own condition.
OPEN_INSTALLMENT = "IsClosed = false"
PERIOD_DAYS: Mapping[str, int] = {
    "Weekly": 7,
    "1st and 15th": 16,
    "Monthly": 31,
    "Quarterly": 92,
    "Yearly": 366,
}
DEFAULT_PERIOD_DAYS = 31


@dataclass(frozen=True)
class _Gift:
    record_key: str
    close_date: dt.date
    rd_key: str | None  # the recurring donation's external id, when referenced that way
    rd_id: str | None  # its Salesforce id, when known


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value if not isinstance(value, dt.datetime) else value.date()
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _assign(
    gifts: Sequence[_Gift], installments: Sequence[tuple[str, dt.date]], window: dt.timedelta
) -> dict[str, str]:
    """Pair gifts with installments of one plan, closest pairs first, each used at most once.

    Closest-first (rather than gift by gift) keeps a late payment from taking the installment
    that the next, on-time payment belongs to.
    """
    pairs = sorted(
        (abs(close - gift.close_date), close, gift.close_date, gift.record_key, installment_id)
        for gift in gifts
        for installment_id, close in installments
        if abs(close - gift.close_date) <= window
    )
    matches: dict[str, str] = {}
    taken: set[str] = set()
    for _, _, _, key, installment_id in pairs:
        if key not in matches and installment_id not in taken:
            matches[key] = installment_id
            taken.add(installment_id)
    return matches


class InstallmentMatcher:
    """Find the NPSP installment each recurring gift of a batch should become.

    :param open_condition: SOQL condition selecting unpaid installments.
    """

    def __init__(
        self,
        client: SalesforceClient,
        *,
        opportunity: str = "Opportunity",
        recurring_donation: str = "npe03__Recurring_Donation__c",
        external_id_field: str = "Donor_Sync_Id__c",
        rd_external_id_field: str = "Donor_Sync_Id__c",
        open_condition: str = OPEN_INSTALLMENT,
    ) -> None:
        self.client = client
        self.opportunity = ident(opportunity)
        self.recurring_donation = ident(recurring_donation)
        self.ext = ident(external_id_field)
        self.rd_ext = ident(rd_external_id_field)
        self.open_condition = open_condition

    def match(self, records: Sequence[OutboundRecord]) -> dict[str, str]:
        """Return ``{gift record_key: installment Id}`` for gifts that should claim an installment."""
        gifts = [g for g in (self._gift(r) for r in records if r.remote_id is None) if g is not None]
        if not gifts:
            return {}
        landed = self._landed([g.record_key for g in gifts])
        gifts = [g for g in gifts if g.record_key not in landed]
        plans = self._plans(gifts)
        by_plan: dict[str, list[_Gift]] = {}
        for gift in gifts:
            plan = plans.get(gift.rd_id or "") or plans.get(f"key:{gift.rd_key}")
            if plan is not None:
                by_plan.setdefault(plan[0], []).append(gift)
        if not by_plan:
            return {}
        periods = {
            rd_id: PERIOD_DAYS.get(period or "", DEFAULT_PERIOD_DAYS) for rd_id, period in plans.values()
        }
        pool = self._open_installments(by_plan, periods)
        matches: dict[str, str] = {}
        for rd_id, plan_gifts in by_plan.items():
            matches.update(_assign(plan_gifts, pool.get(rd_id, []), dt.timedelta(days=periods[rd_id])))
        log.info("Matched %d of %d recurring gifts to open NPSP installments", len(matches), len(gifts))
        return matches

    def _gift(self, record: OutboundRecord) -> _Gift | None:
        payload = record.payload
        close_date = _date(payload.get("CloseDate"))
        ref = payload.get(RD_RELATIONSHIP)
        rd_key = str(ref[self.rd_ext]) if isinstance(ref, Mapping) and ref.get(self.rd_ext) else None
        rd_id = str(payload[RD_FIELD]) if payload.get(RD_FIELD) else None
        if rd_key is not None and rd_id is None:
            rd_id = next((rid for ref_, rid in record.remote_refs.items() if ref_.record_key == rd_key), None)
        if close_date is None or (rd_key is None and rd_id is None):
            return None
        return _Gift(record.record_key, close_date, rd_key, rd_id)

    def _landed(self, keys: Sequence[str]) -> set[str]:
        """Return the gift keys Salesforce already holds (those upsert in place)."""
        landed: set[str] = set()
        for part in chunks(keys):
            soql = f"SELECT Id, {self.ext} FROM {self.opportunity} WHERE {self.ext} IN {in_list(part)}"
            landed.update(str(r[self.ext]) for r in self.client.query(soql) if r.get(self.ext))
        return landed

    def _plans(self, gifts: Sequence[_Gift]) -> dict[str, tuple[str, str | None]]:
        """Return recurring donations by Id and by ``key:<external id>``: (Id, installment period)."""
        plans: dict[str, tuple[str, str | None]] = {}
        select = f"SELECT Id, {self.rd_ext}, {RD_PERIOD_FIELD} FROM {self.recurring_donation} WHERE "
        ids = sorted({g.rd_id for g in gifts if g.rd_id})
        keys = sorted({g.rd_key for g in gifts if g.rd_key and not g.rd_id})
        for column, values in (("Id", ids), (self.rd_ext, keys)):
            for part in chunks(values):
                for row in self.client.query(select + f"{column} IN {in_list(part)}"):
                    plan = (str(row["Id"]), row.get(RD_PERIOD_FIELD))
                    plans[plan[0]] = plan
                    if row.get(self.rd_ext):
                        plans[f"key:{row[self.rd_ext]}"] = plan
        return plans

    def _open_installments(
        self, by_plan: Mapping[str, Sequence[_Gift]], periods: Mapping[str, int]
    ) -> dict[str, list[tuple[str, dt.date]]]:
        """Return unclaimed open installments per recurring donation, near the batch's gift dates."""
        dates = [g.close_date for gifts in by_plan.values() for g in gifts]
        widest = dt.timedelta(days=max(periods[rd] for rd in by_plan))
        low, high = min(dates) - widest, max(dates) + widest
        pool: dict[str, list[tuple[str, dt.date]]] = {}
        for part in chunks(sorted(by_plan)):
            soql = (
                f"SELECT Id, {RD_FIELD}, CloseDate FROM {self.opportunity} "
                f"WHERE {RD_FIELD} IN {in_list(part)} AND ({self.open_condition}) AND {self.ext} = null "
                f"AND CloseDate >= {literal(low)} AND CloseDate <= {literal(high)} ORDER BY CloseDate"
            )
            for row in self.client.query(soql):
                close = _date(row.get("CloseDate"))
                if close is not None and row.get(RD_FIELD):
                    pool.setdefault(str(row[RD_FIELD]), []).append((str(row["Id"]), close))
        return pool
