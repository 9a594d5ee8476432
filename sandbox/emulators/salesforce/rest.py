"""REST endpoints: sObject upsert by external id, Collections upsert, describe, SOQL query, limits."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandbox.emulators.salesforce import dml, soql
from sandbox.emulators.salesforce.objects import SfError, SObject, find_sobject, index_key
from sandbox.emulators.salesforce.store import Transaction

if TYPE_CHECKING:
    from sandbox.emulators.salesforce.emulator import SalesforceEmulator

PREFIX = "/services/data/v{version}"
_NOT_FOUND = "The requested resource does not exist"
_ROLLED_BACK = SfError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)


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


def _collection_upsert(
    sf: SalesforceEmulator, obj: SObject, ext_field: str, records: list[Any], *, all_or_none: bool
) -> list[dict[str, Any]]:
    """Upsert records in order; return one result per record (rolled back on failure when allOrNone)."""
    keys = Counter(index_key(r.get(ext_field)) for r in records if isinstance(r, dict) and r.get(ext_field))
    tx = Transaction()
    results: list[dict[str, Any]] = []
    failed = False
    lock = sf.lock_policy()
    for record in records:
        try:
            rtype = (record.get("attributes") or {}).get("type") if isinstance(record, dict) else None
            if rtype is None or rtype.lower() != obj.name.lower():
                raise SfError(
                    "INVALID_FIELD", f"Record type must be {obj.name}; missing or different attributes.type"
                )
            value = record.get(ext_field)
            if value and keys[index_key(value)] > 1:
                raise SfError("DUPLICATE_VALUE", f"Duplicate external id specified: {value}", [ext_field])
            if "Id" in record:
                raise SfError(
                    "INVALID_FIELD", "The Id field should not be specified in the sobject data.", ["Id"]
                )
            results.append(
                _upsert_result(*dml.upsert(sf.store, obj, ext_field, value, record, lock=lock, tx=tx))
            )
        except dml.MultipleMatchesError as exc:
            failed = True
            err = SfError("DUPLICATE_EXTERNAL_ID", f"The external ID matches more than one record: {exc.ids}")
            results.append({"success": False, "errors": [err.as_collection()]})
        except SfError as exc:
            failed = True
            results.append({"success": False, "errors": [exc.as_collection()]})
    if failed and all_or_none:
        sf.store.rollback(tx)
        results = [
            r if not r["success"] else {"success": False, "errors": [_ROLLED_BACK.as_collection()]}
            for r in results
        ]
    return results


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
    """Register record retrieval, upsert by external id and the Collections upsert."""

    @app.get(PREFIX + "/sobjects/{name}/{record_id}")
    def retrieve(version: str, name: str, record_id: str) -> Response:
        obj = find_sobject(name)
        record = sf.store.find(obj.name, record_id) if obj else None
        if obj is None or record is None:
            return _error(404, "NOT_FOUND", _NOT_FOUND)
        return JSONResponse(render(obj, record, version))

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

    @app.patch(PREFIX + "/composite/sobjects/{name}/{field}")
    async def collection_upsert(version: str, name: str, field: str, request: Request) -> Response:
        try:
            obj = _sobject(name)
            ext_field = dml.external_id_field(obj, field)
            body = await _json(request)
        except SfError as exc:
            return _error(404 if exc.code == "NOT_FOUND" else 400, exc.code, exc.message)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            return _error(400, "JSON_PARSER_ERROR", "The request body must contain a 'records' array")
        cap = int(sf.settings["collections_max_records"])
        if len(records) > cap:
            return _error(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {cap} records into this call",
            )
        with sf.lock:
            results = _collection_upsert(
                sf, obj, ext_field, records, all_or_none=bool(body.get("allOrNone", False))
            )
        return JSONResponse(results)


def _register_query(sf: SalesforceEmulator, app: FastAPI) -> None:
    """Register SOQL query and its paging."""

    @app.get(PREFIX + "/query")
    @app.get(PREFIX + "/query/")
    @app.get(PREFIX + "/queryAll")
    @app.get(PREFIX + "/queryAll/")
    def query(version: str, request: Request) -> Response:
        text = request.query_params.get("q", "")
        try:
            parsed = soql.parse(text)
        except SfError as exc:
            return _error(400, exc.code, exc.message)
        names = [f.name for f in parsed.fields]
        with sf.lock:
            rows = soql.run(parsed, list(sf.store.tables[parsed.sobject.name].values()))
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
