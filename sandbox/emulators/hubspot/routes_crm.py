"""CRM object routes: single-object CRUD, batch read/create/update/upsert/archive, search, merge,
GDPR delete, properties and custom-object schemas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from sandbox.emulators.hubspot import search
from sandbox.emulators.hubspot.emulator import batch_inputs, batch_response, read_json, run_batch
from sandbox.emulators.hubspot.errors import HubSpotError, now_iso
from sandbox.emulators.hubspot.objects import ObjectType, Record

if TYPE_CHECKING:
    from sandbox.emulators.hubspot.emulator import HubSpotEmulator

_TEXT_FIELDS = {
    "contacts": ["firstname", "lastname", "email", "phone", "company", "hs_additional_emails"],
    "companies": ["name", "domain", "website"],
    "deals": ["dealname"],
}


_IdProperty = Annotated[str | None, Query(alias="idProperty")]


def _props_param(request: Request) -> list[str] | None:
    raw = request.query_params.getlist("properties")
    names = [p for item in raw for p in item.split(",") if p]
    return names or None


def _create_with_associations(hs: HubSpotEmulator, kind: ObjectType, item: dict[str, Any]) -> Record:
    """Create a record from a ``SimplePublicObjectInputForCreate``, with its ``associations``."""
    links = item.get("associations") or []
    targets = [_association_target(hs, kind, link) for link in links]
    record = hs.store.create(kind, item.get("properties") or {})
    for target_type, target_id, specs in targets:
        hs.associations.associate(kind.type_id, record.id, target_type, target_id, specs)
    return record


def _association_target(
    hs: HubSpotEmulator, kind: ObjectType, link: dict[str, Any]
) -> tuple[str, str, list[Any]]:
    """Return (to type, to id, specs) for an association given on create; the type comes from the type id."""
    to_id = str((link.get("to") or {}).get("id"))
    types = link.get("types") or []
    wanted = {(str(t.get("associationCategory")), int(t.get("associationTypeId") or 0)) for t in types}
    for (left, right), labels in hs.associations.labels.items():
        if left == kind.type_id and wanted & {(lb["category"], lb["typeId"]) for lb in labels}:
            target_kind = hs.store.types[right]
            hs.store.require(target_kind, to_id)
            return right, to_id, hs.associations.validate(left, right, types)
    raise HubSpotError(400, "Unknown association type in associations", context={"associations": [to_id]})


def _single_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register list, create, read, update and archive of one object."""

    @app.get("/crm/v3/objects/{object_type}")
    async def list_objects(
        object_type: str, request: Request, limit: int = 10, after: str | None = None
    ) -> JSONResponse:
        with hs.lock:
            kind = hs.store.resolve(object_type)
            if limit < 1 or limit > int(hs.settings["list_max_limit"]):
                raise HubSpotError(400, f"limit must be between 1 and {hs.settings['list_max_limit']}")
            live = sorted((r for r in hs.store.of(kind).values() if not r.archived), key=lambda r: int(r.id))
            start = [r for r in live if after is None or int(r.id) > int(after)]
            chunk = start[:limit]
            body: dict[str, Any] = {
                "results": [r.public(_props_param(request), kind.default_properties) for r in chunk]
            }
            if len(start) > limit:
                cursor = chunk[-1].id
                body["paging"] = {"next": {"after": cursor, "link": f"?after={cursor}"}}
            return JSONResponse(body)

    @app.post("/crm/v3/objects/{object_type}")
    async def create_object(object_type: str, request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            kind = hs.store.resolve(object_type)
            return JSONResponse(_create_with_associations(hs, kind, body or {}).written(), status_code=201)

    @app.get("/crm/v3/objects/{object_type}/{object_id}")
    async def read_object(
        object_type: str, object_id: str, request: Request, id_property: _IdProperty = None
    ) -> JSONResponse:
        with hs.lock:
            kind = hs.store.resolve(object_type)
            record = hs.store.require(kind, object_id, id_property)
            return JSONResponse(record.public(_props_param(request), kind.default_properties))

    @app.patch("/crm/v3/objects/{object_type}/{object_id}")
    async def update_object(
        object_type: str, object_id: str, request: Request, id_property: _IdProperty = None
    ) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            kind = hs.store.resolve(object_type)
            record = hs.store.require(kind, object_id, id_property)
            return JSONResponse(hs.store.update(kind, record, (body or {}).get("properties") or {}).written())

    @app.delete("/crm/v3/objects/{object_type}/{object_id}")
    async def archive_object(object_type: str, object_id: str) -> Response:
        with hs.lock:
            kind = hs.store.resolve(object_type)
            record = hs.store.find(kind, object_id)
            if record is not None:
                hs.store.archive(kind, record)
            return Response(status_code=204)


def _batch_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register batch read and create."""

    @app.post("/crm/v3/objects/{object_type}/batch/read")
    async def batch_read(object_type: str, request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            kind = hs.store.resolve(object_type)
            history = bool((body or {}).get("propertiesWithHistory"))
            cap = int(hs.settings["batch_read_history_max_inputs" if history else "batch_max_inputs"])
            inputs = batch_inputs(body, cap)
            started, results, missing = now_iso(), [], []
            for item in inputs:
                record = hs.store.find(kind, str(item.get("id")), body.get("idProperty"))
                if record is None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(record.public(body.get("properties") or None, kind.default_properties))
            errors = []
            if missing:
                error = HubSpotError(
                    404,
                    f"Could not get some {kind.label} objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    category="OBJECT_NOT_FOUND",
                    context={"ids": missing},
                )
                errors.append(error.standard())
            return batch_response(results, errors, started, 200)

    @app.post("/crm/v3/objects/{object_type}/batch/create")
    async def batch_create(object_type: str, request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            kind = hs.store.resolve(object_type)
            inputs = batch_inputs(body, int(hs.settings["batch_max_inputs"]))

            def create(item: Any) -> list[Any]:
                record = _create_with_associations(hs, kind, item)
                return [{**record.written(), **_trace(item)}]

            return run_batch(inputs, create, 201)


def _input_id(item: Any) -> str:
    return str(item.get("id"))


def _batch_write_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register batch update, upsert and archive."""

    @app.post("/crm/v3/objects/{object_type}/batch/update")
    async def batch_update(object_type: str, request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            kind = hs.store.resolve(object_type)
            inputs = batch_inputs(body, int(hs.settings["batch_max_inputs"]))
            _reject_duplicates(inputs)

            def update(item: Any) -> list[Any]:
                record = hs.store.require(kind, str(item.get("id")), item.get("idProperty"))
                hs.store.update(kind, record, item.get("properties") or {})
                return [{**record.written(), **_trace(item)}]

            return run_batch(inputs, update, 200, _input_id)

    @app.post("/crm/v3/objects/{object_type}/batch/upsert")
    async def batch_upsert(object_type: str, request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            kind = hs.store.resolve(object_type)
            inputs = batch_inputs(body, int(hs.settings["batch_max_inputs"]))
            _reject_duplicates(inputs)

            def upsert(item: Any) -> list[Any]:
                record, new = hs.store.upsert(
                    kind, str(item.get("id")), item.get("idProperty"), item.get("properties") or {}
                )
                return [{**record.written(), "new": new, **_trace(item)}]

            return run_batch(inputs, upsert, 200, _input_id)

    @app.post("/crm/v3/objects/{object_type}/batch/archive")
    async def batch_archive(object_type: str, request: Request) -> Response:
        body = await read_json(request)
        with hs.lock:
            kind = hs.store.resolve(object_type)
            for item in batch_inputs(body, int(hs.settings["batch_max_inputs"])):
                record = hs.store.find(kind, str(item.get("id")))
                if record is not None:
                    hs.store.archive(kind, record)
            return Response(status_code=204)


def _trace(item: dict[str, Any]) -> dict[str, Any]:
    return {"objectWriteTraceId": item["objectWriteTraceId"]} if item.get("objectWriteTraceId") else {}


def _reject_duplicates(inputs: list[dict[str, Any]]) -> None:
    """Reject a batch naming the same record twice (HubSpot answers 400 for the whole batch)."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in inputs:
        key = str(item.get("id"))
        key = key.lower() if item.get("idProperty") == "email" else key
        if key in seen:
            duplicates.append(key)
        seen.add(key)
    if duplicates:
        raise HubSpotError(
            400,
            f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique",
            context={"ids": duplicates},
        )


def _contact_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register search, merge and GDPR delete."""

    @app.post("/crm/v3/objects/{object_type}/search")
    async def search_objects(object_type: str, request: Request) -> JSONResponse:
        body = await read_json(request) or {}
        with hs.lock:
            kind = hs.store.resolve(object_type)
            live = [r for r in hs.store.of(kind).values() if not r.archived]
            fields = _TEXT_FIELDS.get(kind.name) or [str((kind.schema or {}).get("primaryDisplayProperty"))]
            found = search.run(live, body, fields)
            chunk, next_after = search.page(
                found,
                body,
                max_limit=int(hs.settings["search_max_limit"]),
                cap=int(hs.settings["search_result_cap"]),
            )
            wanted = body.get("properties") or None
            result: dict[str, Any] = {
                "total": len(found),
                "results": [r.public(wanted, kind.default_properties) for r in chunk],
            }
            if next_after:
                result["paging"] = {"next": {"after": next_after, "link": f"?after={next_after}"}}
            return JSONResponse(result)

    @app.post("/crm/v3/objects/{object_type}/merge")
    async def merge(object_type: str, request: Request) -> JSONResponse:
        body = await read_json(request) or {}
        with hs.lock:
            kind = hs.store.resolve(object_type)
            primary_id, other_id = str(body.get("primaryObjectId")), str(body.get("objectIdToMerge"))
            primary = hs.store.merge(kind, primary_id, other_id)
            hs.associations.move_record(kind.type_id, other_id, primary.id)
            return JSONResponse(primary.written())

    @app.post("/crm/v3/objects/{object_type}/gdpr-delete")
    async def gdpr_delete(object_type: str, request: Request) -> Response:
        body = await read_json(request) or {}
        with hs.lock:
            kind = hs.store.resolve(object_type)
            if kind.name != "contacts":
                raise HubSpotError(400, "GDPR delete is only supported for contacts")
            deleted = hs.store.gdpr_delete(kind, str(body.get("objectId")), body.get("idProperty"))
            if deleted is not None:
                hs.associations.drop_record(kind.type_id, deleted.id)
                hs.subscriptions.statuses.pop((deleted.properties.get("email") or "").lower(), None)
            return Response(status_code=204)


def _schema_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register properties and custom-object schemas."""

    @app.get("/crm/v3/properties/{object_type}")
    async def list_properties(object_type: str) -> JSONResponse:
        with hs.lock:
            kind = hs.store.resolve(object_type)
            return JSONResponse({"results": list(kind.properties.values())})

    @app.get("/crm/v3/properties/{object_type}/{name}")
    async def read_property(object_type: str, name: str) -> JSONResponse:
        with hs.lock:
            kind = hs.store.resolve(object_type)
            if name not in kind.properties:
                raise HubSpotError(404, f"Unable to find property {name} for object type {kind.name}")
            return JSONResponse(kind.properties[name])

    @app.post("/crm/v3/properties/{object_type}")
    async def create_property(object_type: str, request: Request) -> JSONResponse:
        body = await read_json(request) or {}
        with hs.lock:
            kind = hs.store.resolve(object_type)
            name = str(body.get("name") or "")
            if not name:
                raise HubSpotError(400, "Property name is required", context={"name": [""]})
            if name in kind.properties:
                raise HubSpotError(
                    409, f"Property named '{name}' already exists.", category="OBJECT_ALREADY_EXISTS"
                )
            kind.add_properties([{**body, "hasUniqueValue": bool(body.get("hasUniqueValue"))}])
            return JSONResponse(kind.properties[name], status_code=201)

    @app.get("/crm-object-schemas/v3/schemas")
    async def list_schemas() -> JSONResponse:
        with hs.lock:
            return JSONResponse({"results": [k.schema for k in hs.store.types.values() if k.schema]})

    @app.get("/crm-object-schemas/v3/schemas/{object_type}")
    async def read_schema(object_type: str) -> JSONResponse:
        with hs.lock:
            kind = hs.store.resolve(object_type)
            if not kind.schema:
                raise HubSpotError(404, f"Unable to find schema for {object_type}")
            return JSONResponse(kind.schema)

    @app.post("/crm-object-schemas/v3/schemas")
    async def create_schema(request: Request) -> JSONResponse:
        body = await read_json(request) or {}
        with hs.lock:
            return JSONResponse(_create_schema(hs, body), status_code=201)


def _create_schema(hs: HubSpotEmulator, body: dict[str, Any]) -> dict[str, Any]:
    """Define a custom object type from a schema body; return the stored schema."""
    name = str(body.get("name") or "")
    labels = body.get("labels") or {}
    if not name or not labels.get("singular") or not labels.get("plural"):
        raise HubSpotError(400, "A schema needs a name and singular and plural labels")
    if any(k.name == name.lower() for k in hs.store.types.values()):
        raise HubSpotError(
            409, f"An object schema named {name!r} already exists", category="OBJECT_ALREADY_EXISTS"
        )
    properties = body.get("properties") or []
    names = {p.get("name") for p in properties}
    for required in [*(body.get("requiredProperties") or []), body.get("primaryDisplayProperty")]:
        if required and required not in names:
            raise HubSpotError(400, f"Property {required!r} is required or displayed but not defined")
    type_id = f"2-{hs.settings['portal_id'] * 10 + hs.next_schema_id}"
    hs.next_schema_id += 1
    stamp = now_iso()
    associations: list[dict[str, Any]] = []
    schema = {
        "id": type_id.split("-")[1],
        "objectTypeId": type_id,
        "fullyQualifiedName": f"p{hs.settings['portal_id']}_{name.lower()}",
        "name": name.lower(),
        "labels": labels,
        "primaryDisplayProperty": body.get("primaryDisplayProperty"),
        "requiredProperties": body.get("requiredProperties") or [],
        "searchableProperties": body.get("searchableProperties") or [],
        "secondaryDisplayProperties": body.get("secondaryDisplayProperties") or [],
        "properties": properties,
        "associations": associations,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }
    kind = ObjectType(type_id, name.lower(), str(labels["singular"]).lower(), [], {}, schema)
    kind.add_properties([{"name": n} for n in ("hs_object_id", "hs_createdate", "hs_lastmodifieddate")])
    kind.add_properties([{**p, "hasUniqueValue": bool(p.get("hasUniqueValue"))} for p in properties])
    kind.default_properties = ["hs_createdate", "hs_lastmodifieddate", "hs_object_id"]
    hs.store.types[type_id] = kind
    for other in body.get("associatedObjects") or []:
        target = hs.store.resolve(str(other))
        hs.associations.list_labels(type_id, target.type_id)
        associations.append(
            {
                "fromObjectTypeId": type_id,
                "toObjectTypeId": target.type_id,
                "name": f"{name}_to_{target.singular}",
            }
        )
    return schema


def crm_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register every CRM object route (batch and fixed paths before ``/{object_id}``)."""
    _batch_routes(hs, app)
    _batch_write_routes(hs, app)
    _contact_routes(hs, app)
    _schema_routes(hs, app)
    _single_routes(hs, app)
