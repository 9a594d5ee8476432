"""sObject Collections: create, update by Id, upsert by external id, delete and retrieve, <=200 per call.

A well-formed request answers 200 with one result per record, in request order, even when some
records fail (``{"id", "success", "errors": [{"statusCode", "message", "fields"}]}``; upserts add
``created``). With ``allOrNone`` a failure rolls the whole request back: the records that had
succeeded report ``ALL_OR_NONE_OPERATION_ROLLED_BACK``. A malformed request (no ``records``
array, too many records) is a 400 with the REST error array.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandbox.emulators.salesforce import dml
from sandbox.emulators.salesforce.objects import SOBJECTS, SfError, SObject, find_sobject, index_key
from sandbox.emulators.salesforce.store import Transaction

if TYPE_CHECKING:
    from sandbox.emulators.salesforce.emulator import SalesforceEmulator

COLLECTIONS = "/services/data/v{version}/composite/sobjects"
RETRIEVE_MAX = 2000
_ROLLED_BACK = SfError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)
#: apply one item inside the request's transaction; return its success result or raise SfError
Apply = Callable[[Any, Transaction], dict[str, Any]]


class MalformedRequestError(Exception):
    """The request as a whole is refused (400 with the REST error array)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        """Return the 400 REST error response."""
        return JSONResponse([{"message": self.message, "errorCode": self.code}], status_code=400)


def success(record_id: str, created: bool | None = None) -> dict[str, Any]:
    """Return a SaveResult (``created`` only for upserts)."""
    result: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
    if created is not None:
        result["created"] = created
    return result


def failure(exc: SfError, record_id: str | None = None) -> dict[str, Any]:
    """Return a failed SaveResult (updates and deletes name the record)."""
    result: dict[str, Any] = {"success": False, "errors": [exc.as_collection()]}
    return {"id": record_id, **result} if record_id else result


def run_all(
    sf: SalesforceEmulator,
    items: list[Any],
    apply: Apply,
    *,
    all_or_none: bool,
    ids: Callable[[Any], str | None] = lambda item: None,
) -> list[dict[str, Any]]:
    """Apply every item in order in one transaction; return the results (rolled back per allOrNone)."""
    tx = Transaction()
    results: list[dict[str, Any]] = []
    for item in items:
        try:
            results.append(apply(item, tx))
        except dml.MultipleMatchesError as exc:
            err = SfError("DUPLICATE_EXTERNAL_ID", f"The external ID matches more than one record: {exc.ids}")
            results.append(failure(err, ids(item)))
        except SfError as exc:
            results.append(failure(exc, ids(item)))
    if all_or_none and not all(r["success"] for r in results):
        sf.store.rollback(tx)
        results = [
            r if not r["success"] else failure(_ROLLED_BACK, r["id"] if ids(items[i]) else None)
            for i, r in enumerate(results)
        ]
    return results


async def _records(sf: SalesforceEmulator, request: Request) -> tuple[list[Any], bool]:
    """Return the ``records`` array and ``allOrNone`` of a Collections body; raise MalformedRequestError."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise MalformedRequestError("JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise MalformedRequestError("JSON_PARSER_ERROR", "The request body must contain a 'records' array")
    _check_count(sf, len(records))
    return records, bool(body.get("allOrNone", False))


def _check_count(sf: SalesforceEmulator, count: int) -> None:
    cap = int(sf.settings["collections_max_records"])
    if count > cap:
        raise MalformedRequestError(
            "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {cap} records into this call"
        )


def _typed(record: Any) -> tuple[SObject, dict[str, Any]]:
    """Return a record's sObject (``attributes.type``) and its fields; raise SfError."""
    if not isinstance(record, dict):
        raise SfError("JSON_PARSER_ERROR", "Each record must be a JSON object")
    name = (record.get("attributes") or {}).get("type")
    obj = find_sobject(str(name)) if name else None
    if obj is None:
        raise SfError("INVALID_TYPE", f"sObject type '{name}' is not supported or attributes.type is missing")
    return obj, {k: v for k, v in record.items() if k != "attributes"}


def _record_id(record: Any) -> str | None:
    return str(record.get("Id")) if isinstance(record, dict) and record.get("Id") else None


def sobject_of_id(record_id: str) -> SObject | None:
    """Return the sObject whose key prefix ``record_id`` carries."""
    return next((o for o in SOBJECTS.values() if dml.is_id_of(o, record_id)), None)


def upsert_all(
    sf: SalesforceEmulator, obj: SObject, ext_field: str, records: list[Any], *, all_or_none: bool
) -> list[dict[str, Any]]:
    """Upsert records of ``obj`` on ``ext_field``; a key repeated in the request fails every copy."""
    keys = Counter(index_key(r.get(ext_field)) for r in records if isinstance(r, dict) and r.get(ext_field))
    lock = sf.lock_policy()

    def apply(record: Any, tx: Transaction) -> dict[str, Any]:
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
        return success(*dml.upsert(sf.store, obj, ext_field, value, record, lock=lock, tx=tx))

    return run_all(sf, records, apply, all_or_none=all_or_none)


