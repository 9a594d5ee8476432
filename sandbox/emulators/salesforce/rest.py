"""REST endpoints: sObject create, retrieve, update and delete by Id, upsert by external id, describe,
SOQL query / queryAll, limits (sObject Collections are in :mod:`.composite`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandbox.emulators.salesforce import composite, dml, soql
from sandbox.emulators.salesforce.objects import SfError, SObject, find_sobject

if TYPE_CHECKING:
    from sandbox.emulators.salesforce.emulator import SalesforceEmulator

PREFIX = "/services/data/v{version}"
_NOT_FOUND = "The requested resource does not exist"
#: REST status of a DML error on a single record (400 otherwise)
_STATUS = {"NOT_FOUND": 404, "ENTITY_IS_DELETED": 404}


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> JSONResponse:
    """Return a REST error response: a JSON array of ``{message, errorCode[, fields]}``."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields:
        item["fields"] = fields
    return JSONResponse([item], status_code=status)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return sf_error(status, code, message)


async def _json(request: Request) -> Any:
    """Return the parsed body; raise SfError JSON_PARSER_ERROR."""
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise SfError("JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc


def _sobject(name: str) -> SObject:
    obj = find_sobject(name)
    if obj is None:
        raise SfError("NOT_FOUND", _NOT_FOUND)
    return obj


def render(
    obj: SObject, record: dict[str, Any], version: str, fields: list[str] | None = None
) -> dict[str, Any]:
    """Return a record as the REST API shows it, with ``attributes``."""
    names = fields if fields is not None else [f.name for f in obj.fields]
    url = f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}"
    return {"attributes": {"type": obj.name, "url": url}, **{n: record.get(n) for n in names}}


def _upsert_result(record_id: str, created: bool) -> dict[str, Any]:
    return {"id": record_id, "success": True, "errors": [], "created": created}


def _query_page(
    version: str, cursor: str, rows: list[dict[str, Any]], start: int, size: int
) -> dict[str, Any]:
    page = rows[start : start + size]
    body: dict[str, Any] = {"totalSize": len(rows), "done": start + size >= len(rows), "records": page}
    if not body["done"]:
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{start + size}"
    return body


def _page_size(sf: SalesforceEmulator, request: Request) -> int:
    size = int(sf.settings["query_batch_size"])
    options = request.headers.get("sforce-query-options", "")
    for part in options.split(","):
        key, _, value = part.strip().partition("=")
        if key.lower() == "batchsize" and value.isdigit():
            size = min(size, max(200, min(2000, int(value))))
    return size


