"""Associations v4 routes: default and labelled links, one at a time or in batches, labels, reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandbox.emulators.hubspot.emulator import batch_inputs, batch_response, read_json, run_batch
from sandbox.emulators.hubspot.errors import HubSpotError, now_iso

if TYPE_CHECKING:
    from sandbox.emulators.hubspot.emulator import HubSpotEmulator


def _types(hs: HubSpotEmulator, left: str, right: str) -> tuple[str, str]:
    return hs.store.resolve(left).type_id, hs.store.resolve(right).type_id


def _require(hs: HubSpotEmulator, type_id: str, object_id: str) -> str:
    """Return the live id of a record (following merges) or raise 404."""
    return hs.store.require(hs.store.types[type_id], object_id).id


def _pair(hs: HubSpotEmulator, left: str, left_id: str, right: str, right_id: str) -> dict[str, Any]:
    """Return a ``LabelsBetweenObjectPair``."""
    return {
        "fromObjectTypeId": left,
        "fromObjectId": int(left_id),
        "toObjectTypeId": right,
        "toObjectId": int(right_id),
        "labels": hs.associations.labels_between(left, left_id, right, right_id),
    }


def _default_results(
    left: str, left_id: str, right: str, right_id: str, hs: HubSpotEmulator
) -> list[dict[str, Any]]:
    """Return both directions of a default link as ``PublicDefaultAssociation`` items."""
    forward = hs.associations.associate(left, left_id, right, right_id, None)[0]
    backward = hs.associations.inverse[(left, right, forward)]
    return [
        {
            "from": {"id": left_id},
            "to": {"id": right_id},
            "associationSpec": {"associationCategory": forward[0], "associationTypeId": forward[1]},
        },
        {
            "from": {"id": right_id},
            "to": {"id": left_id},
            "associationSpec": {"associationCategory": backward[0], "associationTypeId": backward[1]},
        },
    ]


def _single_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register the per-record association routes."""

    @app.put("/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}")
    async def create_default(from_type: str, from_id: str, to_type: str, to_id: str) -> JSONResponse:
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            left_id, right_id = _require(hs, left, from_id), _require(hs, right, to_id)
            results = _default_results(left, left_id, right, right_id, hs)
            return batch_response(results, [], now_iso(), 200)

    @app.put("/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}/{to_id}")
    async def create_labelled(
        from_type: str, from_id: str, to_type: str, to_id: str, request: Request
    ) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            left_id, right_id = _require(hs, left, from_id), _require(hs, right, to_id)
            if not isinstance(body, list) or not body:
                raise HubSpotError(400, "Body must be a non-empty array of association specs")
            specs = hs.associations.validate(left, right, body)
            hs.associations.associate(left, left_id, right, right_id, specs)
            return JSONResponse(_pair(hs, left, left_id, right, right_id), status_code=201)

    @app.get("/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}")
    async def read_links(
        from_type: str, from_id: str, to_type: str, limit: int = 500, after: str | None = None
    ) -> JSONResponse:
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            left_id = _require(hs, left, from_id)
            targets = hs.associations.targets(left, left_id, right)
            start = int(after or 0)
            body: dict[str, Any] = {"results": targets[start : start + limit]}
            if start + limit < len(targets):
                body["paging"] = {"next": {"after": str(start + limit), "link": f"?after={start + limit}"}}
            return JSONResponse(body)

    @app.delete("/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}/{to_id}")
    async def delete_links(from_type: str, from_id: str, to_type: str, to_id: str) -> Response:
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            hs.associations.remove(left, from_id, right, to_id)
            return Response(status_code=204)


def _batch_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register batch default, labelled create and read."""
    prefix = "/crm/v4/associations/{from_type}/{to_type}"

    @app.post(prefix + "/batch/associate/default")
    async def batch_default(from_type: str, to_type: str, request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            left, right = _types(hs, from_type, to_type)

            def default(item: Any) -> list[Any]:
                left_id = _require(hs, left, str((item.get("from") or {}).get("id")))
                right_id = _require(hs, right, str((item.get("to") or {}).get("id")))
                return _default_results(left, left_id, right, right_id, hs)

            return run_batch(batch_inputs(body, int(hs.settings["batch_max_inputs"])), default, 200)

    @app.post(prefix + "/batch/create")
    async def batch_create(from_type: str, to_type: str, request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            left, right = _types(hs, from_type, to_type)

            def create(item: Any) -> list[Any]:
                left_id = _require(hs, left, str((item.get("from") or {}).get("id")))
                right_id = _require(hs, right, str((item.get("to") or {}).get("id")))
                specs = hs.associations.validate(left, right, item.get("types") or [])
                hs.associations.associate(left, left_id, right, right_id, specs or None)
                return [_pair(hs, left, left_id, right, right_id)]

            return run_batch(batch_inputs(body, int(hs.settings["batch_max_inputs"])), create, 201)

    @app.post(prefix + "/batch/read")
    async def batch_read(from_type: str, to_type: str, request: Request) -> JSONResponse:
        body = await read_json(request)
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            started, results, errors = now_iso(), [], []
            for item in batch_inputs(body, int(hs.settings["association_batch_read_max_inputs"])):
                object_id = str(item.get("id"))
                record = hs.store.find(hs.store.types[left], object_id)
                if record is None:
                    errors.append(
                        HubSpotError(
                            404, f"No {left} with id {object_id}", context={"fromObjectId": [object_id]}
                        ).standard()
                    )
                    continue
                results.append(
                    {"from": {"id": record.id}, "to": hs.associations.targets(left, record.id, right)}
                )
            return batch_response(results, errors, started, 200)


def _batch_archive_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register the batch archive routes and the label routes."""
    prefix = "/crm/v4/associations/{from_type}/{to_type}"

    @app.post(prefix + "/batch/archive")
    async def batch_archive(from_type: str, to_type: str, request: Request) -> Response:
        body = await read_json(request)
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            for item in batch_inputs(body, int(hs.settings["batch_max_inputs"])):
                for target in item.get("to") or []:
                    hs.associations.remove(
                        left, str((item.get("from") or {}).get("id")), right, str(target.get("id"))
                    )
            return Response(status_code=204)

    @app.post(prefix + "/batch/labels/archive")
    async def batch_archive_labels(from_type: str, to_type: str, request: Request) -> Response:
        body = await read_json(request)
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            for item in batch_inputs(body, int(hs.settings["batch_max_inputs"])):
                specs = hs.associations.validate(left, right, item.get("types") or [])
                from_id, to_id = (
                    str((item.get("from") or {}).get("id")),
                    str((item.get("to") or {}).get("id")),
                )
                hs.associations.remove(left, from_id, right, to_id, specs)
            return Response(status_code=204)

    @app.get(prefix + "/labels")
    async def list_labels(from_type: str, to_type: str) -> JSONResponse:
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            return JSONResponse({"results": hs.associations.list_labels(left, right)})

    @app.post(prefix + "/labels")
    async def create_label(from_type: str, to_type: str, request: Request) -> JSONResponse:
        body = await read_json(request) or {}
        with hs.lock:
            left, right = _types(hs, from_type, to_type)
            created = hs.associations.create_label(
                left, right, str(body.get("label") or ""), body.get("inverseLabel")
            )
            return JSONResponse({"results": created})


def association_routes(hs: HubSpotEmulator, app: FastAPI) -> None:
    """Register every associations v4 route (``default`` before the labelled path)."""
    _single_routes(hs, app)
    _batch_routes(hs, app)
    _batch_archive_routes(hs, app)
