"""Bulk API 2.0 ingest: one job per batch, CSV in, per-row results back by key column.

Lifecycle: create the job, PUT the CSV, mark it ``UploadComplete``, poll with backoff until
``JobComplete``/``Failed``/``Aborted`` (a job still running at the deadline is aborted), then
read ``successfulResults``, ``failedResults`` and ``unprocessedrecords``. Result order is not the
input order, so every row is matched back through its key column (the external id for upserts
and inserts, ``Id`` for updates and deletes); a key found in none of the three is reported by
the caller as a transient failure.

CSV rules: nested references ``{"npsp__Primary_Contact__r": {"Donor_Sync_Id__c": "D1"}}``
become the column ``npsp__Primary_Contact__r.Donor_Sync_Id__c``; an empty cell leaves a field
as it is, and ``#N/A`` blanks it, so ``#N/A`` is written only where the payload carries an
explicit null.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tenacity

from donor_sync.delivery.connectors.salesforce.client import SalesforceClient, decode_json
from donor_sync.delivery.connectors.salesforce.collections import RowOutcome
from donor_sync.delivery.connectors.salesforce.errors import SfError, parse_bulk_error
from donor_sync.delivery.connectors.salesforce.soql import ident
from donor_sync.delivery.contracts import BatchRejectedError, DeliveryError, FailureClass

log = logging.getLogger(__name__)

JOBS = "/jobs/ingest"
TERMINAL = frozenset({"JobComplete", "Failed", "Aborted"})
NULL = "#N/A"
NOT_PROCESSED = SfError("NOT_PROCESSED")


@dataclass(frozen=True)
class PollPolicy:
    """How long and how often to poll a job (seconds)."""

    first_wait_s: float = 1.0
    max_wait_between_s: float = 15.0
    deadline_s: float = 1800.0


def flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``record`` with nested reference objects as dotted columns (``attributes`` dropped)."""
    flat: dict[str, Any] = {}
    for name, value in record.items():
        if name == "attributes":
            continue
        if isinstance(value, Mapping):
            for child, inner in value.items():
                if child != "attributes":
                    flat[f"{name}.{child}"] = inner
        else:
            flat[name] = value
    return flat


def cell(value: Any) -> str:
    """Return the CSV text of one value (explicit null: ``#N/A``)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).replace("\r\n", "\n")


def to_csv(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], str]:
    """Return the columns (first-seen order) and the CSV text (LF, comma) of flattened ``rows``."""
    columns: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for name in row:
            if name not in seen:
                seen.add(name)
                columns.append(name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row[c]) if c in row else "" for c in columns])
    return columns, out.getvalue()


def run_job(
    client: SalesforceClient,
    sobject: str,
    operation: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    key_column: str,
    external_id_field: str | None = None,
    poll: PollPolicy | None = None,
) -> dict[str, RowOutcome]:
    """Run one ingest job over flattened ``rows``; return the outcome per ``key_column`` value.

    :param operation: ``upsert`` (needs ``external_id_field``), ``insert``, ``update`` or ``delete``.
    :raises BatchRejectedError: the job failed as a whole (bad column, malformed CSV).
    """
    policy = poll or PollPolicy()
    _, text = to_csv(rows)
    spec: dict[str, Any] = {
        "object": ident(sobject),
        "operation": operation,
        "contentType": "CSV",
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    }
    if external_id_field:
        spec["externalIdFieldName"] = ident(external_id_field)
    job_id = str(decode_json(client.request("POST", JOBS, json=spec))["id"])
    log.info("Bulk %s job %s on %s: uploading %d rows", operation, job_id, sobject, len(rows))
    try:
        client.request(
            "PUT", f"{JOBS}/{job_id}/batches", data=text.encode(), headers={"Content-Type": "text/csv"}
        )
        _close(client, job_id)
    except DeliveryError:
        _abort(client, job_id)
        raise
    info = _wait(client, job_id, policy)
    state = info.get("state")
    log.info(
        "Bulk job %s ended %s: %s processed, %s failed",
        job_id,
        state,
        info.get("numberRecordsProcessed"),
        info.get("numberRecordsFailed"),
    )
    if state == "Failed" and not info.get("numberRecordsProcessed"):
        code = str(info.get("errorMessage") or "InvalidBatch").split(":", 1)[0].strip() or "InvalidBatch"
        raise BatchRejectedError(
            f"Bulk job {job_id} on {sobject} failed as a whole ({code})",
            error_class=FailureClass.VALIDATION,
            error_code=code,
        )
    return _results(client, job_id, key_column)


def _close(client: SalesforceClient, job_id: str) -> None:
    try:
        client.request("PATCH", f"{JOBS}/{job_id}", json={"state": "UploadComplete"})
    except BatchRejectedError as exc:
        # A retried close finds the job already closed: fine unless it is still open.
        if exc.error_code != "INVALIDJOBSTATE" or client.get_json(f"{JOBS}/{job_id}").get("state") == "Open":
            raise


def _abort(client: SalesforceClient, job_id: str) -> None:
    try:
        client.request("PATCH", f"{JOBS}/{job_id}", json={"state": "Aborted"})
    except DeliveryError as exc:
        log.warning("Could not abort bulk job %s: %s", job_id, exc.error_code)


def _wait(client: SalesforceClient, job_id: str, policy: PollPolicy) -> dict[str, Any]:
    """Poll until the job is terminal; abort it at the deadline and return its last state."""
    poller = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda info: info.get("state") not in TERMINAL),
        wait=tenacity.wait_exponential(multiplier=policy.first_wait_s, max=policy.max_wait_between_s),
        stop=tenacity.stop_after_delay(policy.deadline_s),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else {},
    )
    info: dict[str, Any] = poller(lambda: client.get_json(f"{JOBS}/{job_id}"))
    if info.get("state") not in TERMINAL:
        log.warning(
            "Bulk job %s still %s after %.0f s: aborting it", job_id, info.get("state"), policy.deadline_s
        )
        _abort(client, job_id)
        info = client.get_json(f"{JOBS}/{job_id}")
    return info


def _csv_rows(client: SalesforceClient, job_id: str, kind: str) -> list[dict[str, str]]:
    response = client.request("GET", f"{JOBS}/{job_id}/{kind}/", headers={"Accept": "text/csv"})
    text = response.content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _key(row: Mapping[str, str], key_column: str) -> str | None:
    if key_column in row:
        return row[key_column]
    lowered = key_column.lower()
    return next((v for k, v in row.items() if k.lower() == lowered), None)


def _results(client: SalesforceClient, job_id: str, key_column: str) -> dict[str, RowOutcome]:
    outcomes: dict[str, RowOutcome] = {}
    for row in _csv_rows(client, job_id, "unprocessedrecords"):
        key = _key(row, key_column)
        if key:
            outcomes[key] = RowOutcome(False, None, None, (NOT_PROCESSED,))
    for row in _csv_rows(client, job_id, "failedResults"):
        key = _key(row, key_column)
        if key:
            error = parse_bulk_error(row.get("sf__Error", ""))
            outcomes[key] = RowOutcome(False, row.get("sf__Id") or None, None, (error,))
    for row in _csv_rows(client, job_id, "successfulResults"):
        key = _key(row, key_column)
        if key:
            created = row.get("sf__Created", "").lower() == "true"
            outcomes[key] = RowOutcome(True, row.get("sf__Id") or None, created)
    return outcomes