def register(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register the REST endpoints on ``app``."""
    _register_describe(sf, app)
    _register_sobjects(sf, app)
    _register_records(sf, app)
    composite.register(sf, app, render)
    _register_query(sf, app)


def _register_describe(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register /limits and describe."""

    @app.get(PREFIX + "/limits")
    @app.get(PREFIX + "/limits/")
    def limits(version: str) -> dict[str, Any]:
        with sf.lock:
            api_max = int(sf.settings["daily_api_requests"])
            batch_max = int(sf.settings["daily_bulk_batches"])
            return {
                "DailyApiRequests": {"Max": api_max, "Remaining": max(0, api_max - sf.api_usage())},
                "DailyBulkApiBatches": {
                    "Max": batch_max,
                    "Remaining": max(0, batch_max - sf.bulk_batches_used()),
                },
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkV2QueryFileStorageMB": {"Max": 1000000, "Remaining": 1000000},
                "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            }

    @app.get(PREFIX + "/sobjects/{name}/describe")
    @app.get(PREFIX + "/sobjects/{name}/describe/")
    def describe(version: str, name: str) -> Response:
        obj = find_sobject(name)
        if obj is None:
            return _error(404, "NOT_FOUND", _NOT_FOUND)
        body = obj.describe()
        body["urls"] = {"sobject": f"/services/data/v{version}/sobjects/{obj.name}"}
        return JSONResponse(body)


def _register_sobjects(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register retrieval and upsert by external id."""

    @app.get(PREFIX + "/sobjects/{name}/{field}/{value:path}")
    def retrieve_by_external_id(version: str, name: str, field: str, value: str) -> Response:
        try:
            obj = _sobject(name)
            ext_field = dml.external_id_field(obj, field)
        except SfError as exc:
            return _error(404, exc.code, exc.message)
        with sf.lock:
            ids = sf.store.match(obj, ext_field, value)
            if len(ids) > 1:
                return JSONResponse([f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in ids], 300)
            record = sf.store.find(obj.name, ids[0]) if ids else None
            if record is None:
                return _error(404, "NOT_FOUND", _NOT_FOUND)
            return JSONResponse(render(obj, record, version))

    @app.patch(PREFIX + "/sobjects/{name}/{field}/{value:path}")
    async def upsert(version: str, name: str, field: str, value: str, request: Request) -> Response:
        try:
            obj = _sobject(name)
            ext_field = dml.external_id_field(obj, field)
            body = await _json(request)
            if not isinstance(body, dict):
                raise SfError("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object")
            if any(k.lower() == "id" for k in body):
                raise SfError("INVALID_FIELD", "The Id field should not be specified in the sobject data.")
            update_only = request.query_params.get("updateOnly", "").lower() == "true"
            with sf.lock:
                record_id, created = dml.upsert(
                    sf.store, obj, ext_field, value, body, lock=sf.lock_policy(), update_only=update_only
                )
        except dml.MultipleMatchesError as exc:
            urls = [f"/services/data/v{version}/sobjects/{name}/{i}" for i in exc.ids]
            return JSONResponse(urls, status_code=300)
        except SfError as exc:
            return sf_error(404 if exc.code == "NOT_FOUND" else 400, exc.code, exc.message, exc.fields)
        if float(version) < 46.0:  # before 46.0: no "created" flag, and an update is 204 No Content
            if created:
                return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)
            return Response(status_code=204)
        return JSONResponse(_upsert_result(record_id, created), status_code=201 if created else 200)


def _dml_error(exc: SfError) -> JSONResponse:
    return sf_error(_STATUS.get(exc.code, 400), exc.code, exc.message, exc.fields)


def _register_records(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register create (POST), retrieve (GET), update (PATCH) and delete (DELETE) of one record by Id."""

    @app.post(PREFIX + "/sobjects/{name}")
    @app.post(PREFIX + "/sobjects/{name}/")
    async def create(version: str, name: str, request: Request) -> Response:
        try:
            obj = _sobject(name)
            body = await _json(request)
            if not isinstance(body, dict):
                raise SfError("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object")
            with sf.lock:
                record_id, _ = dml.insert(sf.store, obj, body, lock=sf.lock_policy())
        except SfError as exc:
            return _dml_error(exc)
        return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)

    @app.get(PREFIX + "/sobjects/{name}/{record_id}")
    def retrieve(version: str, name: str, record_id: str) -> Response:
        obj = find_sobject(name)
        if obj is None:
            return _error(404, "NOT_FOUND", _NOT_FOUND)
        with sf.lock:
            record = sf.store.find(obj.name, record_id)
            if record is None and sf.store.find_deleted(obj.name, record_id) is not None:
                return _error(404, "ENTITY_IS_DELETED", "entity is deleted")
            if record is None:
                return _error(404, "NOT_FOUND", _NOT_FOUND)
            return JSONResponse(render(obj, record, version))

    @app.patch(PREFIX + "/sobjects/{name}/{record_id}")
    async def update(version: str, name: str, record_id: str, request: Request) -> Response:
        try:
            obj = _sobject(name)
            body = await _json(request)
            if not isinstance(body, dict):
                raise SfError("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object")
            with sf.lock:
                dml.update(sf.store, obj, record_id, body, sf.lock_policy())
        except SfError as exc:
            return _dml_error(exc)
        return Response(status_code=204)

    @app.delete(PREFIX + "/sobjects/{name}/{record_id}")
    def delete(version: str, name: str, record_id: str) -> Response:
        try:
            obj = _sobject(name)
            with sf.lock:
                dml.delete(sf.store, obj, record_id, lock=sf.lock_policy())
        except SfError as exc:
            return _dml_error(exc)
        return Response(status_code=204)


def _register_query(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register SOQL query and its paging."""

    @app.get(PREFIX + "/query")
    @app.get(PREFIX + "/query/")
    @app.get(PREFIX + "/queryAll")
    @app.get(PREFIX + "/queryAll/")
    def query(version: str, request: Request) -> Response:
        """Run SOQL on live records; ``queryAll`` adds the recycle bin (``IsDeleted = true``)."""
        include_deleted = request.url.path.rstrip("/").endswith("/queryAll")
        text = request.query_params.get("q", "")
        try:
            parsed = soql.parse(text)
        except SfError as exc:
            return _error(400, exc.code, exc.message)
        names = [f.name for f in parsed.fields]
        with sf.lock:
            records = sf.store.records(parsed.sobject.name, include_deleted=include_deleted)
            rows = soql.run(parsed, records)
            rendered = [render(parsed.sobject, r, version, names) for r in rows]
            cursor = f"01g{sf.next_number():015d}"
            size = _page_size(sf, request)
            if len(rendered) > size:
                sf.cursors[cursor] = rendered
            return JSONResponse(_query_page(version, cursor, rendered, 0, size))

    @app.get(PREFIX + "/query/{locator}")
    @app.get(PREFIX + "/queryAll/{locator}")
    def query_more(version: str, locator: str, request: Request) -> Response:
        cursor, _, start = locator.rpartition("-")
        with sf.lock:
            rows = sf.cursors.get(cursor)
            if rows is None or not start.isdigit():
                return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            body = _query_page(version, cursor, rows, int(start), _page_size(sf, request))
            if body["done"]:
                sf.cursors.pop(cursor, None)
            return JSONResponse(body)
