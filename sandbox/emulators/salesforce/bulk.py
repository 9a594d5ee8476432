"""Bulk API 2.0 ingest jobs: JobInfo, the CSV upload, the state machine and the result CSVs.

States: ``Open`` → (``UploadComplete``) → ``UploadComplete`` → ``InProgress`` → ``JobComplete`` |
``Failed``; ``Aborted`` from any non-terminal state. Time spent queued (``bulk_queued_s``) and
processing (``bulk_processing_s``) are settings; rows are processed progressively while
``InProgress``, so an abort leaves the rest in ``unprocessedrecords``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.emulators.salesforce.objects import SfError, SObject, sf_datetime

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
TERMINAL = ("JobComplete", "Failed", "Aborted")
RECORDS_PER_INTERNAL_BATCH = 10_000

#: apply one row (field -> text) of a job; return (id, created) or raise SfError
RowApplier = Callable[["Job", dict[str, str]], tuple[str, bool]]


@dataclass
class Job:
    """One ingest job and its data."""

    id: str
    sobject: SObject
    operation: str
    external_id: str | None
    delimiter: str
    line_ending: str
    api_version: str
    created: dt.datetime
    state: str = "Open"
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    closed_at: float | None = None
    next_row: int = 0
    successful: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failed: list[tuple[str, str, list[str]]] = field(default_factory=list)
    error_message: str = ""
    modified: dt.datetime | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duplicate_keys: set[str] = field(default_factory=set)

    def info(self, detail: bool = False) -> dict[str, Any]:
        """Return the JobInfo document (with counters when ``detail``)."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject.name,
            "createdById": "005000000000001AAA",
            "createdDate": sf_datetime(self.created),
            "systemModstamp": sf_datetime(self.modified or self.created),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": next(k for k, v in DELIMITERS.items() if v == self.delimiter),
        }
        if self.external_id:
            body["externalIdFieldName"] = self.external_id
        if detail:
            elapsed = (self.finished_at or time.time()) - (self.started_at or time.time())
            body.update(
                jobType="V2Ingest",
                numberRecordsProcessed=len(self.successful) + len(self.failed),
                numberRecordsFailed=len(self.failed),
                retries=0,
                totalProcessingTime=int(elapsed * 1000),
                apiActiveProcessingTime=int(elapsed * 1000),
                apexProcessingTime=0,
            )
            if self.state == "Failed":
                body["errorMessage"] = self.error_message
        return body

    def upload(self, data: bytes) -> None:
        """Parse and append a CSV upload; raise SfError on a malformed upload."""
        text = data.decode("utf-8-sig")
        if self.line_ending == "LF" and "\r\n" in text:
            raise SfError(
                "ClientInputError", "LineEnding is invalid on user data. Current LineEnding setting is LF"
            )
        if self.line_ending == "CRLF" and "\n" in text.replace("\r\n", ""):
            raise SfError(
                "ClientInputError", "LineEnding is invalid on user data. Current LineEnding setting is CRLF"
            )
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        lines = [row for row in reader if row]
        if not lines:
            raise SfError("ClientInputError", "No content found in the request")
        header, rows = lines[0], lines[1:]
        if self.header and header != self.header:
            raise SfError("ClientInputError", "The header of this upload differs from the previous one")
        self.header = header
        self.rows.extend(rows)

    def structural_error(self) -> str:
        """Return why the whole job fails before any row is processed (empty when it can run)."""
        if not self.rows:
            return "InvalidBatch : No data was uploaded for this job"
        for column in self.header:
            name = column.split(".", 1)[0]
            if self.sobject.field(name) is None and self.sobject.relationship(name) is None:
                return f"InvalidBatch : Field name not found : {column}"
        if self.operation in ("delete", "hardDelete") and [c.lower() for c in self.header] != ["id"]:
            return "InvalidBatch : The 'delete' batch must contain only ids"
        if self.external_id and self.external_id.lower() not in [c.lower() for c in self.header]:
            return f"InvalidBatch : Field name not found : {self.external_id}"
        return ""

    def advance(self, settings: dict[str, Any], apply: RowApplier) -> None:
        """Move the job along its lifecycle according to the time since UploadComplete."""
        if self.state not in ("UploadComplete", "InProgress") or self.closed_at is None:
            return
        queued = float(settings["bulk_queued_s"])
        processing = float(settings["bulk_processing_s"])
        elapsed = time.time() - self.closed_at
        if elapsed < queued:
            return
        if self.state == "UploadComplete":
            self.error_message = self.structural_error()
            if self.error_message:
                self._finish("Failed")
                return
            self.state, self.started_at = "InProgress", time.time()
            self.duplicate_keys = self._duplicate_keys()
        share = 1.0 if processing <= 0 else min(1.0, (elapsed - queued) / processing)
        target = math.ceil(len(self.rows) * share)
        while self.next_row < target:
            self._process(self.rows[self.next_row], apply)
            self.next_row += 1
        if self.next_row >= len(self.rows):
            self._finish("JobComplete")

    def _duplicate_keys(self) -> set[str]:
        """Return the external-id values (lower case) that more than one row carries."""
        if not self.external_id:
            return set()
        column = [c.lower() for c in self.header].index(self.external_id.lower())
        seen: set[str] = set()
        dupes: set[str] = set()
        for row in self.rows:
            key = row[column].lower() if column < len(row) else ""
            if key:
                (dupes if key in seen else seen).add(key)
        return dupes

    def _process(self, row: list[str], apply: RowApplier) -> None:
        values = dict(zip(self.header, row, strict=False))
        try:
            record_id, created = apply(self, values)
        except SfError as exc:
            self.failed.append((values.get("Id", ""), exc.as_bulk(), row))
            return
        self.successful.append((record_id, created, row))

    def _finish(self, state: str) -> None:
        self.state = state
        self.finished_at = time.time()
        self.modified = dt.datetime.now(dt.UTC)

    def abort(self) -> None:
        """Abort: rows not yet processed stay unprocessed."""
        self._finish("Aborted")

    def internal_batches(self) -> int:
        """Return how many internal batches the uploaded rows take."""
        return max(1, math.ceil(len(self.rows) / RECORDS_PER_INTERNAL_BATCH))

    def _csv(self, header: list[str], rows: list[list[str]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.delimiter, lineterminator=LINE_ENDINGS[self.line_ending])
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue()

    def successful_csv(self) -> str:
        """Return ``sf__Id,sf__Created`` + the original columns of successful rows."""
        rows = [[rid, str(created).lower(), *row] for rid, created, row in self.successful]
        return self._csv(["sf__Id", "sf__Created", *self.header], rows)

    def failed_csv(self) -> str:
        """Return ``sf__Id,sf__Error`` + the original columns of failed rows."""
        rows = [[rid, error, *row] for rid, error, row in self.failed]
        return self._csv(["sf__Id", "sf__Error", *self.header], rows)

    def unprocessed_csv(self) -> str:
        """Return the original columns of rows never processed."""
        done = self.next_row if self.state != "Failed" else 0
        return self._csv(self.header, self.rows[done:])
