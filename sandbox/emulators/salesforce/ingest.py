"""Bulk API 2.0 ingest endpoints under ``/services/data/vXX.X/jobs/ingest``."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandbox.emulators.salesforce import dml
from sandbox.emulators.salesforce.bulk import DELIMITERS, LINE_ENDINGS, OPERATIONS, TERMINAL, Job
from sandbox.emulators.salesforce.objects import SfError, SObject, find_sobject, make_id
from sandbox.emulators.salesforce.rest import sf_error

if TYPE_CHECKING:
    from sandbox.emulators.salesforce.emulator import SalesforceEmulator

JOBS = "/services/data/v{version}/jobs/ingest"
_NOT_FOUND = "The requested resource does not exist"
_RESULTS = {"successfulresults": "successful", "failedresults": "failed", "unprocessedrecords": "unprocessed"}


class RejectedError(Exception):
    """A request refused with a Salesforce error (status, errorCode, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = sf_error(status, code, message)


def _invalid_job(message: str) -> RejectedError:
    return RejectedError(400, "INVALIDJOB", f"InvalidJob : {message}")


def _external_id(obj: SObject, operation: str, name: Any) -> str | None:
    """Return the job's canonical external-id field (upserts only); raise RejectedError."""
    if operation != "upsert":
        return None
    if not name:
        raise _invalid_job(
            f"External ID was blank for {obj.name}. An External ID must be specified for upsert."
        )
    try:
        return dml.external_id_field(obj, str(name))
    except SfError:
        raise _invalid_job(f"Field {name} is not an external id field of {obj.name}") from None


def _job_spec(sf: SalesforceEmulator, version: str, body: Any) -> Job:
    """Validate a create-job request; return the new job or raise RejectedError."""
    if not isinstance(body, dict):
        raise RejectedError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    obj = find_sobject(str(body.get("object", "")))
    if obj is None:
        raise _invalid_job(f"Unable to find object: {body.get('object')}")
    operation = str(body.get("operation"))
    if operation not in OPERATIONS:
        raise _invalid_job(f"Invalid operation: {operation}")
    if body.get("contentType", "CSV") != "CSV":
        raise _invalid_job(f"Invalid content type: {body.get('contentType')}")
    delimiter = body.get("columnDelimiter", "COMMA")
    line_ending = body.get("lineEnding", "LF")
    if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
        raise _invalid_job("Invalid columnDelimiter or lineEnding")
    return Job(
        id=make_id("750", sf.next_number()),
        sobject=obj,
        operation=operation,
        external_id=_external_id(obj, operation, body.get("externalIdFieldName")),
        delimiter=DELIMITERS[delimiter],
        line_ending=line_ending,
        api_version=version,
        created=dt.datetime.now(dt.UTC),
    )


def _upload(sf: SalesforceEmulator, job: Job | None, data: bytes) -> None:
    """Append an upload to an open job, within the size cap and the batch allocation; raise RejectedError."""
    if job is None:
        raise RejectedError(404, "NOT_FOUND", _NOT_FOUND)
    if job.state != "Open":
        raise RejectedError(409, "INVALIDJOBSTATE", f"Job is not open for data upload: state {job.state}")
    limit = int(sf.settings["bulk_max_upload_bytes"])
    if len(data) > limit:
        raise RejectedError(
            400, "ClientInputError", f"Request exceeds the maximum upload size of {limit} bytes"
        )
    try:
        job.upload(data)
    except SfError as exc:
        raise RejectedError(400, exc.code, exc.message) from None
    batches = job.internal_batches()
    if sf.bulk_batches_used() + batches > int(sf.settings["daily_bulk_batches"]):
        job.rows.clear()
        raise RejectedError(400, "EXCEEDED_QUOTA", "Max batches per rolling 24 hours exceeded")
    sf.bulk_batches.append((time.time(), batches))


def _change_state(job: Job | None, state: Any) -> dict[str, Any]:
    """Close or abort a job; return its JobInfo or raise RejectedError."""
    if job is None:
        raise RejectedError(404, "NOT_FOUND", _NOT_FOUND)
    if state == "UploadComplete" and job.state == "Open":
        job.state, job.closed_at = "UploadComplete", time.time()
        job.modified = dt.datetime.now(dt.UTC)
    elif state == "Aborted" and job.state not in TERMINAL:
        job.abort()
    else:
        raise RejectedError(
            400, "INVALIDJOBSTATE", f"Changing the state of a {job.state} job to {state} is not allowed"
        )
    return job.info()


def _apply_row(sf: SalesforceEmulator) -> Any:
    """Return the row applier for jobs of this emulator."""
    lock = sf.lock_policy()

    def apply(job: Job, values: dict[str, str]) -> tuple[str, bool]:
        obj = job.sobject
        changes = {k: v for k, v in values.items() if v != ""}
        if job.operation == "insert":
            return dml.insert(sf.store, obj, changes, lock=lock)
        if job.operation == "update":
            record_id = next((v for k, v in values.items() if k.lower() == "id"), "")
            return dml.update(sf.store, obj, record_id, changes, lock)
        if job.operation in ("delete", "hardDelete"):
            record_id = next((v for k, v in values.items() if k.lower() == "id"), "")
            return dml.delete(sf.store, obj, record_id, hard=job.operation == "hardDelete", lock=lock)
        ext = job.external_id or "Id"
        column = next(c for c in values if c.lower() == ext.lower())
        value = values[column]
        if value.lower() in job.duplicate_keys:
            raise SfError("DUPLICATE_VALUE", f"Duplicate external id specified: {value}", [ext])
        try:
            return dml.upsert(sf.store, obj, ext, value, changes, lock=lock)
        except dml.MultipleMatchesError as exc:
            raise SfError(
                "DUPLICATE_EXTERNAL_ID", f"More than one record found for external id field: {exc.ids}"
            ) from None

    return apply


def _advance(sf: SalesforceEmulator, job_id: str) -> Job | None:
    """Return the job, moved along its lifecycle."""
    job = sf.jobs.get(job_id)
    if job is not None:
        job.advance(sf.settings, _apply_row(sf))
    return job


def register(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register the ingest endpoints on ``app``."""
    _register_jobs(sf, app)
    _register_data(sf, app)


def _register_jobs(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register create, list, get, close/abort and delete."""

    @app.post(JOBS)
    @app.post(JOBS + "/")
    async def create(version: str, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return sf_error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        with sf.lock:
            try:
                job = _job_spec(sf, version, body)
            except RejectedError as exc:
                return exc.response
            sf.jobs[job.id] = job
            return JSONResponse(job.info())

    @app.get(JOBS)
    @app.get(JOBS + "/")
    def list_jobs(version: str) -> dict[str, Any]:
        with sf.lock:
            jobs = [_advance(sf, job_id) for job_id in list(sf.jobs)]
            return {"done": True, "records": [j.info() for j in jobs if j], "nextRecordsUrl": None}

    @app.patch(JOBS + "/{job_id}")
    @app.patch(JOBS + "/{job_id}/")
    async def set_state(version: str, job_id: str, request: Request) -> Response:
        try:
            state = (json.loads(await request.body() or b"{}") or {}).get("state")
        except (ValueError, AttributeError):
            return sf_error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        with sf.lock:
            try:
                info = _change_state(_advance(sf, job_id), state)
            except RejectedError as exc:
                return exc.response
            _advance(sf, job_id)
            return JSONResponse(info)

    @app.get(JOBS + "/{job_id}")
    @app.get(JOBS + "/{job_id}/")
    def get_job(version: str, job_id: str) -> Response:
        with sf.lock:
            job = _advance(sf, job_id)
            if job is None:
                return sf_error(404, "NOT_FOUND", _NOT_FOUND)
            return JSONResponse(job.info(detail=True))

    @app.delete(JOBS + "/{job_id}")
    @app.delete(JOBS + "/{job_id}/")
    def delete_job(version: str, job_id: str) -> Response:
        with sf.lock:
            job = _advance(sf, job_id)
            if job is None:
                return sf_error(404, "NOT_FOUND", _NOT_FOUND)
            if job.state in ("Open", "InProgress"):
                return sf_error(400, "INVALIDJOBSTATE", f"A job in state {job.state} cannot be deleted")
            del sf.jobs[job_id]
        return Response(status_code=204)


def _register_data(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register the CSV upload and the three result CSVs."""

    @app.put(JOBS + "/{job_id}/batches")
    @app.put(JOBS + "/{job_id}/batches/")
    async def upload(version: str, job_id: str, request: Request) -> Response:
        if not request.headers.get("content-type", "").lower().startswith("text/csv"):
            return sf_error(400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
        data = await request.body()
        with sf.lock:
            try:
                _upload(sf, _advance(sf, job_id), data)
            except RejectedError as exc:
                return exc.response
        return Response(status_code=201)

    @app.get(JOBS + "/{job_id}/{kind}")
    @app.get(JOBS + "/{job_id}/{kind}/")
    def results(version: str, job_id: str, kind: str) -> Response:
        which = _RESULTS.get(kind.lower())
        with sf.lock:
            job = _advance(sf, job_id)
            if job is None or which is None:
                return sf_error(404, "NOT_FOUND", _NOT_FOUND)
            text = {
                "successful": job.successful_csv,
                "failed": job.failed_csv,
                "unprocessed": job.unprocessed_csv,
            }[which]()
        return Response(text, media_type="text/csv", headers={"Sforce-Locator": "null"})
