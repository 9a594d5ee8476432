"""The Salesforce NPSP connector: the push engine's calls mapped onto Collections and Bulk API 2.0.

Idempotency: every upsert is keyed by the record's external id field (``Donor_Sync_Id__c``,
unique + external id), filled from ``record_key``; creates carry it too, so a re-sent create hits
the unique index instead of duplicating (and counts as done). Batches of more than 200 records
go through a Bulk API 2.0 job (the push engine asks for them only above ``bulk_threshold`` due
records); smaller ones through sObject Collections.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from donor_sync.delivery.connectors.salesforce import bulk, collections
from donor_sync.delivery.connectors.salesforce.bulk import PollPolicy
from donor_sync.delivery.connectors.salesforce.client import SalesforceClient
from donor_sync.delivery.connectors.salesforce.collections import RowOutcome
from donor_sync.delivery.connectors.salesforce.errors import DEFAULT_PARENT_WAIT_ATTEMPTS, SfError
from donor_sync.delivery.connectors.salesforce.npsp import OPEN_INSTALLMENT, InstallmentMatcher
from donor_sync.delivery.connectors.salesforce.soql import chunks, ident, in_list, literal
from donor_sync.delivery.contracts import (
    SALESFORCE,
    FailureClass,
    Operation,
    OutboundRecord,
    QuotaState,
    RecordResult,
)

log = logging.getLogger(__name__)

#: entity -> (sObject, external id field)
DEFAULT_ENTITIES: Mapping[str, tuple[str, str]] = {
    "household_account": ("Account", "Donor_Sync_Id__c"),
    "organization_account": ("Account", "Donor_Sync_Id__c"),
    "contact": ("Contact", "Donor_Sync_Id__c"),
    "recurring_donation": ("npe03__Recurring_Donation__c", "Donor_Sync_Id__c"),
    "opportunity": ("Opportunity", "Donor_Sync_Id__c"),
}
#: Parents before children: households, their contacts, plans, then gifts.
ENTITY_ORDER = ("household_account", "organization_account", "contact", "recurring_donation", "opportunity")
DEFAULT_BULK_THRESHOLD = 2000
DEFAULT_BULK_BATCH_SIZE = 10_000
DEFAULT_QUOTA_RESERVE = 0.1
_DUPLICATE_ID = re.compile(r"record with id: ([A-Za-z0-9]{15,18})")


def _stored_field(name: str, value: Any) -> str:
    """Return the field that holds a payload entry (``X__r: {...}`` is stored in ``X__c``)."""
    if isinstance(value, Mapping):
        return ident(name[:-1] + "c" if name.endswith("__r") else name + "Id")
    return ident(name)


class SalesforceConnector:
    """Push donor-sync records to a Salesforce NPSP org (implements ``contracts.Connector``).

    :param entities: entity -> (sObject, external id field); defaults to :data:`DEFAULT_ENTITIES`.
    :param bulk_threshold: due records above which the push engine gets Bulk-sized batches.
    :param parent_wait_attempts: attempts during which a missing parent is transient.
    :param quota_reserve: share of the daily API allocation the push engine keeps back.
    :param installment_open_condition: SOQL condition for unpaid NPSP installments.
    """

    destination = SALESFORCE

    def __init__(
        self,
        client: SalesforceClient,
        *,
        entities: Mapping[str, tuple[str, str]] | None = None,
        bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
        bulk_batch_size: int = DEFAULT_BULK_BATCH_SIZE,
        parent_wait_attempts: int = DEFAULT_PARENT_WAIT_ATTEMPTS,
        quota_reserve: float = DEFAULT_QUOTA_RESERVE,
        installment_open_condition: str = OPEN_INSTALLMENT,
        bulk_poll: PollPolicy | None = None,
    ) -> None:
        self.client = client
        self.entities = dict(entities if entities is not None else DEFAULT_ENTITIES)
        for names in self.entities.values():
            for name in names:
                ident(name)
        self.bulk_threshold = bulk_threshold
        self.bulk_batch_size = bulk_batch_size
        self.parent_wait_attempts = parent_wait_attempts
        self.quota_reserve = quota_reserve
        self.bulk_poll = bulk_poll or PollPolicy()
        self.installment_open_condition = installment_open_condition

    # -- Connector protocol -----------------------------------------------------------------------
    def entity_order(self) -> Sequence[str]:
        """Return the configured entities, parents first (unknown extras last, in given order)."""
        known = [e for e in ENTITY_ORDER if e in self.entities]
        return known + [e for e in self.entities if e not in ENTITY_ORDER]

    def batch_size(self, entity: str, operation: Operation, pending: int) -> int:
        """Return 200 (one Collections call) or, above the bulk threshold, one Bulk job's worth."""
        del entity, operation
        return self.bulk_batch_size if pending > self.bulk_threshold else collections.MAX_RECORDS

    def quota(self) -> QuotaState | None:
        """Return the daily API allowance from the last ``Sforce-Limit-Info`` (or ``/limits``)."""
        return self.client.quota

    def push(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        """Write ``records`` and return one result per record, in order.

        :raises BatchRejectedError: Salesforce refused the call or the Bulk job as a whole.
        :raises DestinationUnavailableError: auth, request limit, 5xx/network after retries.
        """
        if entity not in self.entities:
            raise ValueError(f"entity {entity!r} has no Salesforce object; known: {sorted(self.entities)}")
        results: dict[int, RecordResult] = {}
        unique: list[OutboundRecord] = []
        seen: set[str] = set()
        for record in records:
            if record.record_key in seen:
                results[record.outbox_id] = _failure(
                    record, FailureClass.TRANSIENT, "RETRY_NEXT_BATCH", "record key repeated in this batch"
                )
            else:
                seen.add(record.record_key)
                unique.append(record)
        if operation is Operation.UPSERT:
            results.update(self._upsert(entity, unique))
        elif operation is Operation.CREATE:
            results.update(self._create(entity, unique))
        elif operation is Operation.UPDATE:
            results.update(self._update(entity, unique))
        elif operation is Operation.DELETE:
            results.update(self._delete(entity, unique))
        else:
            for record in unique:
                results[record.outbox_id] = _failure(
                    record,
                    FailureClass.PERMANENT,
                    "OPERATION_NOT_SUPPORTED",
                    f"the Salesforce connector does not {operation.value} records",
                )
        return [results[r.outbox_id] for r in records]

    # -- reads for other parts ----------------------------------------------------------------------
    def describe(self, sobject: str) -> dict[str, Any]:
        """Return the raw describe document of ``sobject`` (fields, picklists, record types)."""
        body: dict[str, Any] = self.client.get_json(f"/sobjects/{ident(sobject)}/describe")
        return body

    def changed_since(
        self, sobject: str, fields: Sequence[str], since: dt.datetime, until: dt.datetime
    ) -> Iterator[dict[str, Any]]:
        """Yield records of ``sobject`` whose ``SystemModstamp`` is in ``(since, until]``, oldest first.

        Bounds are sent at whole seconds (SOQL datetime literals), so a record modified within
        the second of ``since`` may be yielded by two consecutive windows: at least once, never lost.
        """
        names = list(dict.fromkeys(["Id", "SystemModstamp", *(ident(f) for f in fields)]))
        soql = (
            f"SELECT {', '.join(names)} FROM {ident(sobject)} "
            f"WHERE SystemModstamp > {literal(since)} AND SystemModstamp <= {literal(until)} "
            "ORDER BY SystemModstamp ASC"
        )
        yield from self.client.query(soql)

    def limits(self) -> dict[str, Any]:
        """Return the org's ``/limits`` document and refresh :meth:`quota` from ``DailyApiRequests``."""
        body: dict[str, Any] = self.client.get_json("/limits")
        daily = body.get("DailyApiRequests") or {}
        if "Max" in daily and "Remaining" in daily:
            self.client.note_quota(
                QuotaState(remaining=int(daily["Remaining"]), limit=int(daily["Max"]), window="rolling_24h")
            )
        return body

    # -- operations -----------------------------------------------------------------------------------
    def _upsert(self, entity: str, records: list[OutboundRecord]) -> dict[int, RecordResult]:
        sobject, ext = self.entities[entity]
        results: dict[int, RecordResult] = {}
        if entity == "opportunity" and records:
            records, results = self._claim_installments(sobject, ext, records)
        rows = self._without_set_fields(sobject, ext, records, by_id=False)
        for row, record in zip(rows, records, strict=True):
            row.pop("Id", None)
            row[ext] = record.record_key
        if len(records) > collections.MAX_RECORDS:
            outcomes = self._bulk(sobject, "upsert", rows, records, key_column=ext, external_id_field=ext)
        else:
            outcomes = collections.upsert(self.client, sobject, ext, rows)
        results.update(self._results(records, outcomes))
        return results

    def _create(self, entity: str, records: list[OutboundRecord]) -> dict[int, RecordResult]:
        sobject, ext = self.entities[entity]
        rows = [{**record.payload, ext: record.record_key} for record in records]
        for row in rows:
            row.pop("Id", None)
        if len(records) > collections.MAX_RECORDS:
            outcomes = self._bulk(sobject, "insert", rows, records, key_column=ext)
        else:
            outcomes = collections.create(self.client, sobject, rows)
        return self._results(records, [_already_created(_created(o, True), ext) for o in outcomes])

    def _update(self, entity: str, records: list[OutboundRecord]) -> dict[int, RecordResult]:
        sobject, ext = self.entities[entity]
        results: dict[int, RecordResult] = {}
        known = [r for r in records if r.remote_id]
        for record in records:
            if not record.remote_id:
                results[record.outbox_id] = _failure(
                    record,
                    FailureClass.VALIDATION,
                    "MISSING_REMOTE_ID",
                    "an update by id needs the record's Id",
                )
        rows = self._without_set_fields(sobject, ext, known, by_id=True)
        for row, record in zip(rows, known, strict=True):
            row.pop(ext, None)
            row["Id"] = record.remote_id
        if len(known) > collections.MAX_RECORDS:
            outcomes = self._bulk(
                sobject, "update", rows, known, key_column="Id", keys=[r.remote_id for r in known]
            )
        else:
            outcomes = collections.update(self.client, sobject, rows)
        results.update(self._results(known, [_created(o, False) for o in outcomes]))
        return results

    def _delete(self, entity: str, records: list[OutboundRecord]) -> dict[int, RecordResult]:
        sobject, ext = self.entities[entity]
        ids = {r.outbox_id: r.remote_id for r in records if r.remote_id}
        missing = [r.record_key for r in records if not r.remote_id]
        found: dict[str, str] = {}
        for part in chunks(missing):
            soql = f"SELECT Id, {ext} FROM {sobject} WHERE {ext} IN {in_list(part)}"
            found.update({str(row[ext]): str(row["Id"]) for row in self.client.query(soql)})
        targets = []
        results: dict[int, RecordResult] = {}
        for record in records:
            remote_id = ids.get(record.outbox_id) or found.get(record.record_key)
            if remote_id is None:  # never landed or already gone: nothing to delete
                results[record.outbox_id] = RecordResult(
                    record.outbox_id, ok=True, remote_id=None, created=False
                )
            else:
                targets.append((record, remote_id))
        chosen = [r for r, _ in targets]
        remote_ids = [i for _, i in targets]
        if len(targets) > collections.MAX_RECORDS:
            rows = [{"Id": i} for i in remote_ids]
            outcomes = self._bulk(sobject, "delete", rows, chosen, key_column="Id", keys=remote_ids)
        else:
            outcomes = collections.delete(self.client, remote_ids)
        gone = [
            RowOutcome(True, i, False) if not o.ok and o.errors[0].code == "ENTITY_IS_DELETED" else o
            for o, i in zip(outcomes, remote_ids, strict=True)
        ]
        results.update(self._results(chosen, gone))
        return results

    # -- helpers --------------------------------------------------------------------------------------
    def _bulk(
        self,
        sobject: str,
        operation: str,
        rows: Sequence[Mapping[str, Any]],
        records: Sequence[OutboundRecord],
        *,
        key_column: str,
        external_id_field: str | None = None,
        keys: Sequence[str | None] | None = None,
    ) -> list[RowOutcome]:
        """Run a Bulk job and return outcomes in record order (rows missing from every result: transient)."""
        by_key = bulk.run_job(
            self.client,
            sobject,
            operation,
            [bulk.flatten(row) for row in rows],
            key_column=key_column,
            external_id_field=external_id_field,
            poll=self.bulk_poll,
        )
        record_keys = keys if keys is not None else [r.record_key for r in records]
        missing = RowOutcome(False, None, None, (SfError("MISSING_FROM_RESULTS"),))
        return [by_key.get(str(k), missing) for k in record_keys]

    def _claim_installments(
        self, sobject: str, ext: str, records: list[OutboundRecord]
    ) -> tuple[list[OutboundRecord], dict[int, RecordResult]]:
        """Claim NPSP installments for recurring gifts; return the records left to upsert."""
        matcher = InstallmentMatcher(
            self.client,
            opportunity=sobject,
            external_id_field=ext,
            open_condition=self.installment_open_condition,
        )
        matches = matcher.match(records)
        if not matches:
            return records, {}
        claimed = [r for r in records if r.record_key in matches]
        outcomes = collections.update(
            self.client, sobject, [{"Id": matches[r.record_key], ext: r.record_key} for r in claimed]
        )
        failed = {r.outbox_id for r, o in zip(claimed, outcomes, strict=True) if not o.ok}
        results = {
            oid: result
            for oid, result in self._results(claimed, outcomes).items()
            if oid in failed  # a record whose claim failed waits: inserting it would double the gift
        }
        return [r for r in records if r.outbox_id not in failed], results

    def _without_set_fields(
        self, sobject: str, ext: str, records: Sequence[OutboundRecord], *, by_id: bool
    ) -> list[dict[str, Any]]:
        """Return payload copies without the ``set_if_empty`` fields Salesforce already holds."""
        rows = [dict(r.payload) for r in records]
        wanted = {
            _stored_field(name, r.payload[name]): name
            for r in records
            for name in r.set_if_empty
            if name in r.payload
        }
        if not wanted:
            return rows
        column = "Id" if by_id else ext
        keys = [str(r.remote_id if by_id else r.record_key) for r in records if (r.remote_id or not by_id)]
        current: dict[str, dict[str, Any]] = {}
        select = ", ".join(dict.fromkeys(["Id", ext, *sorted(wanted)]))
        for part in chunks(keys):
            for row in self.client.query(f"SELECT {select} FROM {sobject} WHERE {column} IN {in_list(part)}"):
                current[str(row.get(column))] = row
        for row, record in zip(rows, records, strict=True):
            held = current.get(str(record.remote_id if by_id else record.record_key), {})
            for name in record.set_if_empty:
                if name in row and held.get(_stored_field(name, row[name])) not in (None, ""):
                    del row[name]
        return rows

    def _results(
        self, records: Sequence[OutboundRecord], outcomes: Sequence[RowOutcome]
    ) -> dict[int, RecordResult]:
        return {r.outbox_id: self._result(r, o) for r, o in zip(records, outcomes, strict=True)}

    def _result(self, record: OutboundRecord, outcome: RowOutcome) -> RecordResult:
        if outcome.ok:
            return RecordResult(
                record.outbox_id, ok=True, remote_id=outcome.remote_id, created=outcome.created
            )
        classes = [
            (e, e.failure_class(attempts=record.attempts, parent_wait_attempts=self.parent_wait_attempts))
            for e in outcome.errors
        ]
        error, error_class = next(((e, c) for e, c in classes if not c.retryable), classes[0])
        return RecordResult(
            record.outbox_id,
            ok=False,
            remote_id=outcome.remote_id,
            error_class=error_class,
            error_code=error.code,
            message="; ".join(e.safe_message() for e in outcome.errors),
        )


def _created(outcome: RowOutcome, created: bool) -> RowOutcome:
    """Fill in ``created`` where the result leaves it out (SaveResults of inserts and updates)."""
    if outcome.ok and outcome.created is None:
        return RowOutcome(True, outcome.remote_id, created)
    return outcome


def _already_created(outcome: RowOutcome, ext: str) -> RowOutcome:
    """Treat a create refused because its external id exists as done (a re-sent create)."""
    if outcome.ok or len(outcome.errors) != 1:
        return outcome
    error = outcome.errors[0]
    if error.code != "DUPLICATE_VALUE" or (ext not in error.fields and ext not in error.vendor_message):
        return outcome
    found = _DUPLICATE_ID.search(error.vendor_message)
    return RowOutcome(True, found.group(1) if found else outcome.remote_id, False)


def _failure(record: OutboundRecord, error_class: FailureClass, code: str, message: str) -> RecordResult:
    return RecordResult(record.outbox_id, ok=False, error_class=error_class, error_code=code, message=message)