def create_all(sf: SalesforceEmulator, records: list[Any], *, all_or_none: bool) -> list[dict[str, Any]]:
    """Insert records (of any sObjects, each named by ``attributes.type``)."""
    lock = sf.lock_policy()

    def apply(record: Any, tx: Transaction) -> dict[str, Any]:
        obj, body = _typed(record)
        record_id, _ = dml.insert(sf.store, obj, body, tx=tx, lock=lock)
        return success(record_id)

    return run_all(sf, records, apply, all_or_none=all_or_none)


def update_all(sf: SalesforceEmulator, records: list[Any], *, all_or_none: bool) -> list[dict[str, Any]]:
    """Update records by their ``Id``."""
    lock = sf.lock_policy()

    def apply(record: Any, tx: Transaction) -> dict[str, Any]:
        obj, body = _typed(record)
        record_id = _record_id(record)
        if record_id is None:
            raise SfError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        dml.update(sf.store, obj, record_id, body, lock, tx=tx)
        return success(record_id)

    return run_all(sf, records, apply, all_or_none=all_or_none, ids=_record_id)


def delete_all(sf: SalesforceEmulator, ids: list[str], *, all_or_none: bool) -> list[dict[str, Any]]:
    """Delete records by Id to the recycle bin."""
    lock = sf.lock_policy()

    def apply(record_id: str, tx: Transaction) -> dict[str, Any]:
        obj = sobject_of_id(record_id)
        if obj is None:
            raise SfError("MALFORMED_ID", f"malformed id {record_id}", ["Id"])
        dml.delete(sf.store, obj, record_id, lock=lock, tx=tx)
        return success(record_id)

    return run_all(sf, ids, apply, all_or_none=all_or_none, ids=lambda i: i or None)


def register(sf: SalesforceEmulator, app: FastAPI, render: Callable[..., dict[str, Any]]) -> None:
    """Register the Collections endpoints on ``app`` (``render`` shows a record as REST does)."""

    @app.post(COLLECTIONS)
    async def create(version: str, request: Request) -> Response:
        try:
            records, all_or_none = await _records(sf, request)
        except MalformedRequestError as exc:
            return exc.response()
        with sf.lock:
            return JSONResponse(create_all(sf, records, all_or_none=all_or_none))

    @app.patch(COLLECTIONS)
    async def update(version: str, request: Request) -> Response:
        try:
            records, all_or_none = await _records(sf, request)
        except MalformedRequestError as exc:
            return exc.response()
        with sf.lock:
            return JSONResponse(update_all(sf, records, all_or_none=all_or_none))

    @app.delete(COLLECTIONS)
    def delete(version: str, ids: str = "", allOrNone: str = "false") -> Response:  # noqa: N803 - vendor name
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        try:
            if not wanted:
                raise MalformedRequestError("MISSING_ARGUMENT", "ids parameter is required")
            _check_count(sf, len(wanted))
        except MalformedRequestError as exc:
            return exc.response()
        with sf.lock:
            return JSONResponse(delete_all(sf, wanted, all_or_none=allOrNone.lower() == "true"))

    @app.get(COLLECTIONS + "/{name}")
    def retrieve(version: str, name: str, ids: str = "", fields: str = "") -> Response:
        obj = find_sobject(name)
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        names = [n.strip() for n in fields.split(",") if n.strip()]
        if obj is None:
            return MalformedRequestError("NOT_FOUND", "The requested resource does not exist").response()
        unknown = [n for n in names if obj.field(n) is None]
        if not wanted or not names or unknown or len(wanted) > RETRIEVE_MAX:
            detail = (
                f"No such column '{unknown[0]}'" if unknown else "ids and fields are required, <= 2000 ids"
            )
            return MalformedRequestError(
                "INVALID_FIELD" if unknown else "MISSING_ARGUMENT", detail
            ).response()
        canonical = [f.name for n in names if (f := obj.field(n)) is not None]
        with sf.lock:
            found = [sf.store.find(obj.name, i) for i in wanted]
            return JSONResponse([render(obj, r, version, canonical) if r else None for r in found])

    @app.patch(COLLECTIONS + "/{name}/{field}")
    async def upsert(version: str, name: str, field: str, request: Request) -> Response:
        try:
            obj = find_sobject(name)
            if obj is None:
                raise SfError("NOT_FOUND", "The requested resource does not exist")
            ext_field = dml.external_id_field(obj, field)
        except SfError as exc:
            return JSONResponse([{"message": exc.message, "errorCode": exc.code}], status_code=404)
        try:
            records, all_or_none = await _records(sf, request)
        except MalformedRequestError as exc:
            return exc.response()
        with sf.lock:
            return JSONResponse(upsert_all(sf, obj, ext_field, records, all_or_none=all_or_none))
